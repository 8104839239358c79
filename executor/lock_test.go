package executor

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// TestApply_WaitsForTheLock: a second rollout of a service waits for the
// first's lock, says whom it waits for, and gives up after LockWait; no
// host is contacted meanwhile.
func TestApply_WaitsForTheLock(t *testing.T) {
	st, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const lockName = "rollout:" + testRepo + ":web"
	if ok, _, err := st.AcquireLock(t.Context(), lockName, "bosun serve on ops-1", time.Minute); !ok || err != nil {
		t.Fatalf("take lock: %v %v", ok, err)
	}
	ex, rec := offlineExecutor(t, st)
	spec := webSpec("registry.invalid/web:v1")
	pl := &planner.Plan{Repo: testRepo, Commit: "c1", Services: []planner.Service{{Name: "web", Roles: []string{"web"}}},
		Hosts:   map[string]planner.Host{"h1": {Name: "h1", Address: "192.0.2.1"}},
		Changes: []planner.Change{{Target: planner.Target{Service: "web", Role: "web", Host: "h1"}, Action: planner.ActionCreate, Version: spec.Version(), Desired: spec}}}
	res, err := ex.Apply(t.Context(), pl, ApplyOpts{LockWait: 300 * time.Millisecond})
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "bosun serve on ops-1") {
		t.Fatalf("err = %v, want ErrLockTimeout naming the holder", err)
	}
	if res.Services[0].Status != state.StatusFailed || rec.dialed() {
		t.Errorf("result %+v, dialed %v", res.Services[0], rec.dialed())
	}
	evs := rec.events()
	if len(evs) == 0 || evs[0].Step != StepLock || evs[0].Status != StatusWaiting || !strings.Contains(evs[0].Message, "bosun serve on ops-1") {
		t.Errorf("events = %v, want a lock-waiting event naming the holder", evs)
	}

	// Released: the rollout proceeds (and fails to connect, which is fine here).
	if err := st.ReleaseLock(t.Context(), lockName, "bosun serve on ops-1"); err != nil {
		t.Fatal(err)
	}
	_, err = ex.Apply(t.Context(), pl, ApplyOpts{LockWait: 300 * time.Millisecond})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepConnect || !rec.dialed() {
		t.Fatalf("err = %v, want a connect StepError once the lock is free", err)
	}
	// The lock is released after the rollout.
	if ok, _, err := st.AcquireLock(t.Context(), lockName, "someone else", time.Minute); !ok || err != nil {
		t.Errorf("lock still held after Apply: %v %v", ok, err)
	}
}

// TestApply_removalOnAHostThatLeftTheInventory: a plan removes a target on
// a host that is no longer in fleet.yml (so the plan has no way to reach
// it): the apply forgets the target instead of refusing the whole plan,
// contacts no host, and says so.
func TestApply_removalOnAHostThatLeftTheInventory(t *testing.T) {
	st, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec := webSpec("registry.invalid/web:v1")
	if err := st.PutApplied(t.Context(), state.Applied{Repo: testRepo, Service: "web", Role: "web", Host: "gone", Version: spec.Version(), Commit: "c0", Spec: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	ex, rec := offlineExecutor(t, st)
	cur := &planner.Applied{Target: planner.Target{Service: "web", Role: "web", Host: "gone"}, Version: spec.Version(), Commit: "c0", Spec: *spec}
	pl := &planner.Plan{Repo: testRepo, Commit: "c1", Services: []planner.Service{{Name: "web", Roles: []string{"web"}}},
		Hosts:   map[string]planner.Host{},
		Changes: []planner.Change{{Target: cur.Target, Action: planner.ActionRemove, Current: cur}}}
	if _, err := ex.Apply(t.Context(), pl, ApplyOpts{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if rec.dialed() {
		t.Error("a host was contacted")
	}
	rows, err := st.ListApplied(t.Context(), testRepo)
	if err != nil || len(rows) != 0 {
		t.Errorf("applied = %v, %v; want the target forgotten", rows, err)
	}
	found := false
	evs := rec.events()
	for _, ev := range evs {
		if ev.Step == StepRemove && ev.Status == StatusSkipped && strings.Contains(ev.Message, "no longer in the inventory") {
			found = true
		}
	}
	if !found {
		t.Errorf("events = %v, want a skipped removal saying why", evs)
	}
}

// offlineRecorder records what an offline executor did.
type offlineRecorder struct {
	mu        sync.Mutex
	evs       []Event
	dialedAny bool
}

func (r *offlineRecorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

func (r *offlineRecorder) dialed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dialedAny
}

// offlineExecutor is an executor on st whose every dial fails and is
// recorded, with its progress events: for tests that must reach no host.
func offlineExecutor(t *testing.T, st Store) (*Executor, *offlineRecorder) {
	t.Helper()
	rec := &offlineRecorder{}
	b := newSSHBundle(t)
	ex, err := New(Config{
		Signers: []ssh.Signer{b.signer}, KnownHostsFile: b.kh, Store: st, Owner: "test",
		// No server is reached: any proxy image passes the preflight (the
		// test binary itself, built with cgo, would not).
		ProxyImage: "registry.invalid/bosun-proxy:test",
		DialFunc: func(ctx context.Context, addr string) (net.Conn, error) {
			rec.mu.Lock()
			rec.dialedAny = true
			rec.mu.Unlock()
			return nil, errors.New("no")
		},
		Progress: func(ev Event) { rec.mu.Lock(); rec.evs = append(rec.evs, ev); rec.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex, rec
}

// TestLock_lost: when a renewal finds the service's lock held by someone
// else (this process stalled past its lease and another rollout took it),
// the rollout's context ends with ErrLockLost, and unlocking leaves the
// other owner's lock alone.
func TestLock_lost(t *testing.T) {
	st, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ex, _ := offlineExecutor(t, st)
	ex.cfg.LockLease = 1200 * time.Millisecond // renewed every 400 ms
	ctx, unlock, err := ex.lock(t.Context(), testRepo, "web", ApplyOpts{})
	if err != nil {
		t.Fatal(err)
	}
	const name = "rollout:" + testRepo + ":web"

	// Renewals keep it: still held after more than a lease.
	time.Sleep(2 * time.Second)
	if ctx.Err() != nil {
		t.Fatalf("lock context ended while renewed: %v", context.Cause(ctx))
	}
	if ok, holder, _ := st.AcquireLock(t.Context(), name, "other", time.Minute); ok || holder.Owner != "test" {
		t.Fatalf("another owner took a renewed lock (holder %q)", holder.Owner)
	}

	// Taken over, as after an expiry.
	if err := st.ReleaseLock(t.Context(), name, "test"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := st.AcquireLock(t.Context(), name, "bosun serve on ops-2", time.Minute); !ok || err != nil {
		t.Fatalf("take over: %v %v", ok, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the rollout went on after its lock was taken")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), "web") {
		t.Errorf("cause = %v, want ErrLockLost naming the service", cause)
	}
	unlock()
	if ok, holder, _ := st.AcquireLock(t.Context(), name, "third", time.Minute); ok || holder.Owner != "bosun serve on ops-2" {
		t.Errorf("unlock released the new owner's lock (holder %q)", holder.Owner)
	}
}
