package executor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// The executor writes the applied state (record), the version history that
// the store keeps beside it, and the per-service lock (lock): this file is
// their one codec, for the executor and for every reader (the daemon, the
// CLI's plan, apply and rollback).

// LockName is the name of a service's rollout lock in the store. Whoever
// holds it may roll the service out; the daemon takes it to tell a crashed
// rollout from a running one.
func LockName(repo, service string) string { return "rollout:" + repo + ":" + service }

// StateReader is what LoadApplied and LoadHistory read: a state.Store.
type StateReader interface {
	ListApplied(ctx context.Context, repo string) ([]state.Applied, error)
	ListHolds(ctx context.Context, repo string) ([]state.Hold, error)
	ListVersions(ctx context.Context, repo, service string) ([]state.Version, error)
}

var _ StateReader = state.Store(nil)

// LoadApplied reads a repository's applied targets and holds from the store
// in the planner's types: the Input.Applied and Input.Holds of a plan.
func LoadApplied(ctx context.Context, st StateReader, repo string) ([]planner.Applied, []planner.Hold, error) {
	rows, err := st.ListApplied(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	applied := make([]planner.Applied, 0, len(rows))
	for _, r := range rows {
		a := planner.Applied{Target: planner.Target{Service: r.Service, Role: r.Role, Host: r.Host}, Version: r.Version, Commit: r.Commit}
		var err error
		if a.Spec, a.Conn, err = decodeApplied(r.Spec, r.Host); err != nil {
			return nil, nil, fmt.Errorf("read applied spec of %s: %w", a.Target, err)
		}
		applied = append(applied, a)
	}
	hs, err := st.ListHolds(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	holds := make([]planner.Hold, 0, len(hs))
	for _, h := range hs {
		holds = append(holds, planner.Hold{Service: h.Service, Version: h.Version})
	}
	return applied, holds, nil
}

// LoadHistory reads every spec ever applied for a service, one entry per
// role and version, most recently applied first: the history
// planner.RollbackPlan picks from.
func LoadHistory(ctx context.Context, st StateReader, repo, service string) ([]planner.AppliedVersion, error) {
	versions, err := st.ListVersions(ctx, repo, service)
	if err != nil {
		return nil, err
	}
	out := make([]planner.AppliedVersion, 0, len(versions))
	for _, v := range versions {
		spec, _, err := decodeApplied(v.Spec, "")
		if err != nil {
			return nil, fmt.Errorf("read spec of version %s of %s/%s: %w", v.Version, service, v.Role, err)
		}
		out = append(out, planner.AppliedVersion{Role: v.Role, Version: v.Version, Commit: v.Commit, Spec: spec})
	}
	return out, nil
}

// appliedSpec is the stored form of an applied spec: the spec's fields
// (planner.Spec's JSON), and the connection under a key the Spec does not
// have.
type appliedSpec struct {
	planner.Spec
	Conn *hostRecord `json:"bosun_conn,omitempty"`
}

type hostRecord struct {
	Address string `json:"address"`
	User    string `json:"user"`
	Port    int    `json:"port"`
	Jump    string `json:"jump,omitempty"`
}

// encodeApplied is the stored form of a spec applied on a host reached as
// conn (nil: unknown): the spec's JSON with the connection beside it.
func encodeApplied(spec *planner.Spec, conn *planner.Host) ([]byte, error) {
	as := appliedSpec{Spec: *spec}
	if conn != nil {
		as.Conn = &hostRecord{Address: conn.Address, User: conn.User, Port: conn.Port, Jump: conn.Jump}
	}
	return json.Marshal(as)
}

// decodeApplied reads what encodeApplied wrote (or a bare spec): the spec,
// and the connection named host when one was recorded.
func decodeApplied(data []byte, host string) (planner.Spec, *planner.Host, error) {
	var as appliedSpec
	if err := json.Unmarshal(data, &as); err != nil {
		return planner.Spec{}, nil, err
	}
	if as.Conn == nil {
		return as.Spec, nil, nil
	}
	return as.Spec, &planner.Host{Name: host, Address: as.Conn.Address, User: as.Conn.User, Port: as.Conn.Port, Jump: as.Conn.Jump}, nil
}
