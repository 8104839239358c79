package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

const logLines = 20

// deployTarget takes one target to its desired version (the per-host state
// machine in doc.go) and returns how to put it back on its previous version.
// On error the host is left on its previous version, serving: the new
// container is stopped (and, for a stateful role, the old one restarted).
//
// Steps up to the start of the new container follow ctx. From there on the
// host step is finished (or undone) on a context that ignores
// cancellation, bounded by the deploy and drain timeouts, so that a
// cancelled rollout never leaves a host without a serving container.
func (ro *rollout) deployTarget(ctx context.Context, ch planner.Change) (undo func(context.Context) error, err error) {
	e := ro.e
	spec := ch.Desired
	ev := func(step Step, st EventStatus, msg string) {
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: step, Status: st, Message: msg})
	}
	var secretVals []string
	fail := func(step Step, err error, logs string) error {
		if len(secretVals) > 0 {
			// Logs and daemon messages may echo the container's env.
			if r := redact(err.Error(), secretVals); r != err.Error() {
				err = errors.New(r)
			}
			logs = redact(logs, secretVals)
		}
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: step, Status: StatusFailed, Message: err.Error(), Logs: eventLogs(logs)})
		return &StepError{Host: ch.Host, Service: ch.Service, Role: ch.Role, Step: step, Err: err, Logs: logs}
	}

	env, err := resolveEnv(spec, e.cfg.Secrets)
	if err != nil {
		return nil, fail(StepStart, err, "")
	}
	for k := range spec.Secrets {
		secretVals = append(secretVals, env[k])
	}
	cert, err := resolveCertificate(spec, e.cfg.Secrets)
	if err != nil {
		return nil, fail(StepProxy, err, "")
	}
	if cert.keyPEM != "" {
		secretVals = append(secretVals, cert.certPEM, cert.keyPEM)
	}
	hc, err := e.host(ro.plan.Hosts[ch.Host])
	if err != nil {
		return nil, fail(StepConnect, err, "")
	}
	ev(StepConnect, StatusStarted, "")
	if err := hc.connect(ctx); err != nil {
		return nil, fail(StepConnect, err, "")
	}
	dc := hc.docker
	name := containerName(ch.Service, ch.Role, ch.Version)
	localReg := usesLocalRegistry(ro.pol, spec)
	if localReg {
		// A pull from Kamal's local registry needs one listening here:
		// find out before anything on the server changes. A retained
		// container of this version needs no pull.
		if _, err := dc.ContainerInspect(ctx, name); isNotFound(err) {
			ro.localRegOnce.Do(func() { ro.localRegErr = checkLocalRegistry(ctx, ro.pol.LocalRegistryPort) })
			if ro.localRegErr != nil {
				return nil, fail(StepPull, ro.localRegErr, "")
			}
		}
	}
	// What Kamal left on the server, before anything on it changes; on a
	// server Kamal serves, the proxied role is routed behind a
	// bosun-proxy without ports, and the ports move once every service
	// is rolled out (kamal.go).
	kh, err := ro.tk.get(ctx, ch.Host, hc)
	if err != nil {
		return nil, fail(StepTakeover, err, "")
	}
	staged := kh != nil && kh.takeover && spec.Proxy != nil
	if spec.Proxy != nil {
		// Which proxy image this server gets is decided before anything
		// on it changes: one that can get none is left untouched.
		if _, err := e.proxySource(ctx, hc); err != nil {
			return nil, fail(StepProxy, err, "")
		}
	}
	if err := hc.ensureNetwork(ctx); err != nil {
		return nil, fail(StepProxy, fmt.Errorf("create network %s: %w", NetworkName, err), "")
	}
	var px *proxyOnHost
	if spec.Proxy != nil {
		ev(StepProxy, StatusStarted, "")
		if staged {
			ev(StepProxy, StatusStarted, "kamal-proxy holds the ports: bosun-proxy runs without them until the takeover")
		}
		if px, err = e.ensureProxyMode(ctx, hc, !staged); err != nil {
			var down *proxyDownError
			logs := ""
			if errors.As(err, &down) {
				logs = down.logs
			}
			return nil, fail(StepProxy, err, logs)
		}
	}

	existing, err := dc.ContainerInspect(ctx, name)
	// standby: this version's container is the role's paused standby
	// (x-bosun.standby: paused), unpaused instead of started.
	standby := err == nil && isPaused(existing)
	switch {
	case standby:
		ev(StepPull, StatusSkipped, "paused standby "+name)
	case err == nil:
		// A retained container of this version: restart it, no pull.
		ev(StepPull, StatusSkipped, "retained container "+name)
	case isNotFound(err):
		ev(StepPull, StatusStarted, spec.Image)
		if err := ro.pull(ctx, hc, spec, localReg); err != nil {
			return nil, fail(StepPull, err, "")
		}
		ev(StepPull, StatusOK, "")
	default:
		return nil, fail(StepStart, fmt.Errorf("inspect %s: %w", name, err), "")
	}

	// The running containers of this role that are not the new one, and
	// its paused standbys (at most one, unless a run died half-way).
	others, paused, err := otherContainers(ctx, dc, ch.Service, ch.Role, name)
	if err != nil {
		return nil, fail(StepStart, fmt.Errorf("list containers: %w", err), "")
	}
	olds := make([]string, 0, len(others))
	for _, c := range others {
		olds = append(olds, c.ID)
	}
	ro.noticeForeign(ctx, ch, slices.Concat(others, paused))
	stateful := spec.Stateful || ch.Disruptive
	// Kamal's running containers of this target are replaced like old
	// ones (a stateful one stopped first, so two never share its data),
	// except behind kamal-proxy: they serve until the ports move.
	var kamalOlds []kamalContainer // stopped once the new one is ready (not stateful)
	for _, k := range kh.match(ch, ro.plan.Destination) {
		if !k.running() {
			continue
		}
		if staged && !stateful {
			kh.mu.Lock()
			kh.deferred = append(kh.deferred, k.ID)
			kh.mu.Unlock()
			continue
		}
		ev(StepStop, StatusStarted, "Kamal's container "+k.Name+" is stopped (and kept) once "+name+" is ready")
		olds = append(olds, k.ID)
		kamalOlds = append(kamalOlds, k)
	}
	if staged {
		kh.mu.Lock()
		kh.staged = append(kh.staged, ch)
		kh.mu.Unlock()
	}

	// From here on the host step completes whatever ctx does.
	bg := context.WithoutCancel(ctx)
	restartOlds := func() {
		for _, id := range olds {
			_ = dc.ContainerStart(bg, id, container.StartOptions{})
		}
	}
	// Relative volume sources need the SSH user's home folder: read it
	// before a stateful old container is stopped.
	params := createParams{Repo: ro.plan.Repo, Commit: ro.plan.Commit, Version: ch.Version, Host: ch.Host, Store: ro.storeID, Env: env}
	if existing.ContainerJSONBase == nil && needsHome(spec) {
		if params.Home, err = hc.homeDir(ctx); err != nil {
			return nil, fail(StepStart, err, "")
		}
	}
	if stateful && len(olds)+len(paused) > 0 {
		ev(StepStop, StatusStarted, "stateful: stopping the old container first")
		if err := stopAll(bg, dc, slices.Concat(olds, summaryIDs(paused)), spec); err != nil {
			restartOlds()
			return nil, fail(StepStop, err, "")
		}
	}

	if standby {
		ev(StepStart, StatusStarted, name+": paused standby")
	} else {
		ev(StepStart, StatusStarted, name)
	}
	if existing.ContainerJSONBase == nil {
		cfg, hcfg, ncfg, err := containerConfig(spec, params)
		if err != nil {
			if stateful {
				restartOlds()
			}
			return nil, fail(StepStart, err, "")
		}
		if _, err := dc.ContainerCreate(bg, cfg, hcfg, ncfg, nil, name); err != nil {
			if stateful {
				restartOlds()
			}
			return nil, fail(StepStart, fmt.Errorf("create %s: %w", name, err), "")
		}
		if extra := extraNetwork(spec); extra != "" {
			// Docker's older APIs attach one network at create: join
			// options.network before the container starts.
			if err := dc.NetworkConnect(bg, extra, name, &network.EndpointSettings{Aliases: containerAliases(spec)}); err != nil {
				_ = dc.ContainerRemove(bg, name, container.RemoveOptions{})
				if stateful {
					restartOlds()
				}
				return nil, fail(StepStart, fmt.Errorf("connect %s to network %s (options.network; it must exist on the server: docker network create %s): %w", name, extra, extra, err), "")
			}
		}
	}
	alreadyRunning := existing.ContainerJSONBase != nil && existing.State != nil && existing.State.Running && !standby
	switch {
	case standby:
		if err := unpauseStandby(bg, dc, name, spec); err != nil {
			if !isPaused(inspectOrZero(bg, dc, name)) {
				// Thawed, but its restart policy is not back: not worth
				// serving from.
				_ = dc.ContainerStop(bg, name, container.StopOptions{})
			}
			if stateful {
				restartOlds()
			}
			return nil, fail(StepStart, err, "")
		}
		ev(StepStart, StatusOK, "unpaused")
	case !alreadyRunning:
		if existing.ContainerJSONBase != nil {
			// A retained container once paused as the standby still has
			// restart policy "no".
			if err := restoreRestart(bg, dc, name, spec, restartOf(existing)); err != nil {
				if stateful {
					restartOlds()
				}
				return nil, fail(StepStart, err, "")
			}
		}
		if err := dc.ContainerStart(bg, name, container.StartOptions{}); err != nil {
			logs := lastLogs(bg, dc, name, logLines)
			if stateful {
				restartOlds()
			}
			return nil, fail(StepStart, fmt.Errorf("start %s: %w", name, err), logs)
		}
		ev(StepStart, StatusOK, "")
	default:
		ev(StepStart, StatusOK, "")
	}

	// abandon stops the new container and brings the old ones back (they
	// were never stopped unless the role is stateful).
	abandon := func() {
		if !alreadyRunning {
			_ = dc.ContainerStop(bg, name, container.StopOptions{})
		}
		if stateful {
			restartOlds()
		}
	}

	if px != nil {
		ev(StepHealth, StatusStarted, "proxy health check "+spec.Proxy.HealthPath)
		if err := ro.switchProxy(bg, dc, px, spec, name, cert); err != nil {
			logs := lastLogs(bg, dc, name, logLines)
			abandon()
			return nil, fail(StepHealth, err, logs)
		}
		ev(StepSwitch, StatusOK, "route "+proxyService(ch.Service, ch.Role)+" → "+name)
	} else {
		ev(StepHealth, StatusStarted, "")
		if err := waitReady(bg, dc, name, spec); err != nil {
			logs := lastLogs(bg, dc, name, logLines)
			abandon()
			return nil, fail(StepHealth, err, logs)
		}
		ev(StepHealth, StatusOK, "")
	}

	if !stateful {
		ro.retireOlds(bg, ch, dc, spec, px != nil, others, paused)
		// Kamal's are not bosun's olds: retireOlds does not see them.
		for _, k := range kamalOlds {
			if err := stopAll(bg, dc, []string{k.ID}, spec); err != nil {
				ev(StepStop, StatusFailed, "Kamal's container "+k.Name+": "+err.Error())
				continue
			}
			ev(StepStop, StatusOK, "Kamal's container "+k.Name+" stopped (kept)")
		}
	}
	if err := ro.record(bg, ch, spec, ch.Version); err != nil {
		e.log.ErrorContext(ctx, "record applied state", "service", ch.Service, "host", ch.Host, "err", err)
		ev(StepRecord, StatusFailed, err.Error())
	} else {
		ev(StepRecord, StatusOK, "")
	}
	undo = func(ctx context.Context) error {
		return ro.undoTarget(ctx, hc, px, ch, name, olds)
	}
	return undo, nil
}

// pull pulls the spec's image on the host, through the remote forward of
// the service's local registry when localReg says so (opened for the pull,
// closed after it).
func (ro *rollout) pull(ctx context.Context, hc *hostConn, spec *planner.Spec, localReg bool) error {
	if localReg {
		release, err := hc.forwardLocalRegistry(ctx, ro.pol.LocalRegistryPort)
		if err != nil {
			return err
		}
		defer release()
	}
	if err := pullImage(ctx, hc.docker, spec.Image, ro.auth); err != nil {
		return fmt.Errorf("pull %s: %w", spec.Image, err)
	}
	return nil
}

// retireOlds takes the containers of a role other than the one that now
// serves out of service after a switch. With x-bosun.standby: paused on a
// proxied role, the one that served until now (the applied version's) is
// paused as the standby; every other is stopped: earlier standbys, and
// any container of another version. A standby that cannot be paused is
// stopped. Failures are warnings: the new version serves.
func (ro *rollout) retireOlds(ctx context.Context, ch planner.Change, dc *client.Client, spec *planner.Spec, proxied bool, running, paused []container.Summary) {
	ev := func(st EventStatus, msg string) {
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepStop, Status: st, Message: msg})
	}
	keep, keepName := "", ""
	if proxied && ro.pol.Standby == planner.StandbyPaused && ch.Current != nil {
		prev := containerName(ch.Service, ch.Role, ch.Current.Version)
		for _, c := range running {
			if hasName(c.Names, prev) && c.State == "running" {
				keep, keepName = c.ID, prev
			}
		}
	}
	stop := summaryIDs(paused)
	for _, c := range running {
		if c.ID != keep {
			stop = append(stop, c.ID)
		}
	}
	if len(stop) > 0 {
		ev(StatusStarted, fmt.Sprintf("%d old container(s)", len(stop)))
		if err := stopAll(ctx, dc, stop, spec); err != nil {
			// A container that would not stop is worth a warning, not a
			// rollback.
			ev(StatusFailed, err.Error())
		} else {
			ev(StatusOK, "")
		}
	}
	if keep == "" {
		return
	}
	ev(StatusStarted, "pause "+keepName+" as the standby")
	if err := pauseStandby(ctx, dc, keep); err != nil {
		ev(StatusFailed, err.Error()+"; stopping it instead")
		// Whatever state the failure left it in, a container that is not
		// a well-formed standby does not stay up.
		_ = restoreRestart(ctx, dc, keep, &ch.Current.Spec, nil)
		if err := stopAll(ctx, dc, []string{keep}, spec); err != nil {
			ev(StatusFailed, err.Error())
		}
		return
	}
	ev(StatusOK, "paused standby "+keepName)
}

// pruneTarget applies retention on a host once the service's rollout has
// succeeded everywhere (earlier, the previous version's container must stay
// for a rollback). The new and the previous version are always kept.
func (ro *rollout) pruneTarget(ctx context.Context, ch planner.Change) {
	hc, err := ro.e.host(ro.plan.Hosts[ch.Host])
	if err != nil {
		return
	}
	keep := []string{containerName(ch.Service, ch.Role, ch.Version)}
	if ch.Current != nil {
		keep = append(keep, containerName(ch.Service, ch.Role, ch.Current.Version))
	}
	n, err := prune(ctx, hc.docker, ch.Service, ch.Role, keep, ro.pol.RetainContainers)
	ev := Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepPrune}
	switch {
	case err != nil:
		ev.Status, ev.Message = StatusFailed, err.Error()
		ro.emit(ctx, ev)
	case n > 0:
		ev.Status, ev.Message = StatusOK, fmt.Sprintf("removed %d old container(s)", n)
		ro.emit(ctx, ev)
	}
}

// switchProxy asks the proxy to route to the new container; the proxy
// health-checks it first and drains the old target before it answers. The
// container is watched meanwhile, so one that exits fails the step at once
// instead of at the deploy timeout.
func (ro *rollout) switchProxy(ctx context.Context, dc *client.Client, px *proxyOnHost, spec *planner.Spec, name string, cert tlsCert) error {
	timeout := time.Duration(spec.DeployTimeout)
	if timeout <= 0 {
		timeout = planner.DefaultDeployTimeout
	}
	drain := time.Duration(spec.DrainTimeout)
	if drain <= 0 {
		drain = planner.DefaultDrainTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout+drain+10*time.Second)
	defer cancel()
	exited := make(chan error, 1)
	go func() {
		restarts := -1
		for i := 0; ; i++ {
			info, err := dc.ContainerInspect(dctx, name)
			if err == nil && info.State != nil {
				if restarts < 0 {
					restarts = info.RestartCount
				}
				// A restart policy brings a crashing container back at
				// once: a restart counts as an exit.
				if !info.State.Running || info.State.Restarting || info.RestartCount > restarts {
					exited <- fmt.Errorf("container %s exited (code %d) before it was healthy", name, info.State.ExitCode)
					cancel()
					return
				}
			}
			if err := sleepCtx(dctx, pollInterval(i)); err != nil {
				return
			}
		}
	}()
	_, err := px.client.Deploy(dctx, deployRequest(spec, name, cert))
	if err != nil {
		select {
		case xerr := <-exited:
			return xerr
		default:
		}
		return err
	}
	return nil
}

// waitReady waits for an unproxied container: healthy when it has a Docker
// health check, else still running after readiness_delay; within
// deploy_timeout.
func waitReady(ctx context.Context, dc *client.Client, name string, spec *planner.Spec) error {
	timeout := time.Duration(spec.DeployTimeout)
	if timeout <= 0 {
		timeout = planner.DefaultDeployTimeout
	}
	delay := time.Duration(spec.ReadinessDelay)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	for i := 0; ; i++ {
		info, err := dc.ContainerInspect(ctx, name)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", name, err)
		}
		s := info.State
		switch {
		case s == nil || (!s.Running && !s.Restarting):
			return fmt.Errorf("container %s %s", name, describeState(s))
		case s.Restarting:
			return fmt.Errorf("container %s is restarting (exit code %d)", name, s.ExitCode)
		case s.Health != nil && s.Health.Status == "healthy":
			return nil
		case s.Health != nil && s.Health.Status == "unhealthy":
			msg := ""
			if n := len(s.Health.Log); n > 0 {
				msg = ": " + strings.TrimSpace(s.Health.Log[n-1].Output)
			}
			return fmt.Errorf("container %s is unhealthy%s", name, msg)
		case s.Health == nil && time.Since(start) >= delay:
			return nil
		}
		if err := sleepCtx(ctx, pollInterval(i)); err != nil {
			return fmt.Errorf("container %s not healthy within deploy_timeout %s", name, timeout)
		}
	}
}

// otherContainers lists the containers of a role other than name: the
// running (or restarting) ones, and the paused ones (standbys).
func otherContainers(ctx context.Context, dc *client.Client, service, role, name string) (running, paused []container.Summary, err error) {
	cs, err := listRole(ctx, dc, service, role)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cs {
		if hasName(c.Names, name) {
			continue
		}
		switch c.State {
		case "running", "restarting":
			running = append(running, c)
		case "paused":
			paused = append(paused, c)
		}
	}
	return running, paused, nil
}

func summaryIDs(cs []container.Summary) []string {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// inspectOrZero is the container's inspection, or the zero value when it
// cannot be read.
func inspectOrZero(ctx context.Context, dc *client.Client, name string) container.InspectResponse {
	info, _ := dc.ContainerInspect(ctx, name)
	return info
}

// noticeForeign reports the running containers of a target's role that
// this store did not make: labelled by another store (another `bosun
// apply --state`, another daemon), or unlabelled (made by a bosun before
// the label existed) with a version other than the one this store
// recorded there. They are stopped with the other old containers once the
// role is switched, so no stale version keeps running; the event and
// ServiceResult.Foreign say so.
func (ro *rollout) noticeForeign(ctx context.Context, ch planner.Change, others []container.Summary) {
	if ro.storeID == "" {
		return
	}
	for _, c := range others {
		st, ver := c.Labels[LabelStore], c.Labels[LabelVersion]
		if st == ro.storeID || (st == "" && ch.Current != nil && ver == ch.Current.Version) {
			continue
		}
		fc := ForeignContainer{Host: ch.Host, Container: strings.TrimPrefix(firstName(c.Names), "/"), Version: ver, Store: st, Commit: c.Labels[LabelCommit]}
		by := "another state store (bosun.store " + st + ")"
		if st == "" {
			by = "a rollout this store did not record"
		}
		ro.mu.Lock()
		ro.foreign = append(ro.foreign, fc)
		ro.mu.Unlock()
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Version: ch.Version, Step: StepStop, Status: StatusStarted,
			Message: fmt.Sprintf("running container %s (version %s, commit %s) was made by %s; it is stopped after the switch", fc.Container, ver, commitsha.Short(fc.Commit), by)})
		ro.e.log.WarnContext(ctx, "container made by another store", "service", ch.Service, "role", ch.Role, "host", ch.Host, "container", fc.Container, "store", st)
	}
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func hasName(names []string, name string) bool {
	for _, n := range names {
		if n == "/"+name || n == name {
			return true
		}
	}
	return false
}

// stopAll stops containers: with stop_timeout when set; unproxied roles get
// drain_timeout, as in Kamal (proxied ones have drained already).
func stopAll(ctx context.Context, dc *client.Client, ids []string, spec *planner.Spec) error {
	var opts container.StopOptions
	t := time.Duration(spec.StopTimeout)
	if t == 0 && spec.Proxy == nil {
		t = time.Duration(spec.DrainTimeout)
	}
	if t > 0 {
		secs := int(t.Round(time.Second).Seconds())
		opts.Timeout = &secs
	}
	var errs []error
	for _, id := range ids {
		if err := dc.ContainerStop(ctx, id, opts); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("stop %s: %w", shortID(id), err))
		}
	}
	return errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// prune keeps the retain most recently stopped containers of a role
// (besides those in keep, which are never removed) and removes the others,
// never their volumes.
func prune(ctx context.Context, dc *client.Client, service, role string, keep []string, retain int) (int, error) {
	if retain <= 0 {
		retain = planner.DefaultRetainContainers
	}
	cs, err := listRole(ctx, dc, service, role)
	if err != nil {
		return 0, err
	}
	type stopped struct {
		id       string
		finished string // RFC 3339; sorts as time
	}
	var ids []string
	kept := len(keep) - 1 // the previous version counts as retained
	for _, c := range cs {
		if c.State == "paused" && !hasAnyName(c.Names, keep) {
			// A paused standby is never removed and counts as retained
			// (it is the previous version, unless a rollout was undone).
			kept++
			continue
		}
		if c.State == "running" || c.State == "restarting" || c.State == "paused" || hasAnyName(c.Names, keep) {
			continue
		}
		ids = append(ids, c.ID)
	}
	if kept+len(ids) <= retain {
		return 0, nil // nothing to remove: no need to inspect each one
	}
	var cands []stopped
	for _, id := range ids {
		fin := ""
		if info, err := dc.ContainerInspect(ctx, id); err == nil && info.State != nil {
			fin = info.State.FinishedAt
		}
		cands = append(cands, stopped{id, fin})
	}
	// Most recently stopped first: a version that served until this rollout
	// outranks one that failed its health check long ago.
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].finished > cands[j].finished })
	removed := 0
	var errs []error
	for _, c := range cands {
		if kept < retain {
			kept++
			continue
		}
		if err := dc.ContainerRemove(ctx, c.id, container.RemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", shortID(c.id), err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

func hasAnyName(names, want []string) bool {
	for _, w := range want {
		if hasName(names, w) {
			return true
		}
	}
	return false
}

// undoTarget puts a switched target back on its previous version: the
// retained container is started again (no pull), the route switched back
// to it, the new container stopped, and the applied state restored. A
// target that was created by this rollout loses its route and container.
func (ro *rollout) undoTarget(ctx context.Context, hc *hostConn, px *proxyOnHost, ch planner.Change, name string, olds []string) error {
	dc := hc.docker
	if ch.Current == nil {
		if px != nil {
			if err := px.client.Remove(ctx, proxyService(ch.Service, ch.Role)); err != nil && !isProxyNotFound(err) {
				return fmt.Errorf("remove route: %w", err)
			}
		}
		if err := dc.ContainerStop(ctx, name, container.StopOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("stop %s: %w", name, err)
		}
		// What ran before (Kamal's container of a server taken over)
		// runs again.
		for _, id := range olds {
			if err := dc.ContainerStart(ctx, id, container.StartOptions{}); err != nil && !isNotFound(err) {
				return fmt.Errorf("start %s again: %w", shortID(id), err)
			}
		}
		if st := ro.e.cfg.Store; st != nil {
			return st.DeleteApplied(ctx, ro.plan.Repo, ch.Service, ch.Role, ch.Host)
		}
		return nil
	}
	prevSpec := &ch.Current.Spec
	prev := containerName(ch.Service, ch.Role, ch.Current.Version)
	stateful := prevSpec.Stateful || ch.Disruptive
	if stateful {
		if err := dc.ContainerStop(ctx, name, container.StopOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("stop %s: %w", name, err)
		}
	}
	if info, err := dc.ContainerInspect(ctx, prev); err == nil && isPaused(info) {
		// The previous version waited as the paused standby.
		if err := unpauseStandby(ctx, dc, prev, prevSpec); err != nil {
			return fmt.Errorf("previous container: %w", err)
		}
	} else {
		if err == nil {
			if err := restoreRestart(ctx, dc, prev, prevSpec, restartOf(info)); err != nil {
				return fmt.Errorf("previous container: %w", err)
			}
		}
		if err := dc.ContainerStart(ctx, prev, container.StartOptions{}); err != nil {
			return fmt.Errorf("start previous container %s: %w", prev, err)
		}
	}
	if prevSpec.Proxy != nil && px != nil {
		// The secrets hold the current certificate: the previous one's
		// values are nowhere (only their hashes are recorded).
		cert, err := resolveCertificate(prevSpec, ro.e.cfg.Secrets)
		if err != nil {
			return fmt.Errorf("switch back to %s: %w", prev, err)
		}
		if err := ro.switchProxy(ctx, dc, px, prevSpec, prev, cert); err != nil {
			return fmt.Errorf("switch back to %s: %w", prev, err)
		}
	} else if prevSpec.Proxy == nil {
		if err := waitReady(ctx, dc, prev, prevSpec); err != nil {
			return err
		}
	}
	if !stateful {
		if err := dc.ContainerStop(ctx, name, container.StopOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("stop %s: %w", name, err)
		}
	}
	return ro.record(ctx, ch, prevSpec, ch.Current.Version)
}

// remove takes away a service's role from a host: its route, then its
// containers (those with bosun's labels only); volumes stay.
func (ro *rollout) remove(ctx context.Context, ch planner.Change) error {
	e := ro.e
	ev := func(st EventStatus, msg string) {
		ro.emit(ctx, Event{Service: ch.Service, Role: ch.Role, Host: ch.Host, Step: StepRemove, Status: st, Message: msg})
	}
	fail := func(err error) error {
		ev(StatusFailed, err.Error())
		return &StepError{Host: ch.Host, Service: ch.Service, Role: ch.Role, Step: StepRemove, Err: err}
	}
	ev(StatusStarted, "")
	bg := context.WithoutCancel(ctx)
	if _, known := ro.plan.Hosts[ch.Host]; !known {
		// The host left fleet.yml: bosun can no longer reach it, so it
		// forgets the target and leaves whatever runs there alone, rather
		// than refusing every plan of the repository from now on.
		if st := e.cfg.Store; st != nil {
			sctx, cancel := state.Detached(ctx)
			defer cancel()
			if err := st.DeleteApplied(sctx, ro.plan.Repo, ch.Service, ch.Role, ch.Host); err != nil {
				return fail(fmt.Errorf("delete applied state: %w", err))
			}
		}
		ev(StatusSkipped, "host "+ch.Host+" is no longer in the inventory: its containers are left as they are and bosun forgets them")
		return nil
	}
	hc, err := e.host(ro.plan.Hosts[ch.Host])
	if err != nil {
		return fail(err)
	}
	if err := hc.connect(ctx); err != nil {
		return fail(err)
	}
	if ch.Current != nil && ch.Current.Spec.Proxy != nil {
		if _, err := hc.docker.ContainerInspect(ctx, ProxyContainer); err == nil {
			kh := ro.tk.peek(ch.Host)
			px, err := e.ensureProxyMode(ctx, hc, kh == nil || !kh.takeover)
			if err != nil {
				return fail(err)
			}
			if err := px.client.Remove(bg, proxyService(ch.Service, ch.Role)); err != nil && !isProxyNotFound(err) {
				return fail(fmt.Errorf("remove route: %w", err))
			}
		}
	}
	cs, err := listRole(bg, hc.docker, ch.Service, ch.Role)
	if err != nil {
		return fail(err)
	}
	for _, c := range cs {
		if err := hc.docker.ContainerRemove(bg, c.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			return fail(fmt.Errorf("remove container %s: %w", shortID(c.ID), err))
		}
	}
	if st := e.cfg.Store; st != nil {
		sctx, cancel := state.Detached(ctx)
		defer cancel()
		if err := st.DeleteApplied(sctx, ro.plan.Repo, ch.Service, ch.Role, ch.Host); err != nil {
			return fail(fmt.Errorf("delete applied state: %w", err))
		}
	}
	ev(StatusOK, fmt.Sprintf("%d container(s) removed", len(cs)))
	return nil
}
