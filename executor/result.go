package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// Hosts returns the hosts the Apply deployed to or removed from, sorted.
func (r *Result) Hosts() []string {
	if r == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, s := range r.Services {
		for _, t := range append(append([]planner.Target{}, s.Deployed...), s.Removed...) {
			seen[t.Host] = true
		}
	}
	names := make([]string, 0, len(seen))
	for h := range seen {
		names = append(names, h)
	}
	sort.Strings(names)
	return names
}

// Summary is the Apply in one line, for a deploy status: "shop, api on
// web-1, web-2", "no changes" when no service had any, then "; hold
// released: shop" when it ended holds; "deployed" for a nil Result.
func (r *Result) Summary() string {
	if r == nil {
		return "deployed"
	}
	line := "no changes"
	if len(r.Services) > 0 {
		services := make([]string, 0, len(r.Services))
		for _, s := range r.Services {
			services = append(services, s.Service)
		}
		line = strings.Join(services, ", ") + " on " + strings.Join(r.Hosts(), ", ")
	}
	if len(r.ReleasedHolds) > 0 {
		line += "; hold released: " + strings.Join(r.ReleasedHolds, ", ")
	}
	return line
}

// WriteTo prints what an Apply did, for a terminal: per service the hosts
// deployed, removed and rolled back and the time it took, the holds it
// released, then a verdict line. A nil Result prints nothing.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	if r == nil {
		return 0, nil
	}
	var b strings.Builder
	b.WriteString("\n")
	failed := 0
	for _, s := range r.Services {
		line := fmt.Sprintf("%-20s %-11s %d deployed", s.Service, s.Status, len(s.Deployed))
		if len(s.Removed) > 0 {
			line += fmt.Sprintf(", %d removed", len(s.Removed))
		}
		if len(s.RolledBack) > 0 {
			line += fmt.Sprintf(", %d rolled back", len(s.RolledBack))
		}
		if s.Unchanged > 0 {
			line += fmt.Sprintf(", %d unchanged", s.Unchanged)
		}
		fmt.Fprintf(&b, "%s  (%s)\n", line, s.Duration.Round(100*time.Millisecond))
		if s.Err != nil {
			failed++
		}
	}
	for _, svc := range r.ReleasedHolds {
		fmt.Fprintf(&b, "Hold on %s released: the config repository asks for the held version.\n", svc)
	}
	for _, t := range r.Takeovers {
		if t.Err != nil {
			fmt.Fprintf(&b, "Takeover of %s from Kamal failed: %v\n", t.Host, t.Err)
			continue
		}
		fmt.Fprintf(&b, "Takeover of %s from Kamal: %s.\n", t.Host, t.summary())
	}
	verdict := "Applied"
	if failed > 0 {
		verdict = fmt.Sprintf("Failed (%d of %d services)", failed, len(r.Services))
	}
	hosts := r.Hosts()
	fmt.Fprintf(&b, "%s: %d service(s) on %d host(s) [%s] in %s\n", verdict, len(r.Services), len(hosts), strings.Join(hosts, ", "), r.Duration.Round(100*time.Millisecond))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// releaseHolds ends the holds the plan marks releasable (git's desired spec
// is the held version again) of the services in ok: those whose rollout
// succeeded or had nothing to do. A hold of a failed service stays, so that
// a later commit cannot deploy over the failed service before the revert
// is on every host. A release that fails is logged and left for the next
// Apply, which plans the hold releasable again.
func (e *Executor) releaseHolds(ctx context.Context, plan *planner.Plan, ok map[string]bool) []string {
	st := e.cfg.Store
	if st == nil {
		return nil
	}
	var released []string
	for _, svc := range plan.ReleasedHolds {
		if !ok[svc] {
			continue
		}
		sctx, cancel := state.Detached(ctx)
		err := st.DeleteHold(sctx, plan.Repo, svc)
		cancel()
		switch {
		case err == nil, errors.Is(err, state.ErrNotFound): // released by hand meanwhile
			released = append(released, svc)
			e.log.InfoContext(ctx, "hold released", "repo", plan.Repo, "service", svc)
		default:
			e.log.WarnContext(ctx, "hold not released", "repo", plan.Repo, "service", svc, "err", err)
		}
	}
	return released
}
