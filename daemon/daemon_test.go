package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

const secret = "daemon-test-secret"

// recordingApplier stands in for the executor: it records the plan as
// applied in the store, as the executor does once hosts are healthy, and
// counts its calls per repository.
type recordingApplier struct {
	st          state.Store
	mu          sync.Mutex
	calls       map[string][]string // repo -> commits applied, in order
	inFlight    map[string]int
	maxInFlight int // most applies of one repository at once, over all daemons sharing the applier

	delay     time.Duration // how long an apply takes (default 50 ms)
	started   chan string   // if set, gets the repository when an apply starts
	cancelled atomic.Bool   // an apply saw its context end before it finished
	block     chan struct{} // if set (under mu), applies wait for it to close
	// watched, if set, makes each apply a rollout that runs until its
	// context ends: it records a deployment, gives its id to
	// ApplyOpts.Watch and to watched, and returns as the executor does
	// when cancelled (its error wraps the context's cause).
	watched chan int64
	applies atomic.Int32 // calls of Apply
}

// hold makes the next applies wait until the returned func is called.
func (a *recordingApplier) hold() (release func()) {
	ch := make(chan struct{})
	a.mu.Lock()
	a.block = ch
	a.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (a *recordingApplier) Apply(ctx context.Context, plan *planner.Plan, opts executor.ApplyOpts) (*executor.Result, error) {
	a.mu.Lock()
	a.inFlight[plan.Repo]++
	a.maxInFlight = max(a.maxInFlight, a.inFlight[plan.Repo])
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight[plan.Repo]--
		a.mu.Unlock()
	}()
	a.applies.Add(1)
	if a.started != nil {
		a.started <- plan.Repo
	}
	if a.watched != nil {
		id, err := a.st.CreateDeployment(ctx, state.Deployment{Repo: plan.Repo, Service: "web", Commit: plan.Commit, Status: state.StatusDeploying, Trigger: opts.Trigger, StartedAt: time.Now().UTC()})
		if err != nil {
			return &executor.Result{}, err
		}
		if opts.Watch != nil {
			defer opts.Watch(id)()
		}
		a.watched <- id
		<-ctx.Done()
		a.cancelled.Store(true)
		err = fmt.Errorf("%w; rollout stopped: %w", context.Cause(ctx), ctx.Err())
		a.st.FinishDeployment(context.WithoutCancel(ctx), id, state.StatusFailed, err.Error())
		return &executor.Result{}, err
	}
	a.mu.Lock()
	block := a.block
	a.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			a.cancelled.Store(true)
			return &executor.Result{}, ctx.Err()
		}
	}
	delay := a.delay
	if delay == 0 {
		delay = 50 * time.Millisecond // a rollout takes time: give an overlap the chance to show
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		a.cancelled.Store(true)
		return &executor.Result{}, ctx.Err()
	}
	// The call is counted before the store shows it applied: tests wait
	// for the store (waitApplied), then read the calls.
	a.mu.Lock()
	a.calls[plan.Repo] = append(a.calls[plan.Repo], plan.Commit)
	a.mu.Unlock()
	res := &executor.Result{}
	for _, ch := range plan.Changes {
		if ch.Desired == nil {
			continue
		}
		spec, _ := json.Marshal(ch.Desired)
		if err := a.st.PutApplied(ctx, state.Applied{Repo: plan.Repo, Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Commit: plan.Commit, Spec: spec}); err != nil {
			return res, err
		}
		if n := len(res.Services); n == 0 || res.Services[n-1].Service != ch.Service {
			res.Services = append(res.Services, executor.ServiceResult{Service: ch.Service, Status: state.StatusDeployed})
		}
		sr := &res.Services[len(res.Services)-1]
		sr.Deployed = append(sr.Deployed, ch.Target)
	}
	return res, nil
}

// commitRepo commits a config repository deploying image at dir (made if
// missing).
func commitRepo(t *testing.T, dir, image string) string {
	t.Helper()
	return testbed.Commit(t, dir, "commit "+image, map[string]string{
		"fleet.yml":        "servers:\n  web-1: {host: 10.0.0.1}\n",
		"services/web.yml": "service: web\nimage: " + image + "\nservers: [web-1]\nproxy: {host: web.example.com}\n",
	})
}

type testDaemon struct {
	stop    func() error // as SIGTERM does: returns when Run did
	d       *Daemon
	url     string
	store   state.Store
	applier *recordingApplier
	syncs   sync.Map // repo -> *atomic.Int32
	heads   map[string]string
}

func newApplier() *recordingApplier {
	return &recordingApplier{calls: map[string][]string{}, inFlight: map[string]int{}}
}

// makeRepos commits a config repository per name under dir and returns
// their repository configs and heads.
func makeRepos(t *testing.T, dir string, n int) ([]RepoConfig, map[string]string) {
	heads := map[string]string{}
	var repos []RepoConfig
	for i := range n {
		name := fmt.Sprintf("repo-%02d", i)
		src := filepath.Join(dir, "src", name)
		heads[name] = commitRepo(t, src, "app:v1")
		repos = append(repos, RepoConfig{Name: name, URL: src, Branch: "master", Path: ".", Poll: Duration(time.Hour), ForgeRepo: "acme/" + name})
	}
	return repos, heads
}

// startDaemon runs a daemon over n local repositories with a real SQLite
// store and River queue, and a recording applier.
func startDaemon(t *testing.T, n int) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, n)
	td := launchDaemon(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, newApplier())
	td.heads = heads
	return td
}

// launchDaemon runs one daemon on the store at dsn (SQLite or PostgreSQL)
// with its own data folder.
func launchDaemon(t *testing.T, dsn string, repos []RepoConfig, applier *recordingApplier) *testDaemon {
	return launchDaemonGrace(t, dsn, repos, applier, 10*time.Second)
}

func launchDaemonGrace(t *testing.T, dsn string, repos []RepoConfig, applier *recordingApplier, grace time.Duration) *testDaemon {
	t.Helper()
	return launchDaemonWith(t, dsn, repos, applier, grace, nil)
}

// launchDaemonWith is launchDaemonGrace reporting to a forge through
// reporter (nil: none); mods change the daemon's dependencies.
func launchDaemonWith(t *testing.T, dsn string, repos []RepoConfig, applier *recordingApplier, grace time.Duration, reporter *webhook.Reporter, mods ...func(*Deps)) *testDaemon {
	t.Helper()
	st, err := state.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if applier.st == nil {
		applier.st = st
	}
	td := &testDaemon{store: st, applier: applier, heads: map[string]string{}}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Webhook.SecretEnv = "S"
	cfg.Grace = Duration(grace)
	cfg.Repos = repos
	deps := Deps{
		Store:    st,
		Applier:  applier,
		Reporter: reporter,
		NewQueue: func(ctx context.Context, workers *river.Workers) (Queue, error) {
			switch s := st.(type) {
			case *state.SQLite:
				return NewQueue(ctx, riversqlite.New(s.DB()), workers, 1, nil)
			case *state.Postgres:
				return NewQueue(ctx, riverpgxv5.New(s.Pool()), workers, 4, nil)
			}
			return nil, fmt.Errorf("store %T", st)
		},
		OnSynced: func(repo, sha string) {
			c, _ := td.syncs.LoadOrStore(repo, new(atomic.Int32))
			c.(*atomic.Int32).Add(1)
		},
	}
	for _, mod := range mods {
		mod(&deps)
	}
	d, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	td.d = d
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	td.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, webhook.NewHandler(webhook.Config{Secret: []byte(secret)}, d.Enqueue), ln) }()
	var once sync.Once
	td.stop = func() error {
		var err error
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := td.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return td
}

func (td *testDaemon) deliver(t *testing.T, event, id string, payload any, sign bool) int {
	body, raw := payload.([]byte)
	if !raw {
		body, _ = json.Marshal(payload)
	}
	req, _ := http.NewRequest(http.MethodPost, td.url+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	if sign {
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(webhook.Sign([]byte(secret), body)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func push(repo, sha string) *github.PushEvent {
	return &github.PushEvent{Ref: github.String("refs/heads/master"), After: github.String(sha), Before: github.String("0000"),
		Repo: &github.PushEventRepository{FullName: github.String(repo)}}
}

func (td *testDaemon) waitApplied(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for name, head := range td.heads {
			rows, err := td.store.ListApplied(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 || rows[0].Commit != head {
				missing = name
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not applied at its head %s within %s", missing, td.heads[missing], timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDaemon_burstOfDeliveries(t *testing.T) {
	td := startDaemon(t, 20)
	td.waitApplied(t, 2*time.Minute) // the start-up sync of every repository

	// A new commit in every repository, then 10 deliveries for each: 200 in
	// all, sent at once.
	for name := range td.heads {
		td.heads[name] = commitRepo(t, td.d.repo(name).cfg.URL, "app:v2")
	}
	start := time.Now()
	var wg sync.WaitGroup
	codes := make(chan int, 200)
	for name, head := range td.heads {
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- td.deliver(t, "push", fmt.Sprintf("%s-%d", name, i), push("acme/"+name, head), true)
			}()
		}
	}
	wg.Wait()
	took := time.Since(start)
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("a delivery was answered %d", c)
		}
	}
	t.Logf("200 deliveries answered in %s", took)

	for name := range td.heads {
		for i := range 10 {
			if _, err := td.store.GetDelivery(t.Context(), fmt.Sprintf("%s-%d", name, i)); err != nil {
				t.Fatalf("delivery %s-%d not stored: %v", name, i, err)
			}
		}
	}
	td.waitApplied(t, 2*time.Minute)
	td.applier.mu.Lock()
	defer td.applier.mu.Unlock()
	for name, head := range td.heads {
		calls := td.applier.calls[name]
		if len(calls) != 2 || calls[1] != head {
			t.Errorf("%s applied %v, want its first commit then %s once", name, calls, head)
		}
		c, _ := td.syncs.Load(name)
		if n := c.(*atomic.Int32).Load(); n > 1+10 {
			t.Errorf("%s: %d sync runs for 10 deliveries and a start", name, n)
		}
	}
}

func TestDaemon_badDeliveries(t *testing.T) {
	td := startDaemon(t, 1)
	td.waitApplied(t, time.Minute)
	if c := td.deliver(t, "push", "unsigned", push("acme/repo-00", "x"), false); c != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", c)
	}
	if _, err := td.store.GetDelivery(t.Context(), "unsigned"); err == nil {
		t.Error("an unsigned delivery was stored")
	}
	if c := td.deliver(t, "push", "other-repo", push("acme/unknown", "x"), true); c != http.StatusAccepted {
		t.Errorf("unknown repository: %d", c)
	}
	if d, err := td.store.GetDelivery(t.Context(), "other-repo"); err != nil || d.Outcome == "" {
		t.Errorf("a delivery for an untracked repository: %+v, %v; want stored with its outcome", d, err)
	}
	// The same delivery id twice: stored once, one job.
	const sha = "dddddddddddddddddddddddddddddddddddddddd"
	for range 2 {
		if c := td.deliver(t, "push", "dup", push("acme/repo-00", sha), true); c != http.StatusAccepted {
			t.Errorf("delivery: %d", c)
		}
	}
	var jobs int
	db := td.store.(*state.SQLite).DB()
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'bosun_sync' AND CAST(args AS TEXT) LIKE '%' || ? || '%'`, sha).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 1 {
		t.Errorf("a repeated delivery made %d jobs, want 1", jobs)
	}
	// An unsigned or malformed delivery makes none.
	if c := td.deliver(t, "push", "truncated", []byte("{\"ref\": \"refs/heads/ma"), true); c != http.StatusBadRequest {
		t.Errorf("truncated JSON: %d", c)
	}
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'bosun_sync'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 2 { // the start-up sync and "dup"
		t.Errorf("%d sync jobs, want 2 (start-up and one for the repeated delivery)", jobs)
	}

	resp, err := http.Get(td.url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("readyz: %v %v", resp.StatusCode, err)
	}
}

func TestMain(m *testing.M) { os.Exit(testbed.PostgresMain(m)) }

// TestDaemon_twoOnPostgres runs two daemons on one PostgreSQL database, as
// two replicas would, and sends every delivery to both: each commit is
// applied once, never two at a time for one repository, and each delivery
// makes one job.
func TestDaemon_twoOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	dsn := testbed.Postgres(t)
	repos, heads := makeRepos(t, t.TempDir(), 5)
	applier := newApplier()
	a := launchDaemon(t, dsn, repos, applier)
	b := launchDaemon(t, dsn, repos, applier)
	a.heads = heads
	a.waitApplied(t, 2*time.Minute)

	for i, rc := range repos {
		heads[rc.Name] = commitRepo(t, rc.URL, fmt.Sprintf("app:v2-%d", i))
	}
	var wg sync.WaitGroup
	for name, head := range heads {
		for i := range 4 {
			id := fmt.Sprintf("%s-%d", name, i)
			for _, td := range []*testDaemon{a, b} { // GitHub retries may reach either replica
				wg.Add(1)
				go func() {
					defer wg.Done()
					if c := td.deliver(t, "push", id, push("acme/"+name, head), true); c != http.StatusAccepted {
						t.Errorf("delivery %s: %d", id, c)
					}
				}()
			}
		}
	}
	wg.Wait()
	a.waitApplied(t, 2*time.Minute)

	applier.mu.Lock()
	defer applier.mu.Unlock()
	if applier.maxInFlight != 1 {
		t.Errorf("%d applies of one repository ran at once, want 1", applier.maxInFlight)
	}
	for name, head := range heads {
		if calls := applier.calls[name]; len(calls) != 2 || calls[1] != head {
			t.Errorf("%s applied %v, want its first commit and then %s, once each", name, calls, head)
		}
	}
	pool := a.store.(*state.Postgres).Pool()
	var jobs int
	for name, head := range heads {
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE kind = 'bosun_sync' AND args->>'sha' = $1", head).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if jobs != 1 {
			t.Errorf("%s: %d sync jobs for one commit (8 deliveries, 2 daemons), want 1", name, jobs)
		}
	}
}

// TestDaemon_gracefulStop stops a daemon during a rollout: within the grace
// period the rollout finishes; past it, the rollout's context is cancelled.
func TestDaemon_gracefulStop(t *testing.T) {
	for _, tc := range []struct {
		name          string
		grace, delay  time.Duration
		wantCancelled bool
	}{
		{"finishes within the grace period", 5 * time.Second, 500 * time.Millisecond, false},
		{"cancelled after the grace period", 300 * time.Millisecond, time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repos, _ := makeRepos(t, dir, 1)
			applier := newApplier()
			applier.delay, applier.started = tc.delay, make(chan string, 1)
			td := launchDaemonGrace(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier, tc.grace)
			select {
			case <-applier.started:
			case <-time.After(time.Minute):
				t.Fatal("no rollout started")
			}
			start := time.Now()
			if err := td.stop(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if applier.cancelled.Load() != tc.wantCancelled {
				t.Errorf("rollout cancelled = %v, want %v (stop took %s)", applier.cancelled.Load(), tc.wantCancelled, took)
			}
			applier.mu.Lock()
			finished := len(applier.calls["repo-00"])
			applier.mu.Unlock()
			if !tc.wantCancelled && finished != 1 {
				t.Errorf("the rollout did not finish before Run returned")
			}
		})
	}
}

// TestDaemon_deployStatuses checks what bosun/deploy says on each commit: a
// deploy is pending, then success; a commit that changes nothing to deploy
// gets one success "no changes" and no pending; running again for a commit
// already deployed (here: after a restart) posts nothing, so its status
// keeps saying what was deployed.
func TestDaemon_deployStatuses(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	src := filepath.Join(dir, "src", "repo-00")
	gh := testbed.NewFakeGitHub(t)
	rep := webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())
	dsn := "sqlite:///" + filepath.Join(dir, "state.db")
	td := launchDaemonWith(t, dsn, repos, newApplier(), 10*time.Second, rep)
	td.heads = heads
	td.waitApplied(t, time.Minute)

	statuses := func(sha string) []string {
		var out []string
		for _, s := range gh.Statuses() {
			if s.SHA == sha && s.GetContext() == webhook.ContextDeploy {
				out = append(out, s.GetState()+" "+s.GetDescription())
			}
		}
		return out
	}
	syncs := func() int32 {
		c, _ := td.syncs.LoadOrStore("repo-00", new(atomic.Int32))
		return c.(*atomic.Int32).Load()
	}
	waitSyncs := func(n int32, what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for syncs() < n {
			if time.Now().After(deadline) {
				t.Fatalf("no sync after %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// pushAndWait delivers a push of sha and waits for the sync it starts.
	pushAndWait := func(id, sha string) {
		t.Helper()
		before := syncs()
		if code := td.deliver(t, "push", id, push("acme/repo-00", sha), true); code != http.StatusAccepted {
			t.Fatalf("push %s: %d", id, code)
		}
		waitSyncs(before+1, "push "+id)
	}

	first := heads["repo-00"]
	waitSyncs(1, "start")
	got := statuses(first)
	if len(got) != 2 || !strings.HasPrefix(got[0], "pending") || !strings.HasPrefix(got[1], "success web on web-1") {
		t.Fatalf("statuses of the first commit = %q, want pending then success web on web-1…", got)
	}

	// A restart syncs the head again, which is deployed: nothing posted.
	if err := td.stop(); err != nil {
		t.Fatal(err)
	}
	td = launchDaemonWith(t, dsn, repos, newApplier(), 10*time.Second, rep)
	waitSyncs(1, "restart")
	if again := statuses(first); len(again) != 2 {
		t.Errorf("a second run for a deployed commit posted statuses: %q", again[2:])
	}

	// A commit outside the deploy configs: one success "no changes".
	readme := testbed.Commit(t, src, "add a readme", map[string]string{"README.md": "fleet\n"})
	pushAndWait("readme-1", readme)
	if got := statuses(readme); len(got) != 1 || !strings.HasPrefix(got[0], "success no changes") {
		t.Errorf("statuses of a commit with nothing to deploy = %q, want [success no changes]", got)
	}

	// A new image: pending, then success.
	bump := commitRepo(t, src, "app:v2")
	pushAndWait("bump-1", bump)
	if got := statuses(bump); len(got) != 2 || !strings.HasPrefix(got[0], "pending") || !strings.HasPrefix(got[1], "success web on web-1") {
		t.Errorf("statuses of a deploy = %q, want pending then success web on web-1…", got)
	}
}

// A sync asked for by a person runs each time, even of the commit the last
// sync ran, and its deployment's trigger names them.
func TestDaemon_syncAskedTwice(t *testing.T) {
	td := startDaemon(t, 1)
	td.waitApplied(t, 2*time.Minute)
	runs := func() int32 {
		c, _ := td.syncs.LoadOrStore("repo-00", new(atomic.Int32))
		return c.(*atomic.Int32).Load()
	}
	for i := range 2 {
		before := runs()
		if err := td.d.Sync(t.Context(), "repo-00", "github:alice"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for runs() == before {
			if time.Now().After(deadline) {
				t.Fatalf("sync %d asked by github:alice did not run within a minute", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := td.d.Sync(t.Context(), "nope", "github:alice"); err == nil {
		t.Errorf("Sync of an unknown repository succeeded")
	}
}

// A person's cancel request in a running deployment's events (what the
// dashboard adds) cancels the rollout with its actor: the commit's status
// says who cancelled it, and the sync is not retried.
func TestDaemon_cancel(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	gh := testbed.NewFakeGitHub(t)
	rep := webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())
	applier := newApplier()
	applier.watched = make(chan int64, 1)
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, applier, 10*time.Second, rep)
	var id int64
	select {
	case id = <-applier.watched:
	case <-time.After(time.Minute):
		t.Fatal("no rollout started within a minute")
	}
	time.Sleep(2 * cancelPoll) // watched, and not cancelled, while nobody asks
	if applier.cancelled.Load() {
		t.Fatal("the rollout was cancelled before anyone asked")
	}
	if err := td.store.AddEvent(t.Context(), state.Event{DeploymentID: id, Step: state.StepCancel, Status: state.CancelRequested, Actor: "github:dave", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		c, _ := td.syncs.LoadOrStore("repo-00", new(atomic.Int32))
		if c.(*atomic.Int32).Load() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled sync did not end within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got []string
	for _, s := range gh.Statuses() {
		if s.SHA == heads["repo-00"] && s.GetContext() == webhook.ContextDeploy {
			got = append(got, s.GetState()+" "+s.GetDescription())
		}
	}
	if len(got) != 2 || got[1] != "error cancelled by github:dave; every host runs its old or new version" {
		t.Errorf("statuses = %q, want pending then error cancelled by github:dave…", got)
	}
	d, err := td.store.GetDeployment(t.Context(), id)
	if err != nil || !strings.HasPrefix(d.Error, "cancelled by github:dave") {
		t.Errorf("deployment %d: %+v %v", id, d, err)
	}
	time.Sleep(2 * time.Second) // a retry would start within a second
	if n := applier.applies.Load(); n != 1 {
		t.Errorf("%d applies, want 1: a cancelled sync is not retried", n)
	}
}
