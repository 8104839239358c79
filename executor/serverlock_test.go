package executor

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// TestApply_TwoStoresOneFleet: two `bosun apply` runs with different state
// stores roll different versions of one service out to the same servers at
// the same time. The lock on the servers lets one run at a time (the other
// waits, naming the holder); the later run notices the earlier run's
// containers, which its store did not make, says so and stops them, so in
// the end one version runs everywhere; each store records what it did.
func TestApply_TwoStoresOneFleet(t *testing.T) {
	en := newBedEnv(t, 2)
	refV3 := en.bed.PushApp(t, "web", "v3", testbed.AppOK)
	refV4 := en.bed.PushApp(t, "web", "v4", testbed.AppOK)
	specV3, specV4 := webSpec(refV3), webSpec(refV4)
	// One host at a time with a pause between: each rollout takes over two
	// seconds, so two started together overlap unless one waits.
	pol := planner.Service{BootLimit: 1, BootWait: planner.Duration(2 * time.Second)}

	stB, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/b.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stB.Close() })
	enB := &bedEnv{t: t, bed: en.bed, store: stB, hosts: en.hosts, names: en.names}
	exA := en.newExecutor(func(c *Config) { c.Owner = "run A" })
	exB := enB.newExecutor(func(c *Config) { c.Owner = "run B" })

	// The proxy is on the servers already, as after any earlier rollout
	// (two first rollouts at once would race loading its image).
	for _, h := range en.hosts {
		hc, err := exA.host(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := hc.ensureNetwork(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := exA.ensureProxy(t.Context(), hc); err != nil {
			t.Fatalf("proxy on %s: %v", h.Name, err)
		}
	}

	plA, plB := en.plan(specV3, pol), enB.plan(specV4, pol)
	var wg sync.WaitGroup
	var resA, resB *Result
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		resA, errA = exA.Apply(t.Context(), plA, ApplyOpts{Trigger: "test A", LockWait: time.Minute})
	}()
	go func() {
		defer wg.Done()
		resB, errB = exB.Apply(t.Context(), plB, ApplyOpts{Trigger: "test B", LockWait: time.Minute})
	}()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("apply A: %v; apply B: %v\nA:\n%s\nB:\n%s", errA, errB, en.out.String(), enB.out.String())
	}

	// One at a time: the rollouts' lock-to-done spans do not overlap, and
	// the second one waited for the first, naming it.
	span := func(l *eventLog) (from, to time.Time) {
		for _, ev := range l.find(func(ev Event) bool { return ev.Step == StepLock && ev.Status == StatusOK }) {
			from = ev.Time
		}
		for _, ev := range l.find(func(ev Event) bool { return ev.Step == StepDone }) {
			to = ev.Time
		}
		return from, to
	}
	fromA, toA := span(en.events)
	fromB, toB := span(enB.events)
	if fromA.IsZero() || fromB.IsZero() || toA.IsZero() || toB.IsZero() {
		t.Fatalf("missing lock/done events: A %v-%v, B %v-%v", fromA, toA, fromB, toB)
	}
	first, second := "A", "B"
	firstLog, secondLog, secondEn := en.events, enB.events, enB
	firstSpec, secondSpec := specV3, specV4
	firstRes, secondRes := resA, resB
	if fromB.Before(fromA) {
		first, second = "B", "A"
		firstLog, secondLog, secondEn = enB.events, en.events, en
		firstSpec, secondSpec = specV4, specV3
		firstRes, secondRes = resB, resA
		fromA, toA, fromB, toB = fromB, toB, fromA, toA
	}
	_ = firstLog
	if !toA.Before(fromB) {
		t.Errorf("rollouts overlapped: %s held %v-%v, %s started at %v", first, fromA, toA, second, fromB)
	}
	if len(secondLog.find(func(ev Event) bool {
		return ev.Step == StepLock && ev.Status == StatusWaiting && strings.Contains(ev.Message, "run "+first)
	})) == 0 {
		t.Errorf("run %s did not wait naming run %s; its output:\n%s", second, first, secondEn.out.String())
	}

	// The later run noticed the earlier one's containers.
	if n := len(secondRes.Services[0].Foreign); n != 2 {
		t.Errorf("run %s reports %d foreign containers (%v), want 2 (one per host)", second, n, secondRes.Services[0].Foreign)
	}
	for _, fc := range secondRes.Services[0].Foreign {
		if fc.Version != firstSpec.Version() || fc.Container != containerName("web", "web", firstSpec.Version()) {
			t.Errorf("foreign container %+v, want %s's", fc, first)
		}
	}
	if n := len(firstRes.Services[0].Foreign); n != 0 {
		t.Errorf("run %s (first, on empty servers) reports foreign containers %v", first, firstRes.Services[0].Foreign)
	}

	// One version runs everywhere: the later one; the earlier one's
	// containers are stopped.
	want := map[string]string{specV3.Version(): "v3", specV4.Version(): "v4"}[secondSpec.Version()]
	for _, s := range en.bed.Servers {
		if v := get(t, s.HTTPAddr); v != want {
			t.Errorf("%s serves %s, want %s", s.Name, v, want)
		}
		ps := strings.TrimSpace(s.Exec(t, "docker", "ps", "--filter", "label=bosun.service=web", "--format", "{{.Names}}"))
		if ps != containerName("web", "web", secondSpec.Version()) {
			t.Errorf("running on %s: %q, want only %s", s.Name, ps, containerName("web", "web", secondSpec.Version()))
		}
		if vs := strings.TrimSpace(s.Exec(t, "docker", "volume", "ls", "-q", "--filter", "label=bosun.lock.service")); vs != "" {
			t.Errorf("lock left on %s: %s", s.Name, vs)
		}
	}
	// Each store records what its run did.
	for _, s := range en.bed.Servers {
		if v := en.appliedVersion("web", "web", s.Name); v != specV3.Version() {
			t.Errorf("store A: %s applied %q, want v3 %s", s.Name, v, specV3.Version())
		}
		if v := enB.appliedVersion("web", "web", s.Name); v != specV4.Version() {
			t.Errorf("store B: %s applied %q, want v4 %s", s.Name, v, specV4.Version())
		}
	}
}

// TestServerLock: the lock on a service's primary host. Another store's
// run waits for it and gives up after LockWait, naming the holder and how
// to remove a stale lock; the same store takes its own lock again (as after
// its own crashed run); unlocking removes it, and the other store gets it.
func TestServerLock(t *testing.T) {
	en := newBedEnv(t, 1)
	stB, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/b.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stB.Close() })
	enB := &bedEnv{t: t, bed: en.bed, store: stB, hosts: en.hosts, names: en.names}
	exA := en.newExecutor(func(c *Config) { c.Owner = "run A" })
	exB := enB.newExecutor(func(c *Config) { c.Owner = "run B" })
	spec := webSpec("registry.invalid/web:v1")
	pol := planner.Service{Name: "web", Roles: []string{"web"}, PrimaryRole: "web"}
	pl := en.plan(spec, pol)
	s := en.bed.Servers[0]
	vol, err := lockVolumeName("web")
	if err != nil {
		t.Fatal(err)
	}

	unlockA, err := exA.serverLock(t.Context(), pl, pol, pl.Changes, ApplyOpts{})
	if err != nil {
		t.Fatal(err)
	}
	idA, _ := exA.storeID(t.Context())
	labels := s.Exec(t, "docker", "volume", "inspect", "--format", "{{json .Labels}}", vol)
	if !strings.Contains(labels, `"bosun.lock.owner":"run A"`) || !strings.Contains(labels, `"bosun.lock.store":"`+idA+`"`) {
		t.Errorf("lock volume labels = %s", labels)
	}

	start := time.Now()
	_, err = exB.serverLock(t.Context(), pl, pol, pl.Changes, ApplyOpts{LockWait: 700 * time.Millisecond})
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "run A") || !strings.Contains(err.Error(), "docker volume rm "+vol) {
		t.Fatalf("other store: err = %v, want ErrLockTimeout naming run A and the way out", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("other store gave up after %v, before LockWait", d)
	}
	if len(enB.events.find(func(ev Event) bool {
		return ev.Step == StepLock && ev.Status == StatusWaiting && strings.Contains(ev.Message, "run A") && ev.Host == s.Name
	})) == 0 {
		t.Error("no lock-waiting event naming run A and the host")
	}
	// The other store's attempts changed nothing.
	if got := s.Exec(t, "docker", "volume", "inspect", "--format", "{{json .Labels}}", vol); got != labels {
		t.Errorf("labels changed by the other store: %s, was %s", got, labels)
	}

	// The same store again (another executor on store A: a new run after
	// a crashed one) takes it at once.
	exA2 := en.newExecutor(func(c *Config) { c.Owner = "run A2" })
	unlockA2, err := exA2.serverLock(t.Context(), pl, pol, pl.Changes, ApplyOpts{LockWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("same store: %v", err)
	}
	unlockA2()
	unlockA() // already gone: no harm
	if vs := strings.TrimSpace(s.Exec(t, "docker", "volume", "ls", "-q", "--filter", "name="+vol)); vs != "" {
		t.Errorf("lock volume left after unlock: %s", vs)
	}
	unlockB, err := exB.serverLock(t.Context(), pl, pol, pl.Changes, ApplyOpts{LockWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("other store after release: %v", err)
	}
	unlockB()
}

func TestLockVolumeName(t *testing.T) {
	if n, err := lockVolumeName("web"); n != "bosun-lock-web" || err != nil {
		t.Errorf("name = %q, %v", n, err)
	}
	for _, bad := range []string{"", "Web", "a/b", "-x", "a b", "a\x00", strings.Repeat("a", 64)} {
		if _, err := lockVolumeName(bad); err == nil {
			t.Errorf("service %q accepted", bad)
		}
	}
}
