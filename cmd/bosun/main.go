// Command bosun is a GitOps deployer for Docker hosts: one binary that
// validates and plans a config repository, applies it to servers over SSH,
// runs the daemon, and runs the proxy on each server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], env{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	os.Exit(code)
}

// env is what a command gets from the process: its environment and streams.
// Tests run commands in-process with their own env.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand of bosun. Each lives in its own file and
// registers itself from init.
type command struct {
	name    string
	summary string // one line for `bosun --help`
	// run executes the command. It returns the process exit code; errors
	// it returns are printed as "bosun NAME: err" and exit 1.
	run func(ctx context.Context, args []string, e env) (int, error)
}

var commands = map[string]*command{}

// order is the order of commands in `bosun --help`.
var order = []string{"validate", "plan", "apply", "status", "history", "rollback", "hold", "release", "serve", "token", "proxy", "migrate", "import", "version"}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("bosun: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		usage(e.stdout)
		if len(args) == 0 {
			return 1
		}
		return 0
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "bosun: unknown command %q; run 'bosun --help' for the list\n", args[0])
		return 1
	}
	if _, err := logLevel(e); err != nil {
		fmt.Fprintf(e.stderr, "bosun %s: %v\n", c.name, err)
		return 1
	}
	code, err := c.run(ctx, args[1:], e)
	if err != nil {
		fmt.Fprintf(e.stderr, "bosun %s: %v\n", c.name, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func usage(w io.Writer) {
	fmt.Fprint(w, `bosun deploys Docker services from a git repository to servers over SSH.

Usage: bosun COMMAND [flags]

Commands:
`)
	for _, name := range order {
		if c, ok := commands[name]; ok {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprint(w, `
Run 'bosun COMMAND --help' for a command's flags.
`)
}
