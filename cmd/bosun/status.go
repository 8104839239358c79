package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
)

func init() {
	register(&command{name: "status", summary: "show what runs on each server, read live over SSH or from a daemon (--server)", run: runStatus})
}

func runStatus(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("status", "bosun status --repo PATH_OR_URL [--ref REF] [--all] [flags] | bosun status --server URL", `
Read bosun's containers on every server the config at REF names, live over
SSH: per service, role and host the running version, its container state
and its health, and a paused standby (x-bosun.standby: paused) as
"standby (paused)". With --all, retained (stopped) versions are listed too.
Exits 1 when a server cannot be reached.

With --server, ask a running bosun serve instead (GET /api/v1/fleet, its
dashboard address) with the API token in $BOSUN_TOKEN (bosun token create
--role viewer): per repository, service and server what was applied last
and its health, from the last rollout and the daemon's own live check of
the servers (at most 30 s old), "held" for held services, "missing" where a
service runs on other servers but not this one. Exits 1 when the daemon's
last live check could not reach a server.`, e)
	var rf repoFlags
	rf.register(fs)
	var sf sshFlags
	sf.register(fs)
	all := fs.Bool("all", false, "list retained stopped versions too")
	server := fs.String("server", "", "read the fleet from the bosun serve at `URL` (its dashboard address) with the token in $BOSUN_TOKEN")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if *server != "" {
		return remoteStatus(ctx, *server, e)
	}
	repo, err := rf.open(ctx)
	if err != nil {
		return 1, err
	}
	c, err := rf.read(repo, rf.ref, rf.worktree)
	if err != nil {
		return 1, err
	}
	c.dest, c.erb = rf.destination, planner.ERBEnvFrom(e.getenv, rf.erbEnv)
	// The config's hosts; secrets and applied state do not matter here.
	plan, err := planner.New(planner.Config{SecretKey: []byte("status")}).Plan(ctx, c.fsys, c.input(rf.repoName()))
	if err != nil {
		return 1, printConfigErrors(e, err)
	}
	hosts := make([]planner.Host, 0, len(plan.Hosts))
	for _, h := range plan.Hosts {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	x, err := sf.executor(e, nil, nil, nil)
	if err != nil {
		return 1, err
	}
	defer x.Close()
	list, statusErr := x.Status(ctx, hosts, *all) // sorted by service, role and host
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tROLE\tHOST\tVERSION\tCOMMIT\tSTATE\tHEALTH")
	for _, s := range list {
		if s.Err != nil {
			fmt.Fprintf(tw, "-\t-\t%s\t-\t-\tunreachable\t%v\n", s.Host, s.Err)
			continue
		}
		health := s.Health
		if health == "" {
			health = "-"
		}
		state := s.State
		if state == "paused" {
			state = "standby (paused)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, s.Role, s.Host, s.Version, commitsha.Short(s.Commit), state, health)
	}
	tw.Flush()
	if statusErr != nil {
		return 1, statusErr
	}
	return 0, nil
}

// remoteStatus prints a running daemon's fleet (GET /api/v1/fleet).
func remoteStatus(ctx context.Context, server string, e env) (int, error) {
	rc, err := newRemote(server, e.getenv("BOSUN_TOKEN"))
	if err != nil {
		return 1, err
	}
	var f dashboard.Fleet
	if err := rc.get(ctx, "/api/v1/fleet", &f); err != nil {
		return 1, err
	}
	if len(f.Targets) == 0 {
		fmt.Fprintln(e.stdout, "Nothing is applied.")
		return 0, nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tSERVICE\tHOST\tVERSION\tIMAGE\tCOMMIT\tHEALTH\tLIVE")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, t := range f.Targets {
		health := t.Health
		if t.Held {
			health += " (held)"
		}
		live := t.Live
		if live == "" && f.LiveCheckedAt == nil {
			live = "not checked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Repo, t.Service, t.Server, dash(t.Version), dash(t.Image), dash(commitsha.Short(t.Commit)), health, dash(live))
	}
	tw.Flush()
	var unreachable []string
	for _, sv := range f.Servers {
		if sv.Unreachable != "" {
			unreachable = append(unreachable, sv.Name+": "+sv.Unreachable)
		}
	}
	if f.LiveCheckedAt != nil {
		fmt.Fprintf(e.stdout, "Live check: %s.\n", f.LiveCheckedAt.Local().Format("2006-01-02 15:04:05"))
	}
	if len(unreachable) > 0 {
		return 1, fmt.Errorf("the daemon's live check could not reach %s", strings.Join(unreachable, "; "))
	}
	return 0, nil
}
