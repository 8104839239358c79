package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/state"
)

func init() {
	register(&command{name: "history", summary: "list deployments and their events from the state store", run: runHistory})
}

func runHistory(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("history", "bosun history [SERVICE] [--repo-name NAME] [--limit N] [--events]", `
List deployments, newest first, from the state store: when, which service
and commit, what triggered it and how it ended (pending, deploying,
deployed, failed, rolled_back). With --events, each deployment's steps per
host follow it.`, e)
	dsn := stateFlag(fs, e)
	repoName := fs.String("repo-name", "", "only deployments of this config repository (its name in the store)")
	limit := fs.Int("limit", 20, "show at most `N` deployments")
	events := fs.Bool("events", false, "show each deployment's events")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 1 {
		return 1, fmt.Errorf("want at most one service, got %d arguments", fs.NArg())
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	ds, err := st.ListDeployments(ctx, state.DeploymentFilter{Repo: *repoName, Service: fs.Arg(0), Limit: *limit})
	if err != nil {
		return 1, err
	}
	if len(ds) == 0 {
		fmt.Fprintln(e.stdout, "No deployments.")
		return 0, nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tREPO\tSERVICE\tCOMMIT\tSTATUS\tTOOK\tTRIGGER")
	for _, d := range ds {
		took := "-"
		if d.FinishedAt != nil {
			took = d.FinishedAt.Sub(d.StartedAt).Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.StartedAt.Local().Format("2006-01-02 15:04:05"), d.Repo, d.Service, commitsha.Short(d.Commit), d.Status, took, d.Trigger)
		if d.Error == "" && !*events {
			continue
		}
		// Details go below the row, outside the table's columns.
		tw.Flush()
		if d.Error != "" {
			fmt.Fprintf(e.stdout, "    error: %s\n", d.Error)
		}
		if *events {
			evs, err := st.ListEvents(ctx, d.ID)
			if err != nil {
				return 1, err
			}
			etw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for _, ev := range evs {
				host := ev.Host
				if host == "" {
					host = "-"
				}
				fmt.Fprintf(etw, "    %s\t%s\t%s %s\t%s\n", ev.At.Local().Format("15:04:05.0"), host, ev.Step, ev.Status, ev.Message)
			}
			etw.Flush()
		}
	}
	tw.Flush()
	return 0, nil
}
