package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// secretSource is a map of secrets.
type secretSource map[string]string

func (s secretSource) LookupSecret(name string) (string, bool) { v, ok := s[name]; return v, ok }

// The TestApply_ tests below run on the shared two-server bed (see
// sharedbed_test.go). Each deploys a service of its own, named after the
// test and routed by the proxy for its own host (routeHost), from nothing:
// what it needs running first, it deploys itself.

// retain3 is the policy of most tests here: three stopped versions kept.
var retain3 = planner.Service{RetainContainers: 3}

// routeHost is the proxy host of a test's service.
func routeHost(service string) string { return service + ".test" }

// proxiedSpec is webSpec for service, routed for routeHost(service) only,
// so that the services of tests on the shared bed never share a route.
func proxiedSpec(service, ref string) *planner.Spec {
	s := webSpec(ref)
	s.Service = service
	s.Proxy.Hosts = []string{routeHost(service)}
	return s
}

// expectServing checks that every server of the bed (or the ones named)
// answers version on service's route.
func (en *bedEnv) expectServing(t *testing.T, service, version string, servers ...*testbed.Server) {
	t.Helper()
	if len(servers) == 0 {
		servers = en.bed.Servers
	}
	for _, s := range servers {
		if v := getHost(t, s.HTTPAddr, routeHost(service)); v != version {
			t.Errorf("%s serves %s for %s, want %s", s.Name, v, service, version)
		}
	}
}

func TestApply_createsOnEveryServer(t *testing.T) {
	en := newSharedEnv(t)
	spec := proxiedSpec("create", sharedApp(t, "v1", testbed.AppOK))
	res := en.mustApply(en.plan(spec, retain3))
	if len(res.Services) != 1 || res.Services[0].Status != state.StatusDeployed || len(res.Services[0].Deployed) != 2 {
		t.Fatalf("result = %+v", res.Services)
	}
	en.expectServing(t, "create", "v1")
	for _, s := range en.bed.Servers {
		if v := en.appliedVersion("create", "web", s.Name); v != spec.Version() {
			t.Errorf("applied on %s = %q, want %s", s.Name, v, spec.Version())
		}
	}
}

func TestApply_updateUnderLoad(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "rollout"
	v1, v2 := proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(v1, retain3))

	l := startLoadHost(t, routeHost(svc), en.httpAddrs(), "v1", "v2")
	time.Sleep(300 * time.Millisecond) // let the load reach full speed against v1
	en.mustApply(en.plan(v2, retain3))
	l.expectOnly("v2")
	time.Sleep(300 * time.Millisecond) // requests after the switch
	l.check(t)
	if l.seen["v2"] == 0 {
		t.Error("no request saw v2")
	}
	// The old containers are stopped, not removed.
	for _, s := range en.bed.Servers {
		ps := s.Exec(t, "docker", "ps", "-a", "--filter", "label=bosun.service="+svc, "--format", "{{.Names}} {{.State}}")
		if !strings.Contains(ps, containerName(svc, "web", v1.Version())+" exited") || !strings.Contains(ps, containerName(svc, "web", v2.Version())+" running") {
			t.Errorf("containers on %s:\n%s", s.Name, ps)
		}
	}
}

func TestApply_reapplyStartsNothing(t *testing.T) {
	en := newSharedEnv(t)
	spec := proxiedSpec("reapply", sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(spec, retain3))

	since := time.Now()
	pl := en.plan(spec, retain3)
	for _, ch := range pl.Changes {
		if ch.Action != planner.ActionUnchanged {
			t.Fatalf("plan has %s for %s", ch.Action, ch.Target)
		}
	}
	res := en.mustApply(pl)
	if len(res.Services) != 0 {
		t.Errorf("re-apply did something: %+v", res.Services)
	}
	// Even an update change for the running version starts no container.
	pl = en.plan(spec, retain3)
	for i := range pl.Changes {
		pl.Changes[i].Action = planner.ActionUpdate
	}
	en.mustApply(pl)
	for _, s := range en.bed.Servers {
		if n := containerEvents(t, s, since, "type=container", "event=start"); n != 0 {
			t.Errorf("%d containers started on %s", n, s.Name)
		}
		if n := containerEvents(t, s, since, "type=image", "event=pull"); n != 0 {
			t.Errorf("%d pulls on %s", n, s.Name)
		}
	}
}

func TestApply_backToRetainedVersion(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "retained"
	v1, v2 := proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(v1, retain3))
	en.mustApply(en.plan(v2, retain3))

	// Back to v1: the retained container is restarted, with no pull.
	since := time.Now()
	l := startLoadHost(t, routeHost(svc), en.httpAddrs(), "v1", "v2")
	en.mustApply(en.plan(v1, retain3))
	l.expectOnly("v1")
	time.Sleep(200 * time.Millisecond)
	l.check(t)
	for _, s := range en.bed.Servers {
		if n := containerEvents(t, s, since, "type=image", "event=pull"); n != 0 {
			t.Errorf("%d pulls on %s", n, s.Name)
		}
		if n := containerEvents(t, s, since, "type=container", "event=create", "label=bosun.service="+svc); n != 0 {
			t.Errorf("%d containers created on %s, want the retained one restarted", n, s.Name)
		}
	}
	if len(en.events.find(func(ev Event) bool {
		return ev.Step == StepPull && ev.Status == StatusSkipped && ev.Version == v1.Version() && ev.Time.After(since)
	})) != 2 {
		t.Error("no pull-skipped event for both hosts")
	}
}

func TestApply_unhealthyVersionRefused(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "unhealthy"
	good := proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(good, retain3))

	bad := proxiedSpec(svc, sharedApp(t, "v3", testbed.AppUnhealthy))
	bad.DeployTimeout = planner.Duration(3 * time.Second)
	l := startLoadHost(t, routeHost(svc), en.httpAddrs(), "v2")
	res, err := en.apply(en.plan(bad, retain3))
	l.check(t)
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepHealth {
		t.Fatalf("err = %v, want a health StepError", err)
	}
	if !strings.Contains(err.Error(), svc) || !strings.Contains(err.Error(), "health") {
		t.Errorf("error does not say what failed: %v", err)
	}
	d := en.deployment(res.Services[0].DeploymentID)
	if d.Status != state.StatusFailed || !strings.Contains(d.Error, "health") {
		t.Errorf("deployment = %+v, want failed with the health error", d)
	}
	en.expectServing(t, svc, "v2")
	for _, s := range en.bed.Servers {
		if v := en.appliedVersion(svc, "web", s.Name); v != good.Version() {
			t.Errorf("applied on %s = %q, want v2's %s", s.Name, v, good.Version())
		}
	}
}

func TestApply_crashingVersionLogs(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "crash"
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3))

	bad := proxiedSpec(svc, sharedApp(t, "v4", testbed.AppCrash))
	l := startLoadHost(t, routeHost(svc), en.httpAddrs(), "v2")
	_, err := en.apply(en.plan(bad, retain3))
	l.check(t)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a StepError", err)
	}
	if !strings.Contains(se.Logs, "crashing at start") || !strings.Contains(err.Error(), "crashing at start") {
		t.Errorf("error lacks the container's log lines: %v", err)
	}
	en.expectServing(t, svc, "v2")
}

// A failed step's event in the store carries the container's last log
// lines, for the dashboard's deployment page, with the service's secret
// values redacted: the crashing app logs its APP_VERSION, here a secret.
func TestApply_failedStepEventLogs(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "crashlog"
	secret := "s3cr3t-" + strings.Repeat("z", 8) + time.Now().Format("150405.000")
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3))
	ex := en.newExecutor(func(c *Config) { c.Secrets = secretSource{"APP_VERSION": secret} })
	spec := proxiedSpec(svc, sharedApp(t, "v4", testbed.AppCrash))
	spec.Secrets = map[string]planner.SecretRef{"APP_VERSION": {Name: "APP_VERSION", Hash: "hmac-sha256:00"}}
	res, err := ex.Apply(t.Context(), en.plan(spec, retain3), ApplyOpts{Trigger: "test"})
	if err == nil || res == nil || len(res.Services) != 1 {
		t.Fatalf("apply of a crashing version: %v, %+v", err, res)
	}
	evs, lerr := en.store.ListEvents(t.Context(), res.Services[0].DeploymentID)
	if lerr != nil {
		t.Fatal(lerr)
	}
	var failed []state.Event
	for _, e := range evs {
		if e.Status == string(StatusFailed) && (e.Step == string(StepStart) || e.Step == string(StepHealth)) {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 {
		t.Fatalf("no failed start or health event: %+v", evs)
	}
	for _, e := range failed {
		if strings.Contains(e.Message, secret) {
			t.Errorf("the %s event on %s shows the secret: %q", e.Step, e.Host, e.Message)
		}
		if !strings.Contains(e.Message, "container log (last lines):") || !strings.Contains(e.Message, "crashing at start") || !strings.Contains(e.Message, "version "+planner.RedactedText) {
			t.Errorf("the %s event on %s lacks the redacted log lines: %q", e.Step, e.Host, e.Message)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the secret: %v", err)
	}
	en.expectNowhere(t, "secret", secret)
}

func TestApply_serverUnreachableMidRollout(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "unreachable"
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	good := proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(good, retain3))

	// A fresh executor has no connection to server-2 yet; one host per
	// batch, and server-2's sshd stops once server-1 has switched.
	ex := en.newExecutor(nil)
	var stopped atomic.Bool
	en.events.setOn(func(ev Event) {
		if ev.Host == s1.Name && ev.Step == StepSwitch && ev.Status == StatusOK && stopped.CompareAndSwap(false, true) {
			s2.StopSSH(t)
		}
	})
	defer func() {
		en.events.setOn(nil)
		if stopped.Load() {
			s2.StartSSH(t)
		}
	}()
	v5 := proxiedSpec(svc, sharedApp(t, "v5", testbed.AppOK))
	l := startLoadHost(t, routeHost(svc), []string{s1.HTTPAddr}, "v2", "v5")
	res, err := ex.Apply(t.Context(), en.plan(v5, planner.Service{BootLimit: 1, RetainContainers: 3}), ApplyOpts{})
	l.expectOnly("v2")
	time.Sleep(100 * time.Millisecond)
	l.check(t)
	var se *StepError
	if !errors.As(err, &se) || se.Host != s2.Name {
		t.Fatalf("err = %v, want a StepError naming %s", err, s2.Name)
	}
	var re *RolloutError
	if !errors.As(err, &re) || len(re.RolledBack) != 1 || !strings.Contains(re.RolledBack[0], s1.Name) {
		t.Errorf("rolled back = %+v, want %s", re, s1.Name)
	}
	if v := getHost(t, s1.HTTPAddr, routeHost(svc)); v != "v2" {
		t.Errorf("%s serves %s after the rollback, want v2", s1.Name, v)
	}
	if v := en.appliedVersion(svc, "web", s1.Name); v != good.Version() {
		t.Errorf("applied on %s = %q, want v2's", s1.Name, v)
	}
	// History says what happened: the rollout failed and was put back.
	if len(res.Services) != 1 || res.Services[0].Status != state.StatusRolledBack {
		t.Errorf("result = %+v, want one service, rolled_back", res.Services)
	} else if d := en.deployment(res.Services[0].DeploymentID); d.Status != state.StatusRolledBack || !strings.Contains(d.Error, s2.Name) {
		t.Errorf("deployment = %+v, want rolled_back with the error naming %s", d, s2.Name)
	}
}

func TestApply_serverPausedMidRollout(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "paused"
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	// This deploy leaves en.ex holding a live SSH connection to server-2.
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3))

	// Pausing the server freezes that connection mid-conversation. The
	// keepalive (2s here) notices.
	var paused atomic.Bool
	en.events.setOn(func(ev Event) {
		if ev.Host == s1.Name && ev.Step == StepSwitch && ev.Status == StatusOK && paused.CompareAndSwap(false, true) {
			s2.Pause(t)
		}
	})
	defer func() {
		en.events.setOn(nil)
		if paused.Load() {
			s2.Unpause(t)
		}
	}()
	v6 := proxiedSpec(svc, sharedApp(t, "v6", testbed.AppOK))
	start := time.Now()
	_, err := en.apply(en.plan(v6, planner.Service{BootLimit: 1, RetainContainers: 3}))
	var se *StepError
	if !errors.As(err, &se) || se.Host != s2.Name {
		t.Fatalf("err = %v, want a StepError naming %s", err, s2.Name)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("rollout took %s to notice the paused server", d)
	}
	if v := getHost(t, s1.HTTPAddr, routeHost(svc)); v != "v2" {
		t.Errorf("%s serves %s after the rollback, want v2", s1.Name, v)
	}
}

func TestApply_proxyRestartKeepsRoutes(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "proxyrestart"
	s1 := en.bed.Servers[0]
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3))

	s1.Exec(t, "docker", "restart", ProxyContainer)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, err := tryGet(s1.HTTPAddr, routeHost(svc)); err == nil {
			if v != "v2" {
				t.Fatalf("after restart %s serves %s, want v2", s1.Name, v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("proxy did not come back")
		}
		time.Sleep(100 * time.Millisecond) // polling a restarting container: no event to wait on
	}
	// The next deploy works.
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), retain3))
	en.expectServing(t, svc, "v1")
}

func TestApply_newerBosunReplacesProxy(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "proxyupgrade"
	s1 := en.bed.Servers[0]
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), retain3, s1.Name))

	// Another build of bosun: the same binary with trailing bytes, which
	// gives another image digest.
	bin, err := os.ReadFile(testbed.BosunBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "bosun")
	if err := os.WriteFile(newer, append(bin, "\n# newer build\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	ex := en.newExecutor(func(c *Config) { c.ProxyBinary = newer })
	proxyImage := func() string {
		return strings.TrimSpace(s1.Exec(t, "docker", "inspect", "--format", "{{.Config.Image}}", ProxyContainer))
	}
	ensure := func(ex *Executor) {
		hc, err := ex.host(en.hosts[s1.Name])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ex.ensureProxy(t.Context(), hc); err != nil {
			t.Fatal(err)
		}
	}
	before := proxyImage()
	// Put the proxy of this build back for the tests after this one.
	defer func() {
		ensure(en.newExecutor(nil))
		if now := proxyImage(); now != before {
			t.Errorf("proxy image on %s is %s after the test, want %s back", s1.Name, now, before)
		}
	}()
	ensure(ex)
	after := proxyImage()
	if after == before || !strings.HasPrefix(after, "bosun-proxy:") {
		t.Fatalf("proxy image %s → %s, want a new bosun-proxy image", before, after)
	}
	// The route came back from the volume: v1 answers with no deploy.
	if v := getHost(t, s1.HTTPAddr, routeHost(svc)); v != "v1" {
		t.Errorf("after the upgrade %s serves %s, want v1", s1.Name, v)
	}
	// And the upgraded proxy takes the next deploy.
	if _, err := ex.Apply(t.Context(), en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3, s1.Name), ApplyOpts{}); err != nil {
		t.Fatal(err)
	}
	if v := getHost(t, s1.HTTPAddr, routeHost(svc)); v != "v2" {
		t.Errorf("%s serves %s, want v2", s1.Name, v)
	}
}

func TestApply_canaryWatchedFirst(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "canary"
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK)), retain3))

	start := time.Now()
	en.mustApply(en.plan(proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), planner.Service{RetainContainers: 3, Canary: &planner.Canary{Hosts: 1, Watch: planner.Duration(time.Second)}}))
	canaryOK := en.events.find(func(ev Event) bool { return ev.Step == StepCanary && ev.Status == StatusOK && ev.Time.After(start) })
	s2Start := en.events.find(func(ev Event) bool {
		return ev.Host == s2.Name && ev.Step == StepStart && ev.Status == StatusStarted && ev.Time.After(start)
	})
	if len(canaryOK) != 1 || canaryOK[0].Host != s1.Name || len(s2Start) != 1 || !s2Start[0].Time.After(canaryOK[0].Time) {
		t.Errorf("canary ok %v, %s started %v: want the canary on %s watched first", canaryOK, s2.Name, s2Start, s1.Name)
	}
}

func TestApply_cancelMidRollout(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "cancel"
	s1 := en.bed.Servers[0]
	v1, v2 := proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK)), proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(v1, retain3))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	en.events.setOn(func(ev Event) {
		if ev.Host == s1.Name && ev.Step == StepStart && ev.Status == StatusOK {
			cancel()
		}
	})
	defer en.events.setOn(nil)
	l := startLoadHost(t, routeHost(svc), en.httpAddrs(), "v1", "v2")
	_, err := en.ex.Apply(ctx, en.plan(v2, planner.Service{BootLimit: 1, RetainContainers: 3}), ApplyOpts{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	// server-1 finished its step and was then put back, as after any
	// failure; server-2 was never touched.
	en.expectServing(t, svc, "v1")
	for _, s := range en.bed.Servers {
		if a := en.appliedVersion(svc, "web", s.Name); a != v1.Version() {
			t.Errorf("applied on %s = %s, want v1's", s.Name, a)
		}
	}
	if rb := en.events.find(func(ev Event) bool {
		return ev.Step == StepRollback && ev.Status == StatusOK && ev.Host == s1.Name && ev.Time.After(start)
	}); len(rb) != 1 {
		t.Errorf("rollback events of %s: %v", s1.Name, rb)
	}
	l.check(t)
	// The next apply converges.
	en.events.setOn(nil)
	en.mustApply(en.plan(v2, retain3))
	en.expectServing(t, svc, "v2")
}

func TestApply_unproxiedRoleStatusRemoval(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "status"
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	web := proxiedSpec(svc, sharedApp(t, "v2", testbed.AppOK))
	en.mustApply(en.plan(web, retain3))

	jobs := &planner.Spec{
		Service: "jobs", Role: "worker", Image: sharedApp(t, "v1", testbed.AppOK),
		Volumes:        []planner.Volume{{Source: "jobs-data", Target: "/data"}},
		ReadinessDelay: planner.Duration(500 * time.Millisecond),
		DeployTimeout:  planner.Duration(10 * time.Second),
	}
	en.mustApply(en.plan(jobs, planner.Service{}))
	st, err := en.ex.Status(t.Context(), []planner.Host{en.hosts[s1.Name], en.hosts[s2.Name]}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range st {
		got[c.Service+"/"+c.Role+"@"+c.Host] = c.Version + " " + c.State
	}
	for _, h := range en.names {
		if want := jobs.Version() + " running"; got["jobs/worker@"+h] != want {
			t.Errorf("status jobs/worker@%s = %q, want %q", h, got["jobs/worker@"+h], want)
		}
		if want := web.Version() + " running"; got[svc+"/web@"+h] != want {
			t.Errorf("status %s/web@%s = %q, want %q", svc, h, got[svc+"/web@"+h], want)
		}
	}
	pl := &planner.Plan{Repo: testRepo, Commit: "gone", Hosts: en.hosts, Services: []planner.Service{{Name: "jobs", Roles: []string{"worker"}}}}
	for _, h := range en.names {
		pl.Changes = append(pl.Changes, planner.Change{Target: planner.Target{Service: "jobs", Role: "worker", Host: h}, Action: planner.ActionRemove, Current: en.applied("jobs", "worker", h)})
	}
	res := en.mustApply(pl)
	if len(res.Services) != 1 || len(res.Services[0].Removed) != 2 {
		t.Errorf("result = %+v", res.Services)
	}
	for _, s := range en.bed.Servers {
		if ps := s.Exec(t, "docker", "ps", "-aq", "--filter", "label=bosun.service=jobs"); strings.TrimSpace(ps) != "" {
			t.Errorf("jobs containers left on %s: %s", s.Name, ps)
		}
		if vols := s.Exec(t, "docker", "volume", "ls", "-q"); !strings.Contains(vols, "jobs-data") {
			t.Errorf("volume jobs-data gone on %s: %s", s.Name, vols)
		}
		if en.appliedVersion("jobs", "worker", s.Name) != "" {
			t.Errorf("jobs still applied on %s", s.Name)
		}
	}
	// The proxied service beside it still serves.
	en.expectServing(t, svc, "v2")
}

func TestApply_dockerHealthCheck(t *testing.T) {
	en := newSharedEnv(t)
	s1 := en.bed.Servers[0]
	// The image has no shell: the check is the app binary itself, in
	// Docker's exec form.
	q := &planner.Spec{
		Service: "queue", Role: "worker", Image: sharedApp(t, "v1", testbed.AppOK),
		Health: planner.Health{Cmd: []string{"CMD", "/sampleapp", "check", "http://127.0.0.1/up"},
			Interval: planner.Duration(200 * time.Millisecond), Timeout: planner.Duration(2 * time.Second), Retries: 2},
		DeployTimeout: planner.Duration(20 * time.Second),
	}
	en.mustApply(en.plan(q, planner.Service{}, s1.Name))
	name := containerName("queue", "worker", q.Version())
	if st := strings.TrimSpace(s1.Exec(t, "docker", "inspect", "-f", "{{.State.Health.Status}}", name)); st != "healthy" {
		t.Errorf("health of %s after the deploy = %q, want healthy", name, st)
	}

	sick := *q
	sick.Image = sharedApp(t, "sick", testbed.AppUnhealthy)
	_, err := en.apply(en.plan(&sick, planner.Service{}, s1.Name))
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepHealth || se.Host != s1.Name {
		t.Fatalf("err = %v, want a health StepError on %s", err, s1.Name)
	}
	if msg := err.Error(); !strings.Contains(msg, "unhealthy") || !strings.Contains(msg, "500") {
		t.Errorf("error lacks the check's verdict and output: %v", err)
	}
	if ps := strings.TrimSpace(s1.Exec(t, "docker", "ps", "--filter", "label=bosun.service=queue", "--format", "{{.Names}}")); ps != name {
		t.Errorf("running queue containers after the failed deploy: %q, want only %s", ps, name)
	}
	if v := en.appliedVersion("queue", "worker", s1.Name); v != q.Version() {
		t.Errorf("applied = %q, want the healthy version %s", v, q.Version())
	}

	pl := &planner.Plan{Repo: testRepo, Commit: "gone", Hosts: en.hosts, Services: []planner.Service{{Name: "queue", Roles: []string{"worker"}}},
		Changes: []planner.Change{{Target: planner.Target{Service: "queue", Role: "worker", Host: s1.Name}, Action: planner.ActionRemove, Current: en.applied("queue", "worker", s1.Name)}}}
	en.mustApply(pl)
}

func TestApply_statefulStopThenStart(t *testing.T) {
	en := newSharedEnv(t)
	s1 := en.bed.Servers[0]
	db := &planner.Spec{
		Service: "db", Role: "primary", Image: sharedApp(t, "v1", testbed.AppOK), Stateful: true,
		Volumes:        []planner.Volume{{Source: "/srv/db-data", Target: "/data"}},
		ReadinessDelay: planner.Duration(300 * time.Millisecond),
		DeployTimeout:  planner.Duration(10 * time.Second),
	}
	en.mustApply(en.plan(db, planner.Service{}, s1.Name))
	db2 := *db
	db2.Env = map[string]string{"GEN": "2"}
	pl := en.plan(&db2, planner.Service{}, s1.Name)
	pl.Changes[0].Disruptive = true
	start := time.Now()
	en.mustApply(pl)
	stop := en.events.find(func(ev Event) bool {
		return ev.Service == "db" && ev.Step == StepStop && ev.Status == StatusStarted && ev.Time.After(start)
	})
	run := en.events.find(func(ev Event) bool {
		return ev.Service == "db" && ev.Step == StepStart && ev.Status == StatusStarted && ev.Time.After(start)
	})
	if len(stop) != 1 || len(run) != 1 || !run[0].Time.After(stop[0].Time) {
		t.Errorf("stop %v, start %v: want the old container stopped before the new one starts", stop, run)
	}
	ps := s1.Exec(t, "docker", "ps", "-a", "--filter", "label=bosun.service=db", "--format", "{{.Names}} {{.State}} {{.Mounts}}")
	if !strings.Contains(ps, "db-primary-"+db.Version()+" exited") || !strings.Contains(ps, "db-primary-"+db2.Version()+" running") || strings.Count(ps, "/srv/db-data") != 2 {
		t.Errorf("db containers:\n%s", ps)
	}
}

func TestApply_hostileValuesAndSecrets(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "hostile"
	ref := sharedApp(t, "v2", testbed.AppOK)
	const hostile = `$(touch /tmp/pwned); echo "x" ; rm -rf / #` + "`id`"
	secret := "s3cr3t-" + strings.Repeat("q", 8) + time.Now().Format("150405.000")
	ex := en.newExecutor(func(c *Config) { c.Secrets = secretSource{"API_TOKEN": secret} })
	spec := proxiedSpec(svc, ref)
	spec.Env["HOSTILE"] = hostile
	spec.Secrets = map[string]planner.SecretRef{"API_TOKEN": {Name: "API_TOKEN", Hash: "hmac-sha256:00"}}
	if _, err := ex.Apply(t.Context(), en.plan(spec, retain3), ApplyOpts{}); err != nil {
		t.Fatal(err)
	}
	name := containerName(svc, "web", spec.Version())
	for _, s := range en.bed.Servers {
		env := s.Exec(t, "docker", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", name)
		if !strings.Contains(env, "HOSTILE="+hostile+"\n") || !strings.Contains(env, "API_TOKEN="+secret+"\n") {
			t.Errorf("env in the container on %s:\n%s", s.Name, env)
		}
		if out, err := s.Run(t.Context(), "test", "-e", "/tmp/pwned"); err == nil {
			t.Errorf("/tmp/pwned exists on %s: %s", s.Name, out)
		}
	}
	en.expectNowhere(t, "secret", secret)
	// An image reference with spaces and a command is refused by the
	// daemon as a reference, never run.
	odd := proxiedSpec(svc, ref+" ; touch /tmp/pwned")
	if _, err := ex.Apply(t.Context(), en.plan(odd, retain3), ApplyOpts{}); err == nil {
		t.Error("image reference with spaces accepted")
	}
	for _, s := range en.bed.Servers {
		if _, err := s.Run(t.Context(), "test", "-e", "/tmp/pwned"); err == nil {
			t.Errorf("/tmp/pwned exists on %s", s.Name)
		}
	}
	// A service name with shell metacharacters never reaches a server.
	evil := proxiedSpec(svc, ref)
	evil.Service = "web;touch${IFS}/tmp/pwned"
	pl := en.plan(evil, planner.Service{})
	_, err := en.apply(pl)
	if err == nil || !strings.Contains(err.Error(), "service name") {
		t.Errorf("hostile service name: err = %v", err)
	}
}

func TestApply_privateRegistryLogin(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "private"
	spec := proxiedSpec(svc, strings.Replace(sharedApp(t, "v2", testbed.AppOK), en.bed.Registry, en.bed.PrivateRegistry, 1))
	spec.Env["FROM"] = "private"
	_, err := en.apply(en.plan(spec, retain3))
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepPull {
		t.Fatalf("without the login: err = %v, want a pull StepError", err)
	}
	t.Logf("without the login: %v", err)

	pw := en.bed.RegistryPassword
	withLogin := retain3
	withLogin.Registry = &planner.Registry{Server: en.bed.PrivateRegistry, Username: en.bed.RegistryUser, PasswordSecret: "REGISTRY_PASSWORD"}
	ex := en.newExecutor(func(c *Config) { c.Secrets = secretSource{"REGISTRY_PASSWORD": pw} })
	if _, err := ex.Apply(t.Context(), en.plan(spec, withLogin), ApplyOpts{}); err != nil {
		t.Fatalf("apply with the login: %v", err)
	}
	en.expectServing(t, svc, "v2")
	for _, s := range en.bed.Servers {
		if img := strings.TrimSpace(s.Exec(t, "docker", "inspect", "-f", "{{.Config.Image}}", containerName(svc, "web", spec.Version()))); img != spec.Image {
			t.Errorf("%s runs %s, want %s", s.Name, img, spec.Image)
		}
	}
	en.expectNowhere(t, "registry password", pw)
}

// TestApply_retention deploys three versions under retain_containers 1:
// the previous version stays, stopped, and the oldest is removed.
func TestApply_retention(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "retention"
	pol := planner.Service{RetainContainers: 1}
	var versions []string
	for i, app := range []string{"v1", "v2", "v1"} {
		spec := proxiedSpec(svc, sharedApp(t, app, testbed.AppOK))
		spec.Env["GEN"] = strconv.Itoa(i)
		en.mustApply(en.plan(spec, pol))
		versions = append(versions, spec.Version())
	}
	for _, s := range en.bed.Servers {
		out := strings.TrimSpace(s.Exec(t, "docker", "ps", "-a", "--filter", "label=bosun.service="+svc, "--filter", "status=exited", "--format", "{{.Names}}"))
		n := len(strings.Fields(out))
		if n == 0 || n > pol.RetainContainers {
			t.Errorf("%s keeps %d stopped %s containers, want 1..%d:\n%s", s.Name, n, svc, pol.RetainContainers, out)
		}
		all := s.Exec(t, "docker", "ps", "-a", "--filter", "label=bosun.service="+svc, "--format", "{{.Names}}")
		if oldest := containerName(svc, "web", versions[0]); strings.Contains(all, oldest) {
			t.Errorf("%s still has the oldest version %s:\n%s", s.Name, oldest, all)
		}
	}
}

func TestApply_jumpHost(t *testing.T) {
	en := newSharedEnv(t)
	const svc = "jump"
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	// server-2 reached at its test-network address, port 22, only
	// through server-1 (ssh.proxy); Docker and the proxy's control API
	// ride the jumped connection. Both host keys are checked.
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(readFile(t, en.bed.KnownHostsPath)+s2.IP+" "+s2.HostKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := en.newExecutor(func(c *Config) { c.KnownHostsFile = kh })
	spec := proxiedSpec(svc, sharedApp(t, "v1", testbed.AppOK))
	spec.Env["VIA"] = "jump"
	pl := en.plan(spec, retain3, s2.Name)
	h := pl.Hosts[s2.Name]
	h.Address, h.Port, h.Jump = s2.IP, 22, "root@"+s1.SSHAddr
	pl.Hosts[s2.Name] = h
	if _, err := ex.Apply(t.Context(), pl, ApplyOpts{}); err != nil {
		t.Fatalf("apply through the jump host: %v", err)
	}
	if v := getHost(t, s2.HTTPAddr, routeHost(svc)); v != "v1" {
		t.Errorf("%s serves %s after the jumped deploy, want v1", s2.Name, v)
	}
	if env := s2.Exec(t, "docker", "inspect", "-f", "{{.Config.Env}}", containerName(svc, "web", spec.Version())); !strings.Contains(env, "VIA=jump") {
		t.Errorf("the jumped deploy's container has env %s", env)
	}
	// The host reaches the test network directly too: only server-2's
	// sshd log shows the connection came from server-1.
	if log := s2.Exec(t, "cat", "/var/log/sshd.log"); !strings.Contains(log, "Accepted publickey for root from "+s1.IP+" ") {
		t.Errorf("server-2 accepted no SSH connection from server-1 (%s); its log:\n%s", s1.IP, log)
	}

	// The target's key unknown: refused, naming it, though the jump
	// host's key is known.
	ex = en.newExecutor(func(c *Config) { c.KnownHostsFile = en.bed.KnownHostsPath })
	spec.Env["VIA"] = "jump-2"
	pl = en.plan(spec, retain3, s2.Name)
	pl.Hosts[s2.Name] = h
	_, err := ex.Apply(t.Context(), pl, ApplyOpts{})
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Host != s2.Name {
		t.Fatalf("err = %v, want a host key error for %s", err, s2.Name)
	}
}

func TestApply_HostKeyRefused(t *testing.T) {
	en := newBedEnv(t, 1)
	ref := en.bed.PushApp(t, "web", "v1", testbed.AppOK)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ex := en.newExecutor(func(c *Config) { c.KnownHostsFile = empty })
	_, err := ex.Apply(t.Context(), en.plan(webSpec(ref), planner.Service{}), ApplyOpts{})
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Host != en.names[0] || len(hk.Known) != 0 {
		t.Fatalf("err = %v, want an unknown-host-key error for %s", err, en.names[0])
	}
	// A changed key: known_hosts holds another key for the server.
	changed := filepath.Join(t.TempDir(), "known_hosts")
	s := en.bed.Servers[0]
	line := knownhostsLine(s.SSHAddr, newSSHBundle(t).signer.PublicKey())
	if err := os.WriteFile(changed, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex = en.newExecutor(func(c *Config) { c.KnownHostsFile = changed })
	_, err = ex.Apply(t.Context(), en.plan(webSpec(ref), planner.Service{}), ApplyOpts{})
	if !errors.As(err, &hk) || len(hk.Known) != 1 || !strings.Contains(err.Error(), "HAS CHANGED") {
		t.Fatalf("err = %v, want a changed-host-key error", err)
	}
	if n := containerEvents(t, s, time.Now().Add(-time.Minute), "type=container", "event=create"); n != 0 {
		t.Errorf("%d containers created despite the refused key", n)
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
