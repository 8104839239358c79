package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/bosunhq/bosun/dashboard"
)

func init() {
	register(&command{name: "token", summary: "make, list and revoke API tokens for the dashboard's API and /metrics", run: runToken})
}

const tokenUsage = `Usage: bosun token SUBCOMMAND [flags]

Subcommands:
  create --role ROLE NAME   make a token with ROLE (viewer, deployer, admin); prints it once
  list                      show every token: name, role, who made it, when
  revoke NAME               delete a token: requests with it get 401 from then on

Tokens are for scripts and scrapers: send one as "Authorization: Bearer
TOKEN" to the daemon's /api/v1 and /metrics. The store keeps only each
token's SHA-256. See docs/dashboard.md.
Run 'bosun token SUBCOMMAND --help' for flags.
`

func runToken(ctx context.Context, args []string, e env) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, tokenUsage)
		if len(args) == 0 {
			return 1, nil
		}
		return 0, nil
	}
	switch args[0] {
	case "create":
		return runTokenCreate(ctx, args[1:], e)
	case "list":
		return runTokenList(ctx, args[1:], e)
	case "revoke":
		return runTokenRevoke(ctx, args[1:], e)
	}
	fmt.Fprintf(e.stderr, "bosun token: unknown subcommand %q\n\n%s", args[0], tokenUsage)
	return 1, nil
}

func runTokenCreate(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("token create", "bosun token create --role ROLE [--state DSN] NAME", `
Make an API token called NAME with ROLE (viewer, deployer or admin) and
print it on stdout, once: the store keeps only its SHA-256, so it cannot be
shown again. NAME is lowercase letters, digits, '.', '_' and '-'; the
token's requests are recorded as token:NAME.`, e)
	dsn := stateFlag(fs, e)
	roleName := fs.String("role", "", "the token's `role`: viewer, deployer or admin")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() != 1 {
		return 1, fmt.Errorf("want one token name, got %d arguments", fs.NArg())
	}
	role, err := dashboard.ParseRole(*roleName)
	if err != nil {
		return 1, fmt.Errorf("--role: %w", err)
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	by := e.getenv("USER")
	if by == "" {
		by = "cli"
	}
	tok, err := dashboard.CreateToken(ctx, st, fs.Arg(0), role, by)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(e.stdout, tok)
	fmt.Fprintf(e.stderr, "Token %s (%s) made. It is shown this once; keep it in a secret store.\n", fs.Arg(0), role)
	return 0, nil
}

func runTokenList(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("token list", "bosun token list [--state DSN]", `
List the API tokens: name, role, who made it and when. Tokens themselves
are not stored and cannot be shown.`, e)
	dsn := stateFlag(fs, e)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	ts, err := st.ListTokens(ctx)
	if err != nil {
		return 1, err
	}
	if len(ts) == 0 {
		fmt.Fprintln(e.stdout, "No tokens.")
		return 0, nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED BY\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedBy, t.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
	return 0, nil
}

func runTokenRevoke(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("token revoke", "bosun token revoke [--state DSN] NAME", `
Delete the API token called NAME: its requests get 401 from then on.`, e)
	dsn := stateFlag(fs, e)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() != 1 {
		return 1, fmt.Errorf("want one token name, got %d arguments", fs.NArg())
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	if err := st.RevokeToken(ctx, fs.Arg(0)); err != nil {
		return 1, err
	}
	fmt.Fprintf(e.stdout, "Token %s revoked.\n", fs.Arg(0))
	return 0, nil
}
