package daemon

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/state"
)

// A rollback asked of the daemon (the dashboard's action) applies the
// previous version and holds the service there, recorded with the actor;
// a version the service never ran is refused at once.
func TestDaemon_rollback(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	applier := newApplier()
	td := launchDaemon(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier)
	td.heads = heads
	td.waitApplied(t, time.Minute)
	ctx := t.Context()
	first, err := td.store.ListApplied(ctx, "repo-00")
	if err != nil || len(first) != 1 {
		t.Fatalf("applied = %+v %v", first, err)
	}
	v1 := first[0]

	td.heads["repo-00"] = commitRepo(t, filepath.Join(dir, "src", "repo-00"), "app:v2")
	if err := td.d.Sync(ctx, "repo-00", "test"); err != nil {
		t.Fatal(err)
	}
	td.waitApplied(t, time.Minute)

	if err := td.d.Rollback(ctx, "repo-00", "web", "not-a-version", "github:alice", ""); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("rollback to a version never run: %v, want ErrNotFound", err)
	}
	if err := td.d.Rollback(ctx, "repo-00", "web", "", "github:alice", "bad release"); err != nil {
		t.Fatal(err)
	}
	var hold state.Hold
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		hs, err := td.store.ListHolds(ctx, "repo-00")
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) == 1 {
			hold = hs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hold within a minute of the rollback")
		}
	}
	if hold.Service != "web" || hold.Version != v1.Version || !strings.Contains(hold.Reason, "github:alice") || !strings.Contains(hold.Reason, "bad release") {
		t.Errorf("hold = %+v, want web at %s by github:alice", hold, v1.Version)
	}
	now, _ := td.store.ListApplied(ctx, "repo-00")
	if len(now) != 1 || now[0].Version != v1.Version || now[0].Commit != v1.Commit {
		t.Errorf("after the rollback %+v runs, want v1 %s from %s", now, v1.Version, v1.Commit)
	}
	applier.mu.Lock()
	calls := append([]string(nil), applier.calls["repo-00"]...)
	applier.mu.Unlock()
	if len(calls) != 3 || calls[2] != v1.Commit {
		t.Errorf("applies %v, want v1, v2, then the rollback to v1's commit %s", calls, v1.Commit)
	}
}
