package daemon

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

// syncJobs counts the sync jobs in the store's queue, and those of them not
// finished.
func syncJobs(t *testing.T, st state.Store) (all, unfinished int) {
	t.Helper()
	const q = `SELECT count(*), count(*) FILTER (WHERE state NOT IN ('completed', 'cancelled', 'discarded')) FROM river_job WHERE kind = 'bosun_sync'`
	var err error
	switch s := st.(type) {
	case *state.SQLite:
		err = s.DB().QueryRowContext(t.Context(), q).Scan(&all, &unfinished)
	case *state.Postgres:
		err = s.Pool().QueryRow(t.Context(), q).Scan(&all, &unfinished)
	}
	if err != nil {
		t.Fatal(err)
	}
	return all, unfinished
}

func waitStarted(t *testing.T, a *recordingApplier, what string) {
	t.Helper()
	select {
	case <-a.started:
	case <-time.After(time.Minute):
		t.Fatalf("no rollout started for %s within a minute", what)
	}
}

// TestDaemon_burstCoalescesPerRepository sends 2,000 pushes with distinct
// SHAs while a rollout runs. A sync deploys the branch head, not the
// pushed SHA, so they make one follow-up sync, which deploys the newest
// commit: one job, one rollout and one pending and one success status, not
// one per push.
func TestDaemon_burstCoalescesPerRepository(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	gh := testbed.NewFakeGitHub(t)
	applier := newApplier()
	applier.started = make(chan string, 8)
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier, 10*time.Second, webhook.NewReporter(webhook.ReporterConfig{}, gh.Client()))
	td.heads = heads
	waitStarted(t, applier, "the start-up sync")
	td.waitApplied(t, time.Minute)
	src := repos[0].URL

	release := applier.hold()
	defer release()
	first := commitRepo(t, src, "app:v2")
	if c := td.deliver(t, "push", "first", push("acme/repo-00", first), true); c != http.StatusAccepted {
		t.Fatalf("push: %d", c)
	}
	waitStarted(t, applier, "the first push")
	jobsBefore, _ := syncJobs(t, td.store)

	// The burst: the pushed commits need not exist, as a sync fetches the
	// branch head; the last push is the newest commit.
	newest := commitRepo(t, src, "app:v3")
	const pushes = 2000
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				sha := fmt.Sprintf("%040x", i+1)
				if i == pushes-1 {
					sha = newest
				}
				if c := td.deliver(t, "push", fmt.Sprintf("burst-%d", i), push("acme/repo-00", sha), true); c != http.StatusAccepted {
					t.Errorf("push %d: %d", i, c)
				}
			}
		})
	}
	for i := range pushes {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if jobs, _ := syncJobs(t, td.store); jobs-jobsBefore != 1 {
		t.Fatalf("%d pushes during a rollout made %d sync jobs, want 1", pushes, jobs-jobsBefore)
	}

	release()
	td.heads["repo-00"] = newest
	td.waitApplied(t, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, unfinished := syncJobs(t, td.store); unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sync jobs still unfinished a minute after the burst")
		}
		time.Sleep(50 * time.Millisecond)
	}
	applier.mu.Lock()
	calls := append([]string(nil), applier.calls["repo-00"]...)
	applier.mu.Unlock()
	if len(calls) != 3 || calls[1] != first || calls[2] != newest {
		t.Errorf("rollouts %v, want the start-up commit, %s and %s, once each", calls, first, newest)
	}
	// Statuses go out in the background: wait for the last one.
	waitFor(t, time.Minute, "the newest commit's success status", func() bool {
		st := gh.Statuses()
		return len(st) > 0 && st[len(st)-1].SHA == newest && st[len(st)-1].GetState() == "success"
	})
	var got []string
	for _, s := range gh.Statuses() {
		if s.SHA != calls[0] {
			got = append(got, commitsha.Short(s.SHA)+" "+s.GetState())
		}
	}
	if want := []string{commitsha.Short(first) + " pending", commitsha.Short(first) + " success", commitsha.Short(newest) + " pending", commitsha.Short(newest) + " success"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses after the start-up deploy: %q, want %q", got, want)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDaemon_lostLeaseStopsTheRun takes a running sync's repository lock
// away, as another daemon does once this one stalled past the lease: the
// run stops (the rollout's context ends) instead of racing the new owner,
// leaves the new owner's lock alone, and posts no status of its own.
func TestDaemon_lostLeaseStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	gh := testbed.NewFakeGitHub(t)
	applier := newApplier()
	applier.started = make(chan string, 8)
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier, 10*time.Second, webhook.NewReporter(webhook.ReporterConfig{}, gh.Client()))
	td.heads = heads
	waitStarted(t, applier, "the start-up sync")
	td.waitApplied(t, time.Minute)

	release := applier.hold()
	defer release()
	sha := commitRepo(t, repos[0].URL, "app:v2")
	if c := td.deliver(t, "push", "v2", push("acme/repo-00", sha), true); c != http.StatusAccepted {
		t.Fatalf("push: %d", c)
	}
	waitStarted(t, applier, "the push")

	const lock = "sync:repo-00"
	ok, holder, err := td.store.AcquireLock(t.Context(), lock, "test", time.Minute)
	if err != nil || ok {
		t.Fatalf("the running sync does not hold %s: %v %+v %v", lock, ok, holder, err)
	}
	if err := td.store.ReleaseLock(t.Context(), lock, holder.Owner); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := td.store.AcquireLock(t.Context(), lock, "another daemon", time.Minute); err != nil || !ok {
		t.Fatalf("take the lock over: %v %v", ok, err)
	}
	// Renewals come every repoLockLease/3.
	waitFor(t, repoLockLease, "the run to stop", applier.cancelled.Load)
	time.Sleep(time.Second) // a status the stopped run posted would be out by now
	if ok, h, _ := td.store.AcquireLock(t.Context(), lock, "test", time.Minute); ok || h.Owner != "another daemon" {
		t.Errorf("the stopped run gave up the new owner's lock (holder %q)", h.Owner)
	}
	for _, st := range gh.Statuses() {
		if st.SHA == sha && (st.GetState() != "pending" || st.GetDescription() != "deploying") {
			t.Errorf("the stopped run posted %s %q for %s; the new owner reports the run", st.GetState(), st.GetDescription(), sha)
		}
	}
}

// TestDaemon_rescuesJobOfDeadDaemon leaves a sync job running on a daemon
// that dies (its store connection closes under it, as a kill -9 does: no
// lease is renewed, the job is never finished). Another daemon on the same
// store, a restart on SQLite or the survivor of two on PostgreSQL, runs the
// job again, with no new push: the job's lease expired.
func TestDaemon_rescuesJobOfDeadDaemon(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dsn      func(t *testing.T) string
		together bool // both daemons run from the start (replicas), or the second is a restart
	}{
		{"restart on SQLite", func(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "state.db") }, false},
		{"survivor on PostgreSQL", func(t *testing.T) string {
			if testing.Short() {
				t.Skip("needs PostgreSQL")
			}
			return testbed.Postgres(t)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := tc.dsn(t)
			repos, heads := makeRepos(t, t.TempDir(), 1)
			a := launchDaemonGrace(t, dsn, repos, newApplier(), 300*time.Millisecond)
			a.heads = heads
			a.waitApplied(t, time.Minute)
			appliers := []*recordingApplier{a.applier}
			daemons := []*testDaemon{a}
			if tc.together {
				b := launchDaemonGrace(t, dsn, repos, newApplier(), 300*time.Millisecond)
				appliers, daemons = append(appliers, b.applier), append(daemons, b)
			}
			started := make(chan int, 2)
			for i, ap := range appliers {
				ap.started = make(chan string, 4)
				ap.hold() // never released: the rollout hangs until its daemon dies
				go func() {
					<-ap.started
					started <- i
				}()
			}
			sha := commitRepo(t, repos[0].URL, "app:v2")
			if c := a.deliver(t, "push", "v2", push("acme/repo-00", sha), true); c != http.StatusAccepted {
				t.Fatalf("push: %d", c)
			}
			var victim int
			select {
			case victim = <-started:
			case <-time.After(time.Minute):
				t.Fatal("no rollout started")
			}
			// Kill the daemon running the rollout: its store goes away.
			daemons[victim].store.Close()
			killed := time.Now()

			var survivor *testDaemon
			if tc.together {
				survivor = daemons[1-victim]
				survivor.applier.mu.Lock()
				survivor.applier.block = nil
				survivor.applier.mu.Unlock()
			} else {
				survivor = launchDaemon(t, dsn, repos, newApplier())
			}
			survivor.heads = map[string]string{"repo-00": sha}
			survivor.waitApplied(t, 2*time.Minute)
			t.Logf("the job ran again %s after its daemon died", time.Since(killed).Round(time.Second))
		})
	}
}

// TestDaemon_statusNeverDelaysRollout makes the forge hang on the pending
// status, then answer it with an error: the rollout starts while the
// status is still unanswered, and the final status is posted once the forge
// recovers.
func TestDaemon_statusNeverDelaysRollout(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			dir := t.TempDir()
			repos, heads := makeRepos(t, dir, 1)
			gh := testbed.NewFakeGitHub(t)
			applier := newApplier()
			applier.started = make(chan string, 4)
			answer := gh.StallStatuses(code)
			defer answer()
			td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier, 10*time.Second, webhook.NewReporter(webhook.ReporterConfig{}, gh.Client()))
			td.heads = heads
			select {
			case <-applier.started:
			case <-time.After(time.Minute):
				t.Fatal("the rollout did not start while the forge held the pending status")
			}
			if n := len(gh.Statuses()); n != 0 {
				t.Fatalf("%d statuses were answered before the rollout started; want the pending one still held", n)
			}
			answer()
			td.waitApplied(t, time.Minute)
			waitFor(t, time.Minute, "the success status after the forge recovered", func() bool {
				st := gh.Statuses()
				return len(st) > 0 && st[len(st)-1].GetState() == "success" && st[len(st)-1].SHA == heads["repo-00"]
			})
		})
	}
}

var _ = context.Background

// TestDaemon_pushOfSyncedCommitQueuesNothing: a second delivery of a pushed
// commit (another delivery id: a second webhook, or a copy that reached the
// other replica late) after its sync has run queues no job, as one arriving
// while it waits does. A commit that a newer sync has since moved away from
// (a force-push back to it) is synced again.
func TestDaemon_pushOfSyncedCommitQueuesNothing(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, newApplier(), 10*time.Second, nil)
	td.heads = heads
	td.waitApplied(t, time.Minute)
	src := repos[0].URL
	settled := func(what string) int {
		t.Helper()
		waitFor(t, time.Minute, what, func() bool { _, unfinished := syncJobs(t, td.store); return unfinished == 0 })
		all, _ := syncJobs(t, td.store)
		return all
	}
	deliver := func(id, sha string) {
		t.Helper()
		if c := td.deliver(t, "push", id, push("acme/repo-00", sha), true); c != http.StatusAccepted {
			t.Fatalf("push %s: %d", id, c)
		}
	}

	v2 := commitRepo(t, src, "app:v2")
	deliver("a", v2)
	td.heads["repo-00"] = v2
	td.waitApplied(t, time.Minute)
	jobs := settled("the sync of v2")

	deliver("b", v2) // the same commit, another delivery
	if got := settled("the second delivery of v2"); got != jobs {
		t.Errorf("a second delivery of the synced commit made %d sync job(s), want 0", got-jobs)
	}

	// v3, then a force-push back to v2: v2 is new again.
	v3 := commitRepo(t, src, "app:v3")
	deliver("c", v3)
	td.heads["repo-00"] = v3
	td.waitApplied(t, time.Minute)
	jobs = settled("the sync of v3")
	deliver("d", v2)
	if got := settled("the push back to v2"); got != jobs+1 {
		t.Errorf("a push back to an earlier commit made %d sync job(s), want 1", got-jobs)
	}
}
