package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/planner"
)

// The fleet's live check: what runs on the servers now, read the way `bosun
// status` reads it (executor.Status over SSH), at most once per
// liveInterval and never while a page waits. A page that finds the last
// check older than liveInterval starts one in the background and shows
// what the last one found.

// ServerLister is what a Daemon may also tell of a repository's servers
// (*daemon.Daemon does, through cmd/bosun).
type ServerLister interface {
	// Servers returns how to reach the servers repo's last sync planned
	// for, and their fleet.yml tags; ok is false before its first sync.
	Servers(repo string) (hosts []planner.Host, tags map[string][]string, ok bool)
}

// StatusFunc reads bosun's running containers on hosts (executor.Status
// without retained versions). Hosts it cannot reach get an entry with Err.
type StatusFunc func(ctx context.Context, hosts []planner.Host) ([]executor.ContainerStatus, error)

// liveInterval is how old the last live check may be before a page asks
// for the next; liveTimeout bounds one check. Variables for tests.
var (
	liveInterval = 30 * time.Second
	liveTimeout  = 20 * time.Second
)

// liveKey is one service on one server. Containers are labelled with their
// service, not their repository.
type liveKey struct{ service, host string }

// liveRun is one service's containers on one server, as read.
type liveRun struct {
	State, Health, Version string
}

// liveView is the last finished check.
type liveView struct {
	At          time.Time           // when it finished; zero: none yet
	Checked     map[string]bool     // hosts it read
	Unreachable map[string]string   // hosts it could not read, and why
	Runs        map[liveKey]liveRun // what runs, per service and host
}

// liveChecker runs the checks, one at a time.
type liveChecker struct {
	status StatusFunc

	mu      sync.Mutex
	view    liveView
	running bool
	started time.Time
	done    chan struct{} // closed when the running check ends (tests)
}

// current returns the last finished check and, when it is older than
// liveInterval (or there is none) and none runs, starts the next over
// hosts in the background.
func (l *liveChecker) current(hosts []planner.Host, onErr func(error)) liveView {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running && len(hosts) > 0 && time.Since(l.started) >= liveInterval {
		l.running, l.started, l.done = true, time.Now(), make(chan struct{})
		go l.check(hosts, onErr, l.done)
	}
	return l.view
}

func (l *liveChecker) check(hosts []planner.Host, onErr func(error), done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	list, err := l.status(ctx, hosts)
	v := liveView{At: time.Now(), Checked: map[string]bool{}, Unreachable: map[string]string{}, Runs: map[liveKey]liveRun{}}
	for _, c := range list {
		if c.Err != nil {
			v.Unreachable[c.Host] = c.Err.Error()
			continue
		}
		v.Checked[c.Host] = true
		if c.Service == "" {
			continue
		}
		k := liveKey{c.Service, c.Host}
		// Of several containers (roles, a paused standby), an unhealthy
		// running one counts first, then any running one.
		old, seen := v.Runs[k]
		run := liveRun{State: c.State, Health: c.Health, Version: c.Version}
		if !seen || old.State != "running" && c.State == "running" || c.State == "running" && c.Health == "unhealthy" {
			v.Runs[k] = run
		}
	}
	for _, h := range hosts {
		if _, bad := v.Unreachable[h.Name]; !bad {
			v.Checked[h.Name] = true
		}
	}
	if err != nil && onErr != nil {
		onErr(err)
	}
	l.mu.Lock()
	l.view, l.running = v, false
	l.mu.Unlock()
}
