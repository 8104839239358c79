package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/internal/testutil"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

const testRepo = "git@example.com:acme/deploy.git"

// bedEnv is a testbed with an executor pointed at it.
type bedEnv struct {
	t      testing.TB
	bed    *testbed.Bed
	store  state.Store
	dbDir  string
	hosts  map[string]planner.Host
	names  []string // server names in order
	out    *testutil.SyncBuffer
	ex     *Executor
	events *eventLog
}

type eventLog struct {
	mu  sync.Mutex
	evs []Event
	on  func(Event)
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	on := l.on
	l.mu.Unlock()
	if on != nil {
		on(ev)
	}
}

func (l *eventLog) setOn(f func(Event)) {
	l.mu.Lock()
	l.on = f
	l.mu.Unlock()
}

func (l *eventLog) find(f func(Event) bool) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, ev := range l.evs {
		if f(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func newBedEnv(t testing.TB, servers int) *bedEnv {
	t.Helper()
	return newBedEnvOpts(t, testbed.Options{Servers: servers})
}

// newBedEnvOpts is newBedEnv on a bed started with opt.
func newBedEnvOpts(t testing.TB, opt testbed.Options) *bedEnv {
	t.Helper()
	return newBedEnvOn(t, testbed.Start(t, opt))
}

// newBedEnvOn is a bedEnv on bed with a fresh store, executor and event log.
func newBedEnvOn(t testing.TB, bed *testbed.Bed) *bedEnv {
	t.Helper()
	dbDir := t.TempDir()
	st, err := state.Open(t.Context(), "sqlite:///"+dbDir+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	en := &bedEnv{t: t, bed: bed, store: st, dbDir: dbDir, hosts: map[string]planner.Host{}}
	for _, s := range bed.Servers {
		host, port, _ := net.SplitHostPort(s.SSHAddr)
		p, _ := strconv.Atoi(port)
		en.hosts[s.Name] = planner.Host{Name: s.Name, Address: host, Port: p, User: "root"}
		en.names = append(en.names, s.Name)
	}
	en.ex = en.newExecutor(nil)
	return en
}

// newExecutor makes an executor on the bed sharing the env's store, output
// and event log.
func (en *bedEnv) newExecutor(mut func(*Config)) *Executor {
	t := en.t
	if en.out == nil {
		en.out, en.events = &testutil.SyncBuffer{}, &eventLog{}
	}
	cfg := Config{
		Signers:        []ssh.Signer{en.bed.Signer},
		KnownHostsFile: en.bed.KnownHostsPath,
		ProxyBinary:    testbed.BosunBinary(t),
		Store:          en.store,
		KeepAlive:      2 * time.Second,
		ConnectTimeout: 5 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.MultiWriter(en.out, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Progress: func(ev Event) {
			fmt.Fprintln(en.out, ev.String())
			en.events.add(ev)
		},
	}
	if mut != nil {
		mut(&cfg)
	}
	ex, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ex.Close() })
	return ex
}

// webSpec is a proxied role of the sample app.
func webSpec(ref string) *planner.Spec {
	return &planner.Spec{
		Service: "web", Role: "web", Image: ref,
		Env: map[string]string{"DRAIN_TIMEOUT": "5s"},
		Proxy: &planner.Proxy{
			AppPort: testbed.SampleAppPort, HealthPath: "/up",
			HealthInterval: planner.Duration(100 * time.Millisecond), HealthTimeout: planner.Duration(2 * time.Second),
			ResponseTimeout: planner.Duration(10 * time.Second),
		},
		DeployTimeout: planner.Duration(10 * time.Second),
		DrainTimeout:  planner.Duration(3 * time.Second),
	}
}

// plan builds what the planner would: the spec on every given host (all
// when none), diffed against the applied state in the store.
func (en *bedEnv) plan(spec *planner.Spec, pol planner.Service, hosts ...string) *planner.Plan {
	if len(hosts) == 0 {
		hosts = en.names
	}
	v := spec.Version()
	if pol.Name == "" {
		pol.Name = spec.Service
	}
	if len(pol.Roles) == 0 {
		pol.Roles, pol.PrimaryRole = []string{spec.Role}, spec.Role
	}
	pl := &planner.Plan{Repo: testRepo, Commit: "c0ffee" + v, Services: []planner.Service{pol}, Hosts: map[string]planner.Host{}}
	for _, h := range hosts {
		pl.Hosts[h] = en.hosts[h]
		ch := planner.Change{Target: planner.Target{Service: spec.Service, Role: spec.Role, Host: h}, Version: v, Desired: spec}
		cur := en.applied(spec.Service, spec.Role, h)
		switch {
		case cur == nil:
			ch.Action = planner.ActionCreate
		case cur.Version == v:
			ch.Action = planner.ActionUnchanged
			ch.Current = cur
		default:
			ch.Action = planner.ActionUpdate
			ch.Current = cur
		}
		pl.Changes = append(pl.Changes, ch)
	}
	return pl
}

func (en *bedEnv) applied(service, role, host string) *planner.Applied {
	a, ok := en.appliedRecord(service, role, host)
	if !ok {
		return nil
	}
	var spec planner.Spec
	if err := json.Unmarshal(a.Spec, &spec); err != nil {
		en.t.Fatal(err)
	}
	return &planner.Applied{Target: planner.Target{Service: service, Role: role, Host: host}, Version: a.Version, Commit: a.Commit, Spec: spec}
}

func (en *bedEnv) appliedRecord(service, role, host string) (state.Applied, bool) {
	all, err := en.store.ListApplied(context.Background(), testRepo)
	if err != nil {
		en.t.Fatal(err)
	}
	for _, a := range all {
		if a.Service == service && a.Role == role && a.Host == host {
			return a, true
		}
	}
	return state.Applied{}, false
}

func (en *bedEnv) appliedVersion(service, role, host string) string {
	a, _ := en.appliedRecord(service, role, host)
	return a.Version
}

func (en *bedEnv) deployment(id int64) state.Deployment {
	ds, err := en.store.ListDeployments(context.Background(), state.DeploymentFilter{Repo: testRepo})
	if err != nil {
		en.t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == id {
			return d
		}
	}
	en.t.Fatalf("no deployment %d", id)
	return state.Deployment{}
}

// storeBytes is every byte of the SQLite database files.
func (en *bedEnv) storeBytes() string {
	var b strings.Builder
	ents, _ := os.ReadDir(en.dbDir)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(en.dbDir, e.Name()))
		b.Write(data)
	}
	return b.String()
}

func (en *bedEnv) apply(pl *planner.Plan) (*Result, error) {
	return en.ex.Apply(en.t.Context(), pl, ApplyOpts{Trigger: "test"})
}

func (en *bedEnv) mustApply(pl *planner.Plan) *Result {
	en.t.Helper()
	res, err := en.apply(pl)
	if err != nil {
		en.t.Fatalf("apply: %v\noutput:\n%s", err, en.out.String())
	}
	return res
}

// expectNowhere checks that a secret value is in no server's process list,
// in none of bosun's output and logs, and not in the state store.
func (en *bedEnv) expectNowhere(t *testing.T, what, value string) {
	t.Helper()
	for _, s := range en.bed.Servers {
		if ps := s.Exec(t, "ps", "auxww"); strings.Contains(ps, value) {
			t.Errorf("%s in the process list of %s", what, s.Name)
		}
	}
	if strings.Contains(en.out.String(), value) {
		t.Errorf("%s in bosun's output or logs", what)
	}
	if strings.Contains(en.storeBytes(), value) {
		t.Errorf("%s in the state store", what)
	}
}

// get asks a server's proxy for / on the catch-all route and returns the
// answering version.
func get(t *testing.T, addr string) string {
	t.Helper()
	return getHost(t, addr, "")
}

// getHost asks a server's proxy for / with the Host header host ("": the
// address itself, which only a catch-all route matches) and returns the
// answering version.
func getHost(t *testing.T, addr, host string) string {
	t.Helper()
	v, err := getVersion(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, addr, host)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tryGet is getHost with a short timeout that returns the error.
func tryGet(addr, host string) (string, error) {
	return getVersion(&http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, addr, host)
}

func getVersion(c *http.Client, addr, host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s (host %q): %w", addr, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s (host %q): %s %s", addr, host, resp.Status, b)
	}
	return strings.Fields(string(b))[0], nil
}

// load sends GET and POST requests without pause to every address (with
// the Host header host), on a fresh connection and on a kept-alive one
// each, and checks every answer.
type load struct {
	host          string
	total, failed atomic.Int64
	mu            sync.Mutex
	seen          map[string]int
	bad           []string
	allowed       map[string]bool
	only          string
	stop          chan struct{}
	wg            sync.WaitGroup
}

// startLoad is startLoadHost on the catch-all route.
func startLoad(t *testing.T, addrs []string, allowed ...string) *load {
	return startLoadHost(t, "", addrs, allowed...)
}

// startLoadHost starts a load on the route of host ("": the catch-all)
// that accepts the versions allowed.
func startLoadHost(t *testing.T, host string, addrs []string, allowed ...string) *load {
	l := &load{host: host, seen: map[string]int{}, allowed: map[string]bool{}, stop: make(chan struct{})}
	for _, a := range allowed {
		l.allowed[a] = true
	}
	for _, addr := range addrs {
		for _, keep := range []bool{false, true} {
			c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keep, MaxIdleConnsPerHost: 1}}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer c.CloseIdleConnections()
				for i := 0; ; i++ {
					select {
					case <-l.stop:
						return
					default:
					}
					l.one(c, addr, i%2 == 1)
				}
			}()
		}
	}
	t.Cleanup(l.finish)
	return l
}

func (l *load) one(c *http.Client, addr string, post bool) {
	l.mu.Lock()
	only := l.only
	l.mu.Unlock()
	method, body := http.MethodGet, io.Reader(nil)
	if post {
		method, body = http.MethodPost, strings.NewReader("payload")
	}
	req, err := http.NewRequest(method, "http://"+addr+"/", body)
	if err != nil {
		l.fail(err.Error())
		return
	}
	req.Host = l.host
	if post {
		req.Header.Set("Content-Type", "text/plain")
	}
	resp, err := c.Do(req)
	l.total.Add(1)
	if err != nil {
		l.fail(fmt.Sprintf("%s: %v", addr, err))
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		l.fail(fmt.Sprintf("%s: %s %s", addr, resp.Status, bytes.TrimSpace(b)))
		return
	}
	v := strings.Fields(string(b))[0]
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[v]++
	if !l.allowed[v] || (only != "" && v != only) {
		l.bad = append(l.bad, fmt.Sprintf("%s answered %s (only=%q)", addr, v, only))
	}
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, msg)
	}
	l.mu.Unlock()
}

// expectOnly makes every later request (started after the call) answer v.
func (l *load) expectOnly(v string) {
	l.mu.Lock()
	l.only = v
	l.mu.Unlock()
}

func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check stops the load and fails the test on any failed or unexpected answer.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.finish()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d requests, %d failed, versions %v", l.total.Load(), l.failed.Load(), l.seen)
	if l.failed.Load() != 0 || len(l.bad) != 0 {
		t.Errorf("load saw %d failures / unexpected answers: %s", len(l.bad), strings.Join(l.bad, "; "))
	}
	if l.total.Load() < 20 {
		t.Errorf("only %d requests were made", l.total.Load())
	}
}

func (en *bedEnv) httpAddrs() []string {
	var out []string
	for _, s := range en.bed.Servers {
		out = append(out, s.HTTPAddr)
	}
	return out
}

// containerStarts counts "start" events of containers named name on a server since t0.
func containerEvents(t *testing.T, s *testbed.Server, since time.Time, filters ...string) int {
	ts := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	args := []string{"docker", "events", "--since", ts(since), "--until", ts(time.Now()), "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	out := strings.TrimSpace(s.Exec(t, args...))
	if out == "" {
		return 0
	}
	t.Logf("events on %s: %s", s.Name, out)
	return len(strings.Split(out, "\n"))
}

var _ = context.Background
