package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/docker/docker/api/types/volume"

	"github.com/bosunhq/bosun/planner"
)

// Labels of a rollout's lock volume on the service's primary host (see
// serverLock), and the store label on every container bosun creates.
const (
	LabelStore       = "bosun.store" // the identity of the store whose rollout made a container
	LabelLockRepo    = "bosun.lock.repo"
	LabelLockService = "bosun.lock.service"
	LabelLockStore   = "bosun.lock.store"
	LabelLockOwner   = "bosun.lock.owner"
	LabelLockSince   = "bosun.lock.since"
)

// secretKeyer is the part of a state.Store that gives the store its
// identity: the secret-hash key, made once per store.
type secretKeyer interface {
	SecretKey(ctx context.Context) ([]byte, error)
}

// storeID is the identity of the executor's state store on servers: a
// hash of its secret-hash key (never the key), so two daemons on one
// PostgreSQL share it and two SQLite files do not. A store without a key
// is named by the executor's owner.
func (e *Executor) storeID(ctx context.Context) (string, error) {
	e.idMu.Lock()
	defer e.idMu.Unlock()
	if e.id != "" {
		return e.id, nil
	}
	var seed []byte
	if k, ok := e.cfg.Store.(secretKeyer); ok {
		key, err := k.SecretKey(ctx)
		if err != nil {
			return "", fmt.Errorf("read the store's identity: %w", err)
		}
		seed = append([]byte("bosun store id\x00"), key...)
	} else {
		seed = []byte("bosun owner\x00" + e.cfg.Owner)
	}
	sum := sha256.Sum256(seed)
	e.id = hex.EncodeToString(sum[:8])
	return e.id, nil
}

// lockVolumeName is the server lock of one service: bosun-lock-<service>.
// It is per service, not per repository, because a host's containers are
// (<service>-<role>-<version>, found by labels bosun.service and
// bosun.role): two runs that name the repository differently (--name, or
// another clone's folder) roll the same containers. The service name is
// validated: it becomes a Docker object name.
func lockVolumeName(service string) (string, error) {
	if !nameRE.MatchString(service) {
		return "", fmt.Errorf("service name %q: want 1-63 of a-z, 0-9, '_', '.', '-'", service)
	}
	return "bosun-lock-" + service, nil
}

// lockHost is where a service's server lock lives: the first host (by
// name) of its primary role in the plan, else its first host; the same
// for every run of the same config, whatever its store. ok is false when
// the plan reaches none of the service's hosts (removals from hosts that
// left the inventory).
func lockHost(plan *planner.Plan, pol planner.Service, chs []planner.Change) (planner.Host, bool) {
	primary := pol.PrimaryRole
	if primary == "" && len(pol.Roles) > 0 {
		primary = pol.Roles[0]
	}
	var inRole, all []string
	for _, ch := range chs {
		if _, ok := plan.Hosts[ch.Host]; !ok {
			continue
		}
		all = append(all, ch.Host)
		if ch.Role == primary {
			inRole = append(inRole, ch.Host)
		}
	}
	if len(inRole) > 0 {
		all = inRole
	}
	if len(all) == 0 {
		return planner.Host{}, false
	}
	sort.Strings(all)
	return plan.Hosts[all[0]], true
}

// serverLock takes the service's lock on its primary host, so that
// rollouts from different stores (two `bosun apply` with different
// --state, a daemon and a laptop) never run at once on the same servers,
// as Kamal's lock directory does. The lock is a Docker volume: creating a
// volume whose name exists returns the existing one with its labels, so
// the labels say atomically whose lock it is. The same store takes its own
// lock again (its store lease already separates its runs, and that covers
// a crashed run of the same store); another store's lock is waited for,
// bounded by opts.LockWait, then the rollout fails naming the holder and
// how to remove a stale lock. The returned function removes the volume.
//
// A failure to reach the host is a *RolloutError wrapping a *StepError of
// step connect, as when a rollout step cannot reach a host (the daemon
// retries those).
func (e *Executor) serverLock(ctx context.Context, plan *planner.Plan, pol planner.Service, chs []planner.Change, opts ApplyOpts) (func(), error) {
	if e.cfg.Store == nil {
		return func() {}, nil
	}
	h, ok := lockHost(plan, pol, chs)
	if !ok {
		return func() {}, nil
	}
	name, err := lockVolumeName(pol.Name)
	if err != nil {
		return nil, err
	}
	id, err := e.storeID(ctx)
	if err != nil {
		return nil, err
	}
	hc, err := e.host(h)
	if err == nil {
		err = hc.connect(ctx)
	}
	if err != nil {
		se := &StepError{Host: h.Name, Service: pol.Name, Role: "lock", Step: StepConnect, Err: fmt.Errorf("take the rollout lock: %w", err)}
		return nil, &RolloutError{Service: pol.Name, Err: se}
	}
	dc := hc.docker
	waitCtx := ctx
	if opts.LockWait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, opts.LockWait)
		defer cancel()
	}
	labels := map[string]string{
		LabelLockRepo: plan.Repo, LabelLockService: pol.Name, LabelLockStore: id,
		LabelLockOwner: e.cfg.Owner, LabelLockSince: time.Now().UTC().Format(time.RFC3339),
	}
	holderOf := func(v volume.Volume) string {
		return fmt.Sprintf("%s (store %s, since %s)", v.Labels[LabelLockOwner], v.Labels[LabelLockStore], v.Labels[LabelLockSince])
	}
	var last string
	for i := 0; ; i++ {
		v, err := dc.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels})
		if err != nil {
			return nil, fmt.Errorf("take the rollout lock (volume %s) on %s: %w", name, h.Name, err)
		}
		if v.Labels[LabelLockStore] == id {
			break
		}
		holder := holderOf(v)
		if v.Labels[LabelLockStore] == "" {
			holder = "a volume bosun did not label"
		}
		if holder != last {
			last = holder
			msg := fmt.Sprintf("waiting for %s, which holds the lock of %s on %s (volume %s)", holder, pol.Name, h.Name, name)
			e.emitMu.Lock()
			if e.cfg.Progress != nil {
				e.cfg.Progress(Event{Time: time.Now().UTC(), Service: pol.Name, Host: h.Name, Step: StepLock, Status: StatusWaiting, Message: msg})
			}
			e.emitMu.Unlock()
			e.log.InfoContext(ctx, "waiting for the lock on the server", "service", pol.Name, "host", h.Name, "holder", holder)
		}
		if err := sleepCtx(waitCtx, min(time.Duration(i+1)*100*time.Millisecond, time.Second)); err != nil {
			if ctx.Err() == nil {
				return nil, fmt.Errorf("%w of %s on %s held by %s; if that rollout is gone, remove the lock on %s: docker volume rm %s", ErrLockTimeout, pol.Name, h.Name, last, h.Name, name)
			}
			return nil, err
		}
	}
	return func() {
		bg := context.WithoutCancel(ctx)
		// Only the holder removes the lock; the inspect guards against a
		// lock removed by hand and taken by another store meanwhile.
		v, err := dc.VolumeInspect(bg, name)
		if err == nil && v.Labels[LabelLockStore] == id {
			err = dc.VolumeRemove(bg, name, false)
		}
		if err != nil && !isNotFound(err) {
			e.log.WarnContext(ctx, "release the rollout lock on the server", "service", pol.Name, "host", h.Name, "volume", name, "err", err)
		}
	}, nil
}
