package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/sync/errgroup"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/metrics"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/watcher"
	"github.com/bosunhq/bosun/webhook"
)

// Applier rolls a plan out to servers: *executor.Executor. Its errors
// mean what the executor's do (see classify).
type Applier interface {
	Apply(ctx context.Context, plan *planner.Plan, opts executor.ApplyOpts) (*executor.Result, error)
}

var _ Applier = (*executor.Executor)(nil)

// Deps are the parts the daemon wires together; cmd/bosun builds them from
// the Config.
type Deps struct {
	Store    state.Store
	Applier  Applier
	Reporter *webhook.Reporter // nil: report nothing
	Secrets  planner.SecretSource
	// NewQueue makes the durable queue for the store with these workers;
	// cmd/bosun picks River's SQLite or PostgreSQL driver.
	NewQueue func(ctx context.Context, workers *river.Workers) (Queue, error)
	// Getenv reads the environment variables the config names: git
	// tokens (RepoConfig.GitAuth) and the ERB lookups a repository allows.
	Getenv func(string) string
	Logger *slog.Logger
	// Metrics records deployments, the queue and webhook answers; nil
	// records nothing.
	Metrics *metrics.Metrics
	// Dashboard is served on DashboardListener when set, else on the
	// daemon's listener beside the webhooks (for every path but theirs);
	// nil serves none.
	Dashboard         http.Handler
	DashboardListener net.Listener
	// OnSynced, when set, is called at the end of every sync job, once its
	// status is posted, with the repository and the commit it planned.
	OnSynced func(repo, sha string)
}

// Daemon is `bosun serve`.
type Daemon struct {
	deps Deps
	log  *slog.Logger

	owner string // this process, in lock owners

	mu       sync.RWMutex
	cfg      Config
	repos    map[string]*repoRuntime
	planners map[bool]*planner.Planner // by RequireSecrets; see Daemon.planner

	q        Queue
	statuses *statusPoster // nil: no forge
	insertMu sync.Map      // repository -> *sync.Mutex: its sync inserts take turns (insertSync)
}

type repoRuntime struct {
	cfg     RepoConfig
	w       *watcher.Watcher
	synced  atomic.Bool
	cancel  context.CancelFunc // stops its watcher on reload
	servers atomic.Pointer[Servers]
}

// Servers are the servers a repository's last plan named: how to reach
// them and their fleet.yml tags (for the dashboard's live check and tag
// filter).
type Servers struct {
	Hosts []planner.Host // sorted by name
	Tags  map[string][]string
}

// New makes a daemon for cfg; Run starts it.
func New(cfg Config, deps Deps) (*Daemon, error) {
	if deps.Store == nil || deps.Applier == nil || deps.NewQueue == nil {
		return nil, errors.New("daemon: Store, Applier and NewQueue are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	host, _ := os.Hostname()
	d := &Daemon{deps: deps, log: deps.Logger.With("component", "daemon"), cfg: cfg, repos: map[string]*repoRuntime{},
		owner: fmt.Sprintf("bosun serve %s pid %d", host, os.Getpid())}
	if deps.Reporter != nil {
		d.statuses = newStatusPoster(deps.Reporter, d.log)
	}
	deps.Metrics.SetQueue(d.queueStats)
	return d, nil
}

// Run serves webhooks and works the queue until ctx ends, then stops in
// three steps: intake stops at once, a running rollout gets cfg.Grace to
// finish, then its context is cancelled (the executor leaves every host on
// the old or the new version).
func (d *Daemon) Run(ctx context.Context, hooks *webhook.Handler, ln net.Listener) error {
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[SyncArgs]) error {
		return d.leased(ctx, job.JobRow, func(ctx context.Context, owner string) error {
			return d.workSync(ctx, owner, job.Attempt >= job.MaxAttempts, job.Args)
		})
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[PlanPRArgs]) error {
		return d.leased(ctx, job.JobRow, func(ctx context.Context, _ string) error { return d.workPlanPR(ctx, job.Args) })
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[RollbackArgs]) error {
		return d.leased(ctx, job.JobRow, func(ctx context.Context, owner string) error { return d.workRollback(ctx, owner, job.Args) })
	}))
	q, err := d.deps.NewQueue(ctx, workers)
	if err != nil {
		return err
	}
	d.q = q

	d.rescue(ctx)
	go every(ctx, rescueEvery, d.rescue) // a daemon may die at any time: its jobs' leases run out
	d.markInterrupted(ctx)
	go every(ctx, markInterruptedEvery, d.markInterrupted) // a dead daemon's lease may outlast this start
	if err := d.startRepos(ctx, d.cfg); err != nil {
		return err
	}
	// The queue's jobs run on a context that survives the signal for the
	// grace period, then is cancelled.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	if d.statuses != nil {
		// The poster outlives the jobs, whose last statuses it flushes.
		posterCtx, stopPoster := context.WithCancel(context.WithoutCancel(ctx))
		posted := make(chan struct{})
		go func() { d.statuses.run(posterCtx); close(posted) }()
		defer func() { stopPoster(); <-posted }()
	}
	if err := q.Start(jobCtx); err != nil {
		return fmt.Errorf("start queue: %w", err)
	}

	srv := &http.Server{Handler: d.routes(hooks), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	servers := map[net.Listener]*http.Server{ln: srv}
	if dln := d.deps.DashboardListener; dln != nil && d.deps.Dashboard != nil {
		servers[dln] = &http.Server{Handler: d.deps.Dashboard, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	}
	g, gctx := errgroup.WithContext(ctx)
	for l, sv := range servers {
		g.Go(func() error {
			if err := sv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		d.log.InfoContext(ctx, "stopping: intake closed, waiting for running work", "grace", time.Duration(d.cfg.Grace))
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, sv := range servers {
			sv.Shutdown(shutCtx)
		}
		d.stopRepos()
		stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(d.cfg.Grace))
		defer cancelStop()
		if err := q.Stop(stopCtx); err != nil {
			d.log.WarnContext(ctx, "grace period over: cancelling running work", "err", err)
			cancelJobs()
			hardCtx, cancelHard := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancelHard()
			q.StopAndCancel(hardCtx)
		}
		return nil
	})
	attrs := []any{"listen", ln.Addr().String(), "repos", len(d.cfg.Repos)}
	if dln := d.deps.DashboardListener; dln != nil && d.deps.Dashboard != nil {
		attrs = append(attrs, "dashboard", dln.Addr().String())
	}
	d.log.InfoContext(ctx, "bosun serve started", attrs...)
	return g.Wait()
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// markInterruptedEvery is how often Run looks for interrupted deployments.
const markInterruptedEvery = 30 * time.Second

// markInterrupted finishes, as failed, the deployments a crashed or killed
// daemon left "deploying". Run calls it at start and every
// markInterruptedEvery. A deployment counts as interrupted only when its
// service's rollout lock is free (its lease ran out): another daemon's
// running rollout holds it. The interrupted job itself runs again from the
// queue, so the servers converge.
func (d *Daemon) markInterrupted(ctx context.Context) {
	ds, err := d.deps.Store.ListDeployments(ctx, state.DeploymentFilter{Status: state.StatusDeploying})
	if err != nil {
		d.log.WarnContext(ctx, "interrupted deployments not checked", "err", err)
		return
	}
	for _, dep := range ds {
		lock := executor.LockName(dep.Repo, dep.Service)
		ok, _, err := d.deps.Store.AcquireLock(ctx, lock, d.owner+" start-up check", 10*time.Second)
		if err != nil || !ok {
			continue
		}
		if err := d.deps.Store.FinishDeployment(ctx, dep.ID, state.StatusFailed, "interrupted: bosun stopped during the rollout; the next run converges the servers"); err != nil {
			d.log.WarnContext(ctx, "interrupted deployment not marked", "deployment", dep.ID, "err", err)
		} else {
			d.log.InfoContext(ctx, "deployment marked interrupted", "deployment", dep.ID, "repo", dep.Repo, "service", dep.Service)
		}
		d.deps.Store.ReleaseLock(ctx, lock, d.owner+" start-up check")
	}
}

// startRepos starts a watcher for every repository of cfg; each reports new
// heads to the queue.
func (d *Daemon) startRepos(ctx context.Context, cfg Config) error {
	repos := map[string]*repoRuntime{}
	for _, rc := range cfg.Repos {
		auth, err := rc.GitAuth(cfg.SSH.KnownHosts, d.deps.Getenv)
		if err != nil {
			return fmt.Errorf("repository %s: %w", rc.Name, err)
		}
		w, err := watcher.New(watcher.Config{
			Name: rc.Name, URL: rc.URL, Branch: rc.Branch, Poll: time.Duration(rc.Poll), Auth: auth,
			Dir: filepath.Join(cfg.DataDir, "repos", rc.Name), Logger: d.deps.Logger,
		})
		if err != nil {
			return err
		}
		repos[rc.Name] = &repoRuntime{cfg: rc, w: w}
	}
	d.mu.Lock()
	old := d.repos
	d.repos, d.cfg = repos, cfg
	d.mu.Unlock()
	for _, rr := range old {
		rr.cancel()
	}
	for _, rr := range repos {
		wctx, cancel := context.WithCancel(ctx)
		rr.cancel = cancel
		first := true
		go rr.w.Run(wctx, func(rev watcher.Revision) {
			rr.synced.Store(true)
			// The head at start is synced whatever ran before: a
			// restart converges the servers on it.
			reason := reasonNewHead
			if first {
				reason, first = reasonStartHead, false
			}
			d.insert(wctx, SyncArgs{Repo: rev.Repo, SHA: rev.SHA, Reason: reason})
		})
	}
	return nil
}

func (d *Daemon) stopRepos() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, rr := range d.repos {
		rr.cancel()
	}
}

func (d *Daemon) repo(name string) *repoRuntime {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.repos[name]
}

func (d *Daemon) repoNames() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	names := make([]string, 0, len(d.repos))
	for n := range d.repos {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (d *Daemon) pingStore(ctx context.Context) error {
	_, err := d.deps.Store.ListHolds(ctx, "")
	return err
}

func (d *Daemon) insert(ctx context.Context, args river.JobArgs) error {
	if sa, ok := args.(SyncArgs); ok {
		return d.insertSync(ctx, sa)
	}
	res, err := d.q.Insert(ctx, args, nil)
	if err != nil {
		d.log.ErrorContext(ctx, "enqueue", "kind", args.Kind(), "err", err)
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	if res.UniqueSkippedAsDuplicate {
		d.log.DebugContext(ctx, "coalesced with a waiting job", "kind", args.Kind())
	}
	return nil
}

// insertSync queues a sync of args.Repo unless one is already waiting to
// start: that one fetches the branch head when it starts, which is after
// this push's commit was pushed, so it deploys it or something newer (the
// newest commit wins). A burst of pushes during a rollout thus makes one
// follow-up sync. A waiting sync that a retry backoff has put off is made
// to run now: there is a new commit to try. Inserts of one daemon take
// turns per repository; two replicas inserting at the same moment may both
// queue one, and the second run then finds nothing to do.
func (d *Daemon) insertSync(ctx context.Context, args SyncArgs) error {
	mu, _ := d.insertMu.LoadOrStore(args.Repo, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	res, err := d.q.JobList(ctx, river.NewJobListParams().Kinds(args.Kind()).States(waitingStates...).First(1000))
	if err != nil {
		return fmt.Errorf("list waiting syncs: %w", err)
	}
	for _, j := range res.Jobs {
		var waiting SyncArgs
		if json.Unmarshal(j.EncodedArgs, &waiting) != nil || waiting.Repo != args.Repo {
			continue
		}
		d.log.DebugContext(ctx, "coalesced with a waiting sync", "repo", args.Repo, "sha", args.SHA, "job", j.ID)
		if j.ScheduledAt.After(time.Now().Add(2 * time.Second)) {
			if _, err := d.q.JobRetry(ctx, j.ID); err != nil {
				return fmt.Errorf("bring sync job %d forward: %w", j.ID, err)
			}
		}
		return nil
	}
	if args.Reason != reasonStartHead && args.Actor == "" { // a person's sync always runs
		newest, err := d.newestSync(ctx, args.Repo)
		if err != nil {
			return err
		}
		if newest == args.SHA {
			d.log.DebugContext(ctx, "the newest sync ran this commit: nothing new", "repo", args.Repo, "sha", args.SHA, "reason", args.Reason)
			return nil
		}
	}
	res2, err := d.q.Insert(ctx, args, nil)
	if err != nil {
		d.log.ErrorContext(ctx, "enqueue", "kind", args.Kind(), "err", err)
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	if res2.UniqueSkippedAsDuplicate {
		d.log.DebugContext(ctx, "coalesced with a sync of the same commit", "repo", args.Repo, "sha", args.SHA)
	}
	return nil
}

// newestSync is the commit of the newest sync of repo that is running or
// has completed ("" for none). A push or new head of that commit has
// nothing new: the sync fetched the branch head when it started, after the
// commit was pushed; so a second delivery, or the watcher of another
// replica seeing the head late, queues no job. A newer sync of another
// commit (a force-push back to an earlier commit) makes it new again.
func (d *Daemon) newestSync(ctx context.Context, repo string) (string, error) {
	res, err := d.q.JobList(ctx, river.NewJobListParams().Kinds(SyncArgs{}.Kind()).
		States(rivertype.JobStateRunning, rivertype.JobStateCompleted).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(200))
	if err != nil {
		return "", fmt.Errorf("list recent syncs: %w", err)
	}
	for _, j := range res.Jobs {
		var a SyncArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil && a.Repo == repo {
			return a.SHA, nil
		}
	}
	return "", nil
}

// Enqueue is the webhook handler's EnqueueFunc: it queues the work a
// delivery asks for, then stores the delivery with what became of it. The
// job goes in first, so a crash between the two loses nothing: GitHub sees
// no 2xx and redelivers, and the job's uniqueness absorbs the repeat. A
// delivery id already stored queues nothing.
func (d *Daemon) Enqueue(ctx context.Context, ev webhook.Event) error {
	switch _, err := d.deps.Store.GetDelivery(ctx, ev.DeliveryID); {
	case err == nil:
		d.log.InfoContext(ctx, "repeated delivery ignored", "delivery_id", ev.DeliveryID)
		return nil
	case !errors.Is(err, state.ErrNotFound):
		return fmt.Errorf("look up delivery %s: %w", ev.DeliveryID, err)
	}
	jobs, outcome := d.jobsFor(ev)
	for _, job := range jobs {
		if err := d.insert(ctx, job); err != nil {
			return err
		}
	}
	if ev.Kind == webhook.KindPullRequest && ev.Action == "closed" {
		if err := d.forgetPR(ctx, ev); err != nil {
			return err
		}
	}
	if _, err := d.deps.Store.RecordDelivery(ctx, state.Delivery{ID: ev.DeliveryID, Event: string(ev.Kind), Repo: ev.Repo, Payload: ev.Payload, ReceivedAt: ev.ReceivedAt, Outcome: outcome}); err != nil {
		return fmt.Errorf("record delivery %s: %w", ev.DeliveryID, err)
	}
	return nil
}

// jobsFor says which jobs a delivery asks for, and in words what becomes of
// it.
func (d *Daemon) jobsFor(ev webhook.Event) ([]river.JobArgs, string) {
	var jobs []river.JobArgs
	outcome := "ignored: no repository tracks " + ev.Repo
	for _, name := range d.repoNames() {
		rr := d.repo(name)
		if rr == nil || rr.cfg.ForgeRepo != ev.Repo {
			continue
		}
		switch ev.Kind {
		case webhook.KindPush:
			if ev.Branch != rr.cfg.Branch {
				outcome = "ignored: branch " + ev.Branch + " is not tracked"
				continue
			}
			jobs = append(jobs, SyncArgs{Repo: name, SHA: ev.After, Reason: "push (delivery " + ev.DeliveryID + ")", PushedAt: ev.ReceivedAt})
		case webhook.KindPullRequest:
			if ev.BaseBranch != rr.cfg.Branch {
				outcome = "ignored: pull request targets " + ev.BaseBranch
				continue
			}
			switch ev.Action {
			case "opened", "synchronize", "reopened":
			case "closed":
				outcome = "pull request closed"
				continue
			default:
				outcome = "ignored: pull request " + ev.Action
				continue
			}
			jobs = append(jobs, PlanPRArgs{Repo: name, PR: ev.PR, HeadSHA: ev.HeadSHA, BaseBranch: ev.BaseBranch, Title: ev.Title, Author: ev.Author, URL: ev.URL})
		}
	}
	if len(jobs) > 0 {
		kinds := make([]string, len(jobs))
		for i, j := range jobs {
			kinds[i] = j.Kind()
		}
		outcome = "enqueued " + strings.Join(kinds, ", ")
	}
	return jobs, outcome
}

// forgetPR drops a closed (or merged) pull request from the dashboard's
// list of open ones, for every repository that tracks its forge repository.
func (d *Daemon) forgetPR(ctx context.Context, ev webhook.Event) error {
	for _, name := range d.repoNames() {
		if rr := d.repo(name); rr != nil && rr.cfg.ForgeRepo == ev.Repo {
			if err := d.deps.Store.DeletePullRequest(ctx, name, ev.PR); err != nil {
				return err
			}
		}
	}
	return nil
}

// repoLockLease is how long a repository's sync lock lasts unrenewed; a
// crashed daemon's lock is taken over after it.
const repoLockLease = 15 * time.Second

// jobLease is how long a running job's lease in the store (lock
// "job:ID") lasts unrenewed; its worker renews it every third of that. A
// job that has run for longer than that without its lease held lost its
// daemon (kill -9, a crash, a lost machine), and any daemon on the store
// rescues it (see rescue), every rescueEvery.
const (
	jobLease    = 15 * time.Second
	rescueEvery = 5 * time.Second
)

func jobLockName(id int64) string { return fmt.Sprintf("job:%d", id) }

// leased runs a job's work under the job's lease, renewed until work
// returns; owner names this attempt of the job in locks.
func (d *Daemon) leased(ctx context.Context, job *rivertype.JobRow, work func(ctx context.Context, owner string) error) error {
	name, owner := jobLockName(job.ID), fmt.Sprintf("%s job %d attempt %d", d.owner, job.ID, job.Attempt)
	ok, _, err := d.deps.Store.AcquireLock(ctx, name, owner, jobLease)
	if err != nil {
		return fmt.Errorf("take the lease of job %d: %w", job.ID, err)
	}
	if !ok { // a rescuer is looking at it this moment
		return river.JobSnooze(time.Second)
	}
	held, release := state.HoldLock(ctx, d.deps.Store, name, owner, jobLease, fmt.Errorf("%w: job %d", errLeaseLost, job.ID), d.log)
	defer release()
	return work(held, owner)
}

// errLeaseLost is the cause of a run stopped because a renewal found its
// job's lease or its repository's lock no longer held: this daemon stalled
// past the lease, and another daemon (which rescued the job) runs it now.
var errLeaseLost = errors.New("lease lost")

// rescue makes the jobs whose daemon died available again, so that a live
// daemon (this one, after a restart) runs them without waiting for a new
// push: a job counts as orphaned when it has been running for longer than
// jobLease and nobody holds its lease. The rescuer holds the lease while
// it rescues, so two daemons never rescue one job twice.
func (d *Daemon) rescue(ctx context.Context) {
	res, err := d.q.JobList(ctx, river.NewJobListParams().Kinds(SyncArgs{}.Kind(), PlanPRArgs{}.Kind(), RollbackArgs{}.Kind()).States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		d.log.WarnContext(ctx, "orphaned jobs not checked", "err", err)
		return
	}
	horizon := time.Now().Add(-jobLease)
	owner := d.owner + " rescuer"
	var orphans []*rivertype.JobRow
	for _, j := range res.Jobs {
		if j.AttemptedAt == nil || !j.AttemptedAt.Before(horizon) {
			continue
		}
		ok, _, err := d.deps.Store.AcquireLock(ctx, jobLockName(j.ID), owner, jobLease)
		if err != nil || !ok {
			continue
		}
		orphans = append(orphans, j)
	}
	if len(orphans) == 0 {
		return
	}
	defer func() {
		for _, j := range orphans {
			rctx, cancel := state.Detached(ctx)
			d.deps.Store.ReleaseLock(rctx, jobLockName(j.ID), owner)
			cancel()
		}
	}()
	if err := d.q.Rescue(ctx, orphans, "rescued: the daemon running it stopped renewing its lease", horizon); err != nil {
		d.log.WarnContext(ctx, "orphaned jobs not rescued", "err", err)
		return
	}
	for _, j := range orphans {
		d.log.InfoContext(ctx, "job of a stopped daemon rescued", "job", j.ID, "kind", j.Kind, "attempted_by", strings.Join(j.AttemptedBy, ", "))
	}
}

// workSync fetches a repository, plans its branch head against the applied
// state and applies the plan, reporting the deploy status from a defer so
// that every run ends with one. Runs of one repository hold its lock in the
// store, so they never overlap, in one process or several; a run that finds
// the lock taken waits its turn.
func (d *Daemon) workSync(ctx context.Context, owner string, lastAttempt bool, args SyncArgs) (err error) {
	rr := d.repo(args.Repo)
	if rr == nil {
		return river.JobCancel(fmt.Errorf("repository %s is no longer configured", args.Repo))
	}
	log := d.log.With("repo", args.Repo)
	lock := "sync:" + args.Repo
	ok, holder, err := d.deps.Store.AcquireLock(ctx, lock, owner, repoLockLease)
	if err != nil {
		return err
	}
	if !ok {
		log.DebugContext(ctx, "waiting for the repository's running sync", "holder", holder.Owner)
		return river.JobSnooze(time.Second)
	}
	ctx, release := state.HoldLock(ctx, d.deps.Store, lock, owner, repoLockLease, fmt.Errorf("%w: the lock of %s", errLeaseLost, args.Repo), d.log)
	defer release()
	rev, err := rr.w.Sync(ctx)
	if err != nil {
		log.WarnContext(ctx, "fetch failed; will retry", "err", err)
		return err
	}
	rr.synced.Store(true)
	log = log.With("sha", rev.SHA)
	start := time.Now()
	var summary string
	quiet := false // the commit's status is already final
	defer func() {
		if cause := context.Cause(ctx); err != nil && errors.Is(cause, errLeaseLost) {
			// The daemon that took the lease over runs the job and
			// reports its status; this run only stops.
			log.WarnContext(ctx, "run stopped: its lease was taken over", "err", cause)
			err = fmt.Errorf("%w; run stopped: %w", cause, err)
			return
		}
		st, desc, retry := classify(err, summary, time.Since(start))
		if retry && lastAttempt && st == webhook.StatePending && !errors.Is(err, context.Canceled) {
			st, desc = webhook.StateError, "gave up after the last attempt: "+strings.TrimPrefix(desc, "retrying: ")
		}
		posted := closedChan
		if !quiet {
			posted = d.status(rr, rev.SHA, st, desc)
		}
		if err != nil && !retry {
			log.ErrorContext(ctx, "deploy failed; waiting for a new commit", "err", err)
			err = river.JobCancel(err)
		} else if err != nil {
			log.WarnContext(ctx, "deploy failed; will retry", "err", err)
		}
		if synced := d.deps.OnSynced; synced != nil {
			go func() { <-posted; synced(args.Repo, rev.SHA) }()
		}
	}()
	fsys, err := rr.w.FetchCommit(ctx, rev.SHA, rr.cfg.Path)
	if err != nil {
		return err
	}
	fetched := time.Now()
	plan, err := d.plan(ctx, rr, rev.SHA, fsys, true)
	if err != nil {
		return err
	}
	rr.servers.Store(serversOf(plan))
	log.DebugContext(ctx, "planned", "fetch", fetched.Sub(start), "plan", time.Since(fetched), "changes", changed(plan))
	if plan.Empty() {
		// Run again for a commit it deployed (a restart, a poll, a
		// redelivered push): its status says so already, and "no changes"
		// would hide what was deployed. A commit that changes nothing
		// deployable gets "no changes" once, without a pending first.
		quiet = deployedAt(plan, rev.SHA)
		summary = "no changes"
		return nil
	}
	d.status(rr, rev.SHA, webhook.StatePending, "deploying")
	log.InfoContext(ctx, "rollout started", "reason", args.Reason)
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	res, err := d.deps.Applier.Apply(runCtx, plan, executor.ApplyOpts{Trigger: args.Reason, Actor: args.Actor, LockWait: time.Hour, Watch: d.cancelWatch(runCtx, cancelRun)})
	summary = res.Summary()
	d.record(args, res, err)
	return err
}

// record puts a rollout's results in the metrics: each service's status
// and duration and, when a pushed commit now serves everywhere, the time
// since its push arrived.
func (d *Daemon) record(args SyncArgs, res *executor.Result, err error) {
	m := d.deps.Metrics
	if m == nil || res == nil {
		return
	}
	now := time.Now()
	for _, sr := range res.Services {
		m.Deployment(args.Repo, sr.Service, string(sr.Status), sr.Duration, now)
	}
	if err == nil && len(res.Services) > 0 && !args.PushedAt.IsZero() {
		m.PushToServing(args.Repo, now.Sub(args.PushedAt))
	}
}

// deployedAt says whether some target of the plan was last applied from
// commit sha.
func deployedAt(plan *planner.Plan, sha string) bool {
	for _, ch := range plan.Changes {
		if ch.Current != nil && ch.Current.Commit == sha {
			return true
		}
	}
	return false
}

// workPlanPR plans a pull request's head against the applied state and
// posts the plan comment and the bosun/plan status.
func (d *Daemon) workPlanPR(ctx context.Context, args PlanPRArgs) error {
	rr := d.repo(args.Repo)
	if rr == nil {
		return river.JobCancel(fmt.Errorf("repository %s is no longer configured", args.Repo))
	}
	fsys, err := rr.w.FetchCommit(ctx, args.HeadSHA, rr.cfg.Path)
	if err != nil {
		return err
	}
	plan, err := d.plan(ctx, rr, args.HeadSHA, fsys, false)
	var body string
	var st webhook.State
	var desc string
	var cerrs planner.ConfigErrors
	switch {
	case errors.As(err, &cerrs):
		var b strings.Builder
		if err := cerrs.WriteMarkdown(&b); err != nil {
			return err
		}
		body, st, desc = b.String(), webhook.StateFailure, fmt.Sprintf("invalid config: %s", cerrs[0].Error())
	case err != nil:
		return err
	default:
		var b strings.Builder
		if err := plan.WriteMarkdown(&b); err != nil {
			return err
		}
		body, st = b.String(), webhook.StateSuccess
		desc = "no changes"
		if n := changed(plan); n > 0 {
			desc = fmt.Sprintf("%d to change", n)
		}
	}
	if d.deps.Reporter == nil || rr.cfg.ForgeRepo == "" {
		return d.storePR(ctx, rr, args, body, st, desc)
	}
	var refused error
	if err := d.deps.Reporter.Comment(ctx, rr.cfg.ForgeRepo, args.PR, rr.cfg.Name, body); err != nil {
		if !errors.Is(err, webhook.ErrRefused) {
			return err // retried with backoff
		}
		// Retrying cannot help; the status says the comment is stale.
		refused = err
		st, desc = webhook.StateError, "the plan comment was refused by the forge; run bosun plan to see the plan ("+desc+")"
	}
	if err := d.storePR(ctx, rr, args, body, st, desc); err != nil {
		return err
	}
	if err := d.deps.Reporter.SetStatus(ctx, webhook.Status{Repo: rr.cfg.ForgeRepo, SHA: args.HeadSHA, Context: webhook.ContextPlan, State: st, Description: desc}); err != nil {
		return err
	}
	if refused != nil {
		return river.JobCancel(refused)
	}
	return nil
}

// storePR keeps a pull request's last plan for the dashboard: the comment's
// Markdown and the bosun/plan status.
func (d *Daemon) storePR(ctx context.Context, rr *repoRuntime, args PlanPRArgs, body string, st webhook.State, desc string) error {
	err := d.deps.Store.PutPullRequest(ctx, state.PullRequest{Repo: rr.cfg.Name, Number: args.PR, HeadSHA: args.HeadSHA,
		Title: args.Title, Author: args.Author, URL: args.URL, Markdown: body, Status: string(st), Summary: desc})
	if err != nil {
		return fmt.Errorf("store the plan of %s#%d: %w", rr.cfg.Name, args.PR, err)
	}
	return nil
}

// plan reads the applied state of a repository and plans fsys against it.
func (d *Daemon) plan(ctx context.Context, rr *repoRuntime, sha string, fsys fs.FS, requireSecrets bool) (*planner.Plan, error) {
	key, err := d.deps.Store.SecretKey(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	applied, holds, err := executor.LoadApplied(ctx, d.deps.Store, rr.cfg.Name)
	if err != nil {
		return nil, err
	}
	d.log.DebugContext(ctx, "applied state read", "repo", rr.cfg.Name, "targets", len(applied), "took", time.Since(t0))
	return d.planner(key, requireSecrets).Plan(ctx, fsys, planner.Input{Repo: rr.cfg.Name, Commit: sha, Applied: applied, Holds: holds,
		Destination: rr.cfg.Destination, ERBEnv: planner.ERBEnvFrom(d.deps.Getenv, rr.cfg.ERBEnv)})
}

// planner returns the daemon's planner for deploys (secrets required) or
// for pull request plans; each keeps its cache of parsed files across runs.
func (d *Daemon) planner(key []byte, requireSecrets bool) *planner.Planner {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.planners == nil {
		d.planners = map[bool]*planner.Planner{}
	}
	p, ok := d.planners[requireSecrets]
	if !ok {
		p = planner.New(planner.Config{Logger: d.deps.Logger, Secrets: d.deps.Secrets, SecretKey: key, RequireSecrets: requireSecrets})
		d.planners[requireSecrets] = p
	}
	return p
}

// status queues a deploy status when the repository reports to a forge;
// the channel is closed once it was posted or given up. Statuses go out in
// the background, in order: a forge failure never stops or delays a
// deploy, it is retried and logged.
func (d *Daemon) status(rr *repoRuntime, sha string, st webhook.State, desc string) <-chan struct{} {
	if d.statuses == nil || rr.cfg.ForgeRepo == "" {
		return closedChan
	}
	return d.statuses.post(webhook.Status{Repo: rr.cfg.ForgeRepo, SHA: sha, Context: webhook.ContextDeploy, State: st, Description: desc})
}

var closedChan = func() <-chan struct{} { c := make(chan struct{}); close(c); return c }()

// classify decides what a run's error means: the final status, its line,
// and whether the job should be retried. A rollout that failed on a host
// (*executor.RolloutError) is the commit's fault, or its image's: failure,
// no retry. A lost service lock is not: another rollout took over, so the
// run goes again once the lock is free.
func classify(err error, summary string, took time.Duration) (webhook.State, string, bool) {
	var cerrs planner.ConfigErrors
	var rerr *executor.RolloutError
	var cancelled *executor.Cancelled
	switch {
	case err == nil:
		if summary == "" {
			summary = "deployed"
		}
		return webhook.StateSuccess, fmt.Sprintf("%s in %s", summary, took.Round(100*time.Millisecond)), false
	case errors.As(err, &cerrs):
		return webhook.StateFailure, "invalid config: " + cerrs[0].Error(), false
	case errors.As(err, &cancelled):
		// A person stopped it: not retried; the next push or sync
		// deploys again.
		return webhook.StateError, cancelled.Error() + "; every host runs its old or new version", false
	case errors.Is(err, context.Canceled):
		return webhook.StatePending, "interrupted; bosun resumes when it restarts", true
	case errors.Is(err, executor.ErrLockLost):
		return webhook.StateError, err.Error(), true
	case errors.As(err, &rerr) && unreachable(rerr):
		// Not the commit's fault: the host may be back in a minute.
		return webhook.StatePending, "retrying: " + rerr.Error(), true
	case errors.As(err, &rerr):
		msg := rerr.Error()
		if len(rerr.RolledBack) > 0 {
			msg += " (rolled back)"
		}
		return webhook.StateFailure, msg, false
	default:
		return webhook.StateError, err.Error(), true
	}
}

// unreachable says whether a rollout failed because a host could not be
// reached (SSH or its Docker socket), which is transient. A refused host
// key is not: it stays refused until the operator acts.
func unreachable(rerr *executor.RolloutError) bool {
	var se *executor.StepError
	var hk *executor.HostKeyError
	return errors.As(rerr.Err, &se) && se.Step == executor.StepConnect && !errors.As(rerr.Err, &hk)
}

func changed(p *planner.Plan) int {
	n := 0
	for _, c := range p.Changes {
		switch c.Action {
		case planner.ActionCreate, planner.ActionUpdate, planner.ActionRemove:
			n++
		}
	}
	return n
}

// serversOf is the servers of a plan.
func serversOf(plan *planner.Plan) *Servers {
	sv := &Servers{Tags: plan.Tags}
	for _, h := range plan.Hosts {
		sv.Hosts = append(sv.Hosts, h)
	}
	sort.Slice(sv.Hosts, func(i, j int) bool { return sv.Hosts[i].Name < sv.Hosts[j].Name })
	return sv
}

// Servers returns the servers repo's last sync planned for, with their
// tags; nil before its first sync in this process.
func (d *Daemon) Servers(repo string) *Servers {
	if rr := d.repo(repo); rr != nil {
		return rr.servers.Load()
	}
	return nil
}

// Repos names the configured repositories (for the dashboard).
func (d *Daemon) Repos() []string { return d.repoNames() }

// Sync queues a sync of repo now, as a push would, asked by actor (who
// is recorded with the deployment and its events). While a sync of repo
// waits to start, it is that one that runs.
func (d *Daemon) Sync(ctx context.Context, repo, actor string) error {
	if d.repo(repo) == nil {
		return fmt.Errorf("sync: no repository %s", repo)
	}
	if d.q == nil {
		return errors.New("sync: the daemon is not running")
	}
	return d.insert(ctx, SyncArgs{Repo: repo, Reason: "sync by " + actor, Actor: actor, Asked: time.Now().UnixNano()})
}

// queueStats is the queue as the metrics show it: the jobs waiting to
// start and the age of the oldest.
func (d *Daemon) queueStats(ctx context.Context) (int, time.Duration, error) {
	if d.q == nil {
		return 0, 0, nil
	}
	res, err := d.q.JobList(ctx, river.NewJobListParams().States(waitingStates...).OrderBy(river.JobListOrderByTime, river.SortOrderAsc).First(1000))
	if err != nil {
		return 0, 0, fmt.Errorf("list waiting jobs: %w", err)
	}
	var oldest time.Duration
	for _, j := range res.Jobs {
		oldest = max(oldest, time.Since(j.CreatedAt))
	}
	return len(res.Jobs), oldest, nil
}

// Reload switches to a new configuration without dropping in-flight work:
// repositories are re-read (watchers restarted), the grace period and log
// settings follow. The listen address and the state store take effect only
// at the next start; Reload says so in the log.
func (d *Daemon) Reload(ctx context.Context, cfg Config) error {
	d.mu.RLock()
	old := d.cfg
	d.mu.RUnlock()
	if cfg.Listen != old.Listen || cfg.State != old.State || cfg.DataDir != old.DataDir {
		d.log.WarnContext(ctx, "listen, state and data_dir changes take effect at the next start")
		cfg.Listen, cfg.State, cfg.DataDir = old.Listen, old.State, old.DataDir
	}
	if err := d.startRepos(ctx, cfg); err != nil {
		return err
	}
	d.log.InfoContext(ctx, "config reloaded", "repos", len(cfg.Repos))
	return nil
}
