package main

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
)

func init() {
	register(&command{name: "status", summary: "show what runs on each server, read live over SSH", run: runStatus})
}

func runStatus(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("status", "bosun status --repo PATH_OR_URL [--ref REF] [--all] [flags]", `
Read bosun's containers on every server the config at REF names, live over
SSH: per service, role and host the running version, its container state
and its health, and a paused standby (x-bosun.standby: paused) as
"standby (paused)". With --all, retained (stopped) versions are listed too.
Exits 1 when a server cannot be reached.`, e)
	var rf repoFlags
	rf.register(fs)
	var sf sshFlags
	sf.register(fs)
	all := fs.Bool("all", false, "list retained stopped versions too")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
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
	list, statusErr := x.Status(ctx, hosts, *all)
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Host < b.Host
	})
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
