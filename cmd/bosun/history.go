package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/state"
)

func init() {
	register(&command{name: "history", summary: "list deployments and their events from the state store", run: runHistory})
}

func runHistory(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("history", "bosun history [SERVICE] [--repo-name NAME] [--limit N] [--events] [--server URL]", `
List deployments, newest first, from the state store: when, which service
and commit, what triggered it and how it ended (pending, deploying,
deployed, failed, rolled_back). With --events, each deployment's steps per
host follow it. With --server, they are read from a running bosun serve's
API instead (GET /api/v1/deployments) with the API token in $BOSUN_TOKEN
(bosun token create --role viewer).`, e)
	dsn := stateFlag(fs, e)
	repoName := fs.String("repo-name", "", "only deployments of this config repository (its name in the store)")
	limit := fs.Int("limit", 20, "show at most `N` deployments")
	events := fs.Bool("events", false, "show each deployment's events")
	server := fs.String("server", "", "read from the bosun serve at `URL` (its dashboard address) with the token in $BOSUN_TOKEN")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 1 {
		return 1, fmt.Errorf("want at most one service, got %d arguments", fs.NArg())
	}
	f := state.DeploymentFilter{Repo: *repoName, Service: fs.Arg(0), Limit: *limit}
	var src historySource
	if *server != "" {
		rc, err := newRemote(*server, e.getenv("BOSUN_TOKEN"))
		if err != nil {
			return 1, err
		}
		src = rc
	} else {
		st, err := openStore(ctx, *dsn, false)
		if err != nil {
			return 1, err
		}
		defer st.Close()
		src = st
	}
	ds, err := src.ListDeployments(ctx, f)
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
			evs, err := src.ListEvents(ctx, d.ID)
			if err != nil {
				return 1, err
			}
			etw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for _, ev := range evs {
				host := ev.Host
				if host == "" {
					host = "-"
				}
				msg := ev.Message
				if ev.Actor != "" {
					msg += " (by " + ev.Actor + ")"
				}
				fmt.Fprintf(etw, "    %s\t%s\t%s %s\t%s\n", ev.At.Local().Format("15:04:05.0"), host, ev.Step, ev.Status, msg)
			}
			etw.Flush()
		}
	}
	tw.Flush()
	return 0, nil
}

// historySource is where history reads: the store, or a daemon's API.
type historySource interface {
	ListDeployments(ctx context.Context, f state.DeploymentFilter) ([]state.Deployment, error)
	ListEvents(ctx context.Context, deploymentID int64) ([]state.Event, error)
}

// remote reads a running daemon's JSON API with an API token.
type remote struct {
	base  string
	token string
	http  *http.Client
}

func newRemote(server, token string) (*remote, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server: %q is not an http(s) URL", server)
	}
	if token == "" {
		return nil, errors.New("--server needs an API token in $BOSUN_TOKEN (bosun token create --role viewer NAME)")
	}
	return &remote{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (r *remote) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", r.base+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", r.base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body[:min(len(body), 200)]))
		}
		return fmt.Errorf("GET %s: %s: %s", r.base+path, resp.Status, e.Error)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", r.base+path, err)
	}
	return nil
}

func (r *remote) ListDeployments(ctx context.Context, f state.DeploymentFilter) ([]state.Deployment, error) {
	q := url.Values{}
	for k, v := range map[string]string{"repo": f.Repo, "service": f.Service, "server": f.Host, "status": string(f.Status)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(min(f.Limit, dashboard.MaxLimit)))
	}
	var list dashboard.DeploymentList
	if err := r.get(ctx, "/api/v1/deployments?"+q.Encode(), &list); err != nil {
		return nil, err
	}
	out := make([]state.Deployment, 0, len(list.Deployments))
	for _, d := range list.Deployments {
		out = append(out, state.Deployment{ID: d.ID, Repo: d.Repo, Service: d.Service, Commit: d.Commit, Status: state.Status(d.Status),
			Trigger: d.Trigger, Error: d.Error, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt})
	}
	return out, nil
}

func (r *remote) ListEvents(ctx context.Context, id int64) ([]state.Event, error) {
	var evs struct {
		Events []dashboard.Event `json:"events"`
	}
	if err := r.get(ctx, fmt.Sprintf("/api/v1/deployments/%d/events", id), &evs); err != nil {
		return nil, err
	}
	out := make([]state.Event, 0, len(evs.Events))
	for _, e := range evs.Events {
		out = append(out, state.Event{DeploymentID: e.DeploymentID, Host: e.Host, Step: e.Step, Status: e.Status, Message: e.Message, Actor: e.Actor, At: e.At})
	}
	return out, nil
}
