package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// DefaultConcurrency is how many hosts an Executor works on at once unless
// Config.Concurrency says otherwise. A batch (boot.limit, or every host of a
// role) of up to this many hosts goes out in one wave, so a rollout to 16
// servers takes about as long as to one, as long as each server has its
// own CPU; Kamal likewise opens up to 30 SSH connections at once.
const DefaultConcurrency = 32

// A state.Store is what the executor records to.
var _ Store = state.Store(nil)

// Executor takes plans to servers. It keeps one SSH connection (and one
// Docker client over it) per host for its lifetime; Close ends them. It is
// safe for concurrent use; rollouts of one service are serialised by the
// store's lock, and against other stores by the lock on the servers
// (serverLock).
type Executor struct {
	cfg      Config
	log      *slog.Logger
	pool     *sshPool
	proxyImg *proxyImage
	sem      chan struct{} // bounds hosts worked on at once

	mu    sync.Mutex
	hosts map[string]*hostConn

	emitMu sync.Mutex

	idMu sync.Mutex
	id   string // the store's identity on servers, once read (see storeID)
}

// hostConn is one server: its SSH connection and Docker client.
type hostConn struct {
	name     string
	ssh      *sshConn
	docker   *client.Client
	proxyMu  sync.Mutex
	proxySrc proxySource // the server's proxy image, once decided
	proxy    *proxyOnHost
	netOnce  sync.Once
	netErr   error
	homeMu   sync.Mutex
	home     string // the SSH user's login folder, once read
	fwdMu    sync.Mutex
	forwards map[int]*localForward // open remote forwards of local registries, by port
}

// New makes an Executor. It loads the SSH credentials but connects to no
// host until a rollout or Status needs it.
func New(cfg Config) (*Executor, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "executor")
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.LockLease <= 0 {
		cfg.LockLease = time.Minute
	}
	if cfg.Owner == "" {
		hn, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("bosun pid %d on %s", os.Getpid(), hn)
	}
	pool, err := newSSHPool(&cfg, log)
	if err != nil {
		return nil, err
	}
	e := &Executor{cfg: cfg, log: log, pool: pool, sem: make(chan struct{}, cfg.Concurrency), hosts: map[string]*hostConn{}}
	e.proxyImg = &proxyImage{cfg: &e.cfg}
	return e, nil
}

// Close closes every SSH connection.
func (e *Executor) Close() error {
	e.mu.Lock()
	hosts := e.hosts
	e.hosts = map[string]*hostConn{}
	e.mu.Unlock()
	for _, h := range hosts {
		_ = h.docker.Close()
	}
	e.pool.close()
	return nil
}

// host returns the connection of a plan host, making it on first use.
func (e *Executor) host(h planner.Host) (*hostConn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := h.Name
	if hc, ok := e.hosts[key]; ok {
		return hc, nil
	}
	sc := e.pool.conn(h)
	dc, err := newDockerClient(sc)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", h.Name, err)
	}
	hc := &hostConn{name: h.Name, ssh: sc, docker: dc}
	e.hosts[key] = hc
	return hc, nil
}

// connect makes sure the host answers over SSH.
func (hc *hostConn) connect(ctx context.Context) error {
	_, err := hc.ssh.Client(ctx)
	return err
}

// ensureNetwork creates network bosun once per executor and host.
func (hc *hostConn) ensureNetwork(ctx context.Context) error {
	hc.netOnce.Do(func() { hc.netErr = ensureNetwork(ctx, hc.docker) })
	if hc.netErr != nil {
		err := hc.netErr
		hc.netOnce = sync.Once{} // try again next time
		return err
	}
	return nil
}

// homeDir returns the SSH user's login folder on the server, where Kamal
// keeps relative bind sources and accessory directories ($PWD of its
// commands). It runs the fixed command "pwd" once per executor and host;
// the answer must be a clean absolute path that can be part of a bind.
func (hc *hostConn) homeDir(ctx context.Context) (string, error) {
	hc.homeMu.Lock()
	defer hc.homeMu.Unlock()
	if hc.home != "" {
		return hc.home, nil
	}
	cl, err := hc.ssh.Client(ctx)
	if err != nil {
		return "", err
	}
	sess, err := cl.NewSession()
	if err != nil {
		return "", fmt.Errorf("read the SSH user's home folder: %w", err)
	}
	defer sess.Close()
	out, err := sess.Output("pwd")
	if err != nil {
		return "", fmt.Errorf("read the SSH user's home folder (pwd): %w", err)
	}
	home := strings.TrimSuffix(string(out), "\n")
	if !path.IsAbs(home) || path.Clean(home) != home || strings.ContainsAny(home, ":,\n\r\x00") {
		return "", fmt.Errorf("read the SSH user's home folder: pwd printed %q, not a clean absolute path without ':' or ','", clip(home, 80))
	}
	hc.home = home
	return home, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ApplyOpts are per-call options of Apply.
type ApplyOpts struct {
	Trigger string // who or what started it, recorded with the deployment ("cli", "push abc123", …)
	// Actor is the person or script that asked for the rollout
	// ("github:alice", "token:ci"), recorded on each of its events; "" for
	// bosun's own work (a push, a poll).
	Actor string
	// LockWait bounds the wait for another rollout of a service to finish;
	// 0 waits until ctx ends.
	LockWait time.Duration
	// Watch, when set, is called with each service's deployment id once
	// it is recorded, and returns a func that Apply calls when that
	// service's rollout has ended. The daemon watches for a person's
	// cancel with it: it cancels Apply's context with a *Cancelled cause.
	Watch func(deploymentID int64) (stop func())
	// RemoveKamal removes, after a successful takeover, kamal-proxy and
	// Kamal's stopped containers of the plan's targets (see kamal.go);
	// without it they are stopped and kept. Kamal's data stays either way.
	RemoveKamal bool
}

// Result summarises an Apply: one entry per service with changes.
type Result struct {
	Services      []ServiceResult
	ReleasedHolds []string   // services whose hold the Apply ended (see Apply)
	Takeovers     []Takeover // servers where Kamal's proxy or containers were found (kamal.go)
	Duration      time.Duration
}

// ServiceResult is the outcome of one service's rollout.
type ServiceResult struct {
	Service      string
	DeploymentID int64        // 0 without a store
	Status       state.Status // deployed, failed or rolled_back (see failedStatus)
	Deployed     []planner.Target
	Removed      []planner.Target
	RolledBack   []planner.Target
	Unchanged    int // targets with nothing to do (unchanged or held)
	// Foreign are running containers of the service that this store did
	// not make (another store's rollout, see docs/executor.md), found and
	// stopped when their role was switched on a host.
	Foreign  []ForeignContainer
	Err      error
	Duration time.Duration
}

// Apply rolls the plan out: for each service with changes, under its lock,
// role by role (primary first) in batches, with a canary batch first when
// the service has one. A failure on any host stops the service's rollout and
// puts every host already switched back on its previous version; the
// returned error is then a *RolloutError wrapping a *StepError. Services
// are applied one after the other; a failed service does not stop the
// others. Re-applying an applied plan starts no container.
//
// A hold the plan marks releasable (Plan.ReleasedHolds: git asks for the
// held version again) ends once its service is rolled out or had nothing
// to do; the hold of a service whose rollout failed stays.
//
// When ctx ends, the host step in progress is finished or undone (bounded
// by its deploy timeout) so that every host keeps a serving container; the
// rollout then stops and the deployment is recorded as failed.
func (e *Executor) Apply(ctx context.Context, plan *planner.Plan, opts ApplyOpts) (*Result, error) {
	start := time.Now()
	res := &Result{}
	if err := e.validatePlan(plan); err != nil {
		return res, err
	}
	if planNeedsProxy(plan) {
		if err := e.proxyImg.preflight(); err != nil {
			return res, err
		}
	}
	// What Kamal left on a server is surveyed at the first target taken
	// there (kamal.go); the ports move after every service.
	tk := e.newTakeovers(plan, opts)
	bySvc := map[string][]planner.Change{}
	for _, ch := range plan.Changes {
		bySvc[ch.Service] = append(bySvc[ch.Service], ch)
	}
	policies := map[string]planner.Service{}
	for _, s := range plan.Services {
		policies[s.Name] = s
	}
	names := make([]string, 0, len(bySvc))
	for n := range bySvc {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	done := map[string]bool{} // services rolled out, or with nothing to do
	for _, name := range names {
		chs := bySvc[name]
		pol, ok := policies[name]
		if !ok {
			pol = planner.Service{Name: name}
		}
		sr := ServiceResult{Service: name}
		active := 0
		for _, c := range chs {
			if c.Action == planner.ActionUnchanged || c.Action == planner.ActionHeld {
				sr.Unchanged++
			} else {
				active++
			}
		}
		if active == 0 {
			done[name] = true
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		e.applyService(ctx, plan, pol, chs, opts, tk, &sr)
		res.Services = append(res.Services, sr)
		if sr.Err != nil {
			errs = append(errs, sr.Err)
		} else {
			done[name] = true
		}
	}
	if err := tk.finish(ctx, res); err != nil {
		errs = append(errs, err)
	}
	for _, sr := range res.Services {
		if sr.Err != nil {
			delete(done, sr.Service)
		}
	}
	res.ReleasedHolds = e.releaseHolds(ctx, plan, done)
	res.Duration = time.Since(start)
	return res, errors.Join(errs...)
}

// planNeedsProxy reports whether the plan starts a proxied container.
func planNeedsProxy(plan *planner.Plan) bool {
	for _, ch := range plan.Changes {
		if (ch.Action == planner.ActionCreate || ch.Action == planner.ActionUpdate) && ch.Desired != nil && ch.Desired.Proxy != nil {
			return true
		}
	}
	return false
}

func (e *Executor) validatePlan(plan *planner.Plan) error {
	for _, ch := range plan.Changes {
		// A removal may name a host that left the inventory: see remove.
		if _, ok := plan.Hosts[ch.Host]; !ok && ch.Action != planner.ActionUnchanged && ch.Action != planner.ActionHeld && ch.Action != planner.ActionRemove {
			return fmt.Errorf("plan: no connection details for host %q of %s", ch.Host, ch.Target)
		}
		switch ch.Action {
		case planner.ActionCreate, planner.ActionUpdate:
			if ch.Desired == nil {
				return fmt.Errorf("plan: %s %s without a desired spec", ch.Action, ch.Target)
			}
			if err := validateTarget(ch.Service, ch.Role, ch.Version); err != nil {
				return fmt.Errorf("plan: %s: %w", ch.Target, err)
			}
			if ch.Desired.Service != ch.Service || ch.Desired.Role != ch.Role {
				return fmt.Errorf("plan: %s: spec is for %s/%s", ch.Target, ch.Desired.Service, ch.Desired.Role)
			}
			if ch.Desired.Proxy != nil && ch.Desired.Proxy.AppPort <= 0 {
				return fmt.Errorf("plan: %s: proxy.app_port missing", ch.Target)
			}
		case planner.ActionRemove:
			if err := validateTarget(ch.Service, ch.Role, "x"); err != nil {
				return fmt.Errorf("plan: %s: %w", ch.Target, err)
			}
		}
	}
	return nil
}

// rollout is one service's rollout in progress.
type rollout struct {
	e        *Executor
	plan     *planner.Plan
	pol      planner.Service
	depID    int64
	actor    string // ApplyOpts.Actor, on every stored event
	auth     string
	storeID  string     // label bosun.store of the containers this rollout makes
	tk       *takeovers // what Kamal left on the servers (kamal.go)
	foreign  []ForeignContainer
	mu       sync.Mutex
	switched []*switched // hosts already on the new version, in order

	storeEvents chan state.Event // to recordEvents; nil without a store

	localRegOnce sync.Once
	localRegErr  error // checkLocalRegistry's answer, asked once per rollout
}

// servicePlan is the plan's text (as `bosun plan` prints it) for one
// service: what its deployment records as its cause.
func servicePlan(plan *planner.Plan, service string) string {
	p := *plan
	p.Changes = nil
	for _, ch := range plan.Changes {
		if ch.Service == service {
			p.Changes = append(p.Changes, ch)
		}
	}
	var b strings.Builder
	if _, err := p.WriteTo(&b); err != nil {
		return ""
	}
	return b.String()
}

// switched is a target put on its new version, with how to go back.
type switched struct {
	ch   planner.Change
	undo func(ctx context.Context) error
}

func (e *Executor) applyService(ctx context.Context, plan *planner.Plan, pol planner.Service, chs []planner.Change, opts ApplyOpts, tk *takeovers, sr *ServiceResult) {
	start := time.Now()
	defer func() { sr.Duration = time.Since(start) }()
	ro := &rollout{e: e, plan: plan, pol: pol, actor: opts.Actor, tk: tk}
	bg := context.WithoutCancel(ctx)

	lockCtx, unlock, err := e.lock(ctx, plan.Repo, pol.Name, opts)
	if err != nil {
		sr.Status, sr.Err = state.StatusFailed, fmt.Errorf("lock %s: %w", pol.Name, err)
		return
	}
	defer unlock()
	unlockServer, err := e.serverLock(ctx, plan, pol, chs, opts)
	if err != nil {
		sr.Status, sr.Err = state.StatusFailed, fmt.Errorf("lock %s: %w", pol.Name, err)
		return
	}
	defer unlockServer()
	if e.cfg.Store != nil {
		if ro.storeID, err = e.storeID(ctx); err != nil {
			sr.Status, sr.Err = state.StatusFailed, fmt.Errorf("lock %s: %w", pol.Name, err)
			return
		}
	}

	flushEvents := func() {}
	if st := e.cfg.Store; st != nil {
		id, err := st.CreateDeployment(ctx, state.Deployment{Repo: plan.Repo, Service: pol.Name, Commit: plan.Commit, Status: state.StatusDeploying, Trigger: opts.Trigger,
			Plan: servicePlan(plan, pol.Name), StartedAt: time.Now().UTC()})
		if err != nil {
			sr.Status, sr.Err = state.StatusFailed, fmt.Errorf("record deployment of %s: %w", pol.Name, err)
			return
		}
		ro.depID, sr.DeploymentID = id, id
		if opts.Watch != nil {
			stop := opts.Watch(id)
			defer stop()
		}
		ro.storeEvents = make(chan state.Event, 256)
		eventsDone := make(chan struct{})
		go ro.recordEvents(bg, st, eventsDone)
		flushEvents = func() {
			close(ro.storeEvents)
			<-eventsDone
		}
	}
	ro.emit(ctx, Event{Service: pol.Name, Step: StepLock, Status: StatusOK, Message: "rollout of commit " + commitsha.Short(plan.Commit)})

	err = ro.run(lockCtx, chs, sr)
	sr.Foreign = ro.foreign
	if cause := context.Cause(lockCtx); err != nil && (errors.Is(cause, ErrLockLost) || isCancelled(cause)) {
		err = fmt.Errorf("%w; rollout stopped: %w", cause, err)
	}
	status := state.StatusDeployed
	msg := ""
	if err != nil {
		status, msg = failedStatus(err), err.Error()
		sr.Err = err
	}
	sr.Status = status
	doneStatus := StatusOK
	if err != nil {
		doneStatus = StatusFailed
	}
	ro.emit(ctx, Event{Service: pol.Name, Step: StepDone, Status: doneStatus, Message: string(status)})
	flushEvents()
	if st := e.cfg.Store; st != nil {
		sctx, cancel := state.Detached(ctx)
		defer cancel()
		if ferr := st.FinishDeployment(sctx, ro.depID, status, msg); ferr != nil {
			e.log.ErrorContext(ctx, "record deployment result", "service", pol.Name, "err", ferr)
		}
	}
}

// failedStatus is the recorded status of a rollout that failed with err:
// rolled_back when hosts had switched to the new version and every one of
// them was put back (the service runs its previous version everywhere),
// failed otherwise (nothing had switched, a host could not be put back, or
// the lock was lost and nothing was undone).
func failedStatus(err error) state.Status {
	var re *RolloutError
	if errors.As(err, &re) && len(re.RolledBack) > 0 && len(re.Undo) == 0 {
		return state.StatusRolledBack
	}
	return state.StatusFailed
}

// ForeignContainer is a running container of a service on a host that
// another state store's rollout made (label bosun.store), or that carries a
// version this store never recorded there.
type ForeignContainer struct {
	Host, Container, Version string
	Store                    string // its bosun.store label; "" if it has none
	Commit                   string
}

// run deploys the service's changes role by role, then removes.
func (ro *rollout) run(ctx context.Context, chs []planner.Change, sr *ServiceResult) error {
	e := ro.e
	var err error
	ro.auth, err = registryAuth(ro.pol.Registry, e.cfg.Secrets)
	if err != nil {
		return fmt.Errorf("registry login for %s: %w", ro.pol.Name, err)
	}
	byRole := map[string][]planner.Change{}
	var removes []planner.Change
	for _, ch := range chs {
		switch ch.Action {
		case planner.ActionCreate, planner.ActionUpdate:
			byRole[ch.Role] = append(byRole[ch.Role], ch)
		case planner.ActionRemove:
			removes = append(removes, ch)
		}
	}
	roles := append([]string(nil), ro.pol.Roles...)
	seen := map[string]bool{}
	for _, r := range roles {
		seen[r] = true
	}
	var extra []string
	for r := range byRole {
		if !seen[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(extra)
	roles = append(roles, extra...)

	var runErr error
	for _, role := range roles {
		batch := byRole[role]
		if len(batch) == 0 {
			continue
		}
		if runErr = ro.runRole(ctx, batch); runErr != nil {
			break
		}
	}
	if runErr != nil {
		rerr := &RolloutError{Service: ro.pol.Name, Err: runErr}
		if errors.Is(context.Cause(ctx), ErrLockLost) {
			// Another rollout may own the service now and has planned
			// from what was recorded: every host serves, and switched
			// ones are recorded on the new version. Undoing them would
			// fight that rollout.
			return rerr
		}
		// Put every switched host back, newest first. The undo must run
		// even when ctx was cancelled.
		bg := context.WithoutCancel(ctx)
		for i := len(ro.switched) - 1; i >= 0; i-- {
			s := ro.switched[i]
			ro.emit(ctx, Event{Service: s.ch.Service, Role: s.ch.Role, Host: s.ch.Host, Version: versionOf(s.ch.Current), Step: StepRollback, Status: StatusStarted})
			if err := s.undo(bg); err != nil {
				rerr.Undo = append(rerr.Undo, fmt.Errorf("%s: %w", s.ch.Target, err))
				ro.emit(ctx, Event{Service: s.ch.Service, Role: s.ch.Role, Host: s.ch.Host, Step: StepRollback, Status: StatusFailed, Message: err.Error()})
				continue
			}
			rerr.RolledBack = append(rerr.RolledBack, s.ch.Target.String())
			sr.RolledBack = append(sr.RolledBack, s.ch.Target)
			ro.emit(ctx, Event{Service: s.ch.Service, Role: s.ch.Role, Host: s.ch.Host, Version: versionOf(s.ch.Current), Step: StepRollback, Status: StatusOK})
		}
		return rerr
	}
	bg := context.WithoutCancel(ctx)
	for _, s := range ro.switched {
		sr.Deployed = append(sr.Deployed, s.ch.Target)
		ro.pruneTarget(bg, s.ch)
	}
	for _, ch := range removes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ro.remove(ctx, ch); err != nil {
			return err
		}
		sr.Removed = append(sr.Removed, ch.Target)
	}
	return nil
}

func versionOf(a *planner.Applied) string {
	if a == nil {
		return ""
	}
	return a.Version
}

// runRole rolls one role out: canary batch, then batches of boot.limit.
func (ro *rollout) runRole(ctx context.Context, chs []planner.Change) error {
	sort.SliceStable(chs, func(i, j int) bool { return chs[i].Host < chs[j].Host })
	rest := chs
	if c := ro.pol.Canary; c != nil && c.Hosts > 0 && c.Hosts < len(chs) {
		canary := chs[:c.Hosts]
		rest = chs[c.Hosts:]
		if err := ro.runBatch(ctx, canary); err != nil {
			return err
		}
		if err := ro.watchCanary(ctx, canary, time.Duration(c.Watch)); err != nil {
			return err
		}
	}
	limit := ro.pol.BootLimit
	if limit <= 0 {
		limit = len(rest)
	}
	for i := 0; i < len(rest); i += limit {
		if i > 0 && ro.pol.BootWait > 0 {
			if err := sleepCtx(ctx, time.Duration(ro.pol.BootWait)); err != nil {
				return err
			}
		}
		if err := ro.runBatch(ctx, rest[i:min(i+limit, len(rest))]); err != nil {
			return err
		}
	}
	return nil
}

// runBatch deploys to the batch's hosts in parallel (bounded by
// Config.Concurrency) and returns the first failure after every host of the
// batch has finished its step (so none is left half-done).
func (ro *rollout) runBatch(ctx context.Context, chs []planner.Change) error {
	var wg sync.WaitGroup
	errs := make([]error, len(chs))
	for i, ch := range chs {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case ro.e.sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-ro.e.sem }()
			undo, err := ro.deployTarget(ctx, ch)
			if err != nil {
				errs[i] = err
				return
			}
			ro.mu.Lock()
			ro.switched = append(ro.switched, &switched{ch: ch, undo: undo})
			ro.mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// watchCanary waits the watch period, then checks that each canary's new
// container is still running (and healthy, where Docker knows).
func (ro *rollout) watchCanary(ctx context.Context, chs []planner.Change, watch time.Duration) error {
	for _, ch := range chs {
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepCanary, Status: StatusStarted, Message: "watching for " + watch.String()})
	}
	if err := sleepCtx(ctx, watch); err != nil {
		return err
	}
	for _, ch := range chs {
		hc, err := ro.e.host(ro.plan.Hosts[ch.Host])
		if err != nil {
			return err
		}
		name := containerName(ch.Service, ch.Role, ch.Version)
		info, err := hc.docker.ContainerInspect(ctx, name)
		if err == nil && (info.State == nil || !info.State.Running || (info.State.Health != nil && info.State.Health.Status == "unhealthy")) {
			err = fmt.Errorf("canary container %s is %s", name, describeState(info.State))
		}
		if err != nil {
			// The canary's log lines may echo its secrets, as at start.
			vals := secretValues(ch.Desired, ro.e.cfg.Secrets)
			msg := redact(err.Error(), vals)
			logs := redact(lastLogs(context.WithoutCancel(ctx), hc.docker, name, logLines), vals)
			if msg != err.Error() {
				err = errors.New(msg)
			}
			se := &StepError{Host: ch.Host, Service: ch.Service, Role: ch.Role, Step: StepCanary, Err: err, Logs: logs}
			ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepCanary, Status: StatusFailed, Message: msg, Logs: eventLogs(logs)})
			return se
		}
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepCanary, Status: StatusOK})
	}
	return nil
}

func describeState(s *container.State) string {
	if s == nil {
		return "gone"
	}
	if s.Health != nil && s.Health.Status != "" && s.Running {
		return s.Status + " (" + s.Health.Status + ")"
	}
	if !s.Running {
		return fmt.Sprintf("%s (exit code %d)", s.Status, s.ExitCode)
	}
	return s.Status
}

// emit records an event and hands it to the progress callback.
func (ro *rollout) emit(ctx context.Context, ev Event) {
	ev.Time = time.Now().UTC()
	ev.DeploymentID = ro.depID
	e := ro.e
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	if e.cfg.Progress != nil {
		e.cfg.Progress(ev)
	}
	attrs := []any{"service", ev.Service, "step", string(ev.Step), "status", string(ev.Status)}
	if ev.Host != "" {
		attrs = append(attrs, "host", ev.Host, "role", ev.Role)
	}
	if ev.Version != "" {
		attrs = append(attrs, "version", ev.Version)
	}
	if ev.Message != "" {
		attrs = append(attrs, "msg", ev.Message)
	}
	e.log.DebugContext(ctx, "rollout event", attrs...)
	if st := e.cfg.Store; st != nil && ro.depID != 0 {
		host := ev.Host
		if ev.Role != "" {
			host = ev.Role + "@" + ev.Host
		}
		// Written by one goroutine in order, off the hosts' critical path.
		ro.storeEvents <- state.Event{DeploymentID: ro.depID, Host: host, Step: string(ev.Step), Status: string(ev.Status), Message: versioned(ev), Actor: ro.actor, At: ev.Time}
	}
}

// recordEvents writes the rollout's events to the store until the channel
// is closed.
func (ro *rollout) recordEvents(ctx context.Context, st Store, done chan<- struct{}) {
	defer close(done)
	for ev := range ro.storeEvents {
		sctx, cancel := state.Detached(ctx)
		err := st.AddEvent(sctx, ev)
		cancel()
		if err != nil {
			ro.e.log.WarnContext(ctx, "record deployment event", "step", ev.Step, "host", ev.Host, "err", err)
		}
	}
}

// versioned is an event's message in the store: the version, the message
// and the container's last log lines.
func versioned(ev Event) string {
	msg := ev.Message
	switch {
	case ev.Version == "":
	case msg == "":
		msg = ev.Version
	default:
		msg = ev.Version + ": " + msg
	}
	if ev.Logs != "" {
		msg += "\ncontainer log (last lines):\n" + ev.Logs
	}
	return msg
}

// eventLogBytes bounds the log lines an event carries.
const eventLogBytes = 8 << 10

// eventLogs bounds logs (already redacted) for an event: the last
// eventLogBytes, from a line's start.
func eventLogs(logs string) string {
	if len(logs) <= eventLogBytes {
		return logs
	}
	logs = logs[len(logs)-eventLogBytes:]
	if i := strings.IndexByte(logs, '\n'); i >= 0 {
		return logs[i+1:]
	}
	return ""
}

// secretValues are the values of the spec's secrets and of its TLS
// certificate, which log lines and daemon messages may echo (redact).
func secretValues(spec *planner.Spec, secrets SecretSource) []string {
	var out []string
	if env, err := resolveEnv(spec, secrets); err == nil {
		for k := range spec.Secrets {
			out = append(out, env[k])
		}
	}
	if cert, err := resolveCertificate(spec, secrets); err == nil && cert.keyPEM != "" {
		out = append(out, cert.certPEM, cert.keyPEM)
	}
	return out
}

// record writes the applied state of a target.
func (ro *rollout) record(ctx context.Context, ch planner.Change, spec *planner.Spec, version string) error {
	st := ro.e.cfg.Store
	if st == nil {
		return nil
	}
	var conn *planner.Host
	if h, ok := ro.plan.Hosts[ch.Host]; ok {
		conn = &h
	}
	data, err := encodeApplied(spec, conn)
	if err != nil {
		return err
	}
	return st.PutApplied(ctx, state.Applied{Repo: ro.plan.Repo, Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: version, Commit: ro.commitOf(ch, version), Spec: data, AppliedAt: time.Now().UTC()})
}

func (ro *rollout) commitOf(ch planner.Change, version string) string {
	if ch.Current != nil && version == ch.Current.Version {
		return ch.Current.Commit
	}
	return ro.plan.Commit
}

// lock takes the service's lock in the store, waiting (and saying so)
// while another rollout holds it, and renews it until the returned
// function is called. The returned context ends, with cause ErrLockLost,
// if a renewal finds the lock held by someone else (this process stalled
// past the lease and another rollout took the service): the rollout must
// stop rather than race the other one.
func (e *Executor) lock(ctx context.Context, repo, service string, opts ApplyOpts) (context.Context, func(), error) {
	st := e.cfg.Store
	if st == nil {
		return ctx, func() {}, nil
	}
	name := LockName(repo, service)
	lease := e.cfg.LockLease
	waitCtx := ctx
	if opts.LockWait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, opts.LockWait)
		defer cancel()
	}
	var lastHolder string
	for i := 0; ; i++ {
		ok, holder, err := st.AcquireLock(ctx, name, e.cfg.Owner, lease)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			break
		}
		if holder.Owner != lastHolder {
			lastHolder = holder.Owner
			msg := fmt.Sprintf("waiting for %s, which holds the lock of %s (lease until %s)", holder.Owner, service, holder.ExpiresAt.UTC().Format(time.RFC3339))
			e.emitMu.Lock()
			if e.cfg.Progress != nil {
				e.cfg.Progress(Event{Time: time.Now().UTC(), Service: service, Step: StepLock, Status: StatusWaiting, Message: msg})
			}
			e.emitMu.Unlock()
			e.log.InfoContext(ctx, "waiting for lock", "service", service, "holder", holder.Owner)
		}
		if err := sleepCtx(waitCtx, min(time.Duration(i+1)*100*time.Millisecond, time.Second)); err != nil {
			if ctx.Err() == nil {
				return nil, nil, fmt.Errorf("%w of %s held by %s", ErrLockTimeout, service, lastHolder)
			}
			return nil, nil, err
		}
	}
	lost := fmt.Errorf("%w of %s: its lease ran out and another rollout may hold it", ErrLockLost, service)
	lockCtx, unlock := state.HoldLock(ctx, st, name, e.cfg.Owner, lease, lost, e.log.With("service", service))
	return lockCtx, unlock, nil
}

// isNotFound reports a Docker "no such …" answer.
func isNotFound(err error) bool { return errdefs.IsNotFound(err) }

// redact replaces the values of secrets in msg (server output such as
// container logs, which may echo them) before it leaves the executor.
func redact(msg string, secretValues []string) string {
	for _, v := range secretValues {
		if len(v) >= 3 {
			msg = strings.ReplaceAll(msg, v, planner.RedactedText)
		}
	}
	return msg
}
