package executor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// TestApply_Standby walks a proxied role with x-bosun.standby: paused
// through deploys and reverts on two real test servers; the subtests run
// in order, each from the state the previous one left.
func TestApply_Standby(t *testing.T) {
	en := newBedEnv(t, 2)
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	v1 := webSpec(en.bed.PushApp(t, "web", "v1", testbed.AppOK))
	v2 := webSpec(en.bed.PushApp(t, "web", "v2", testbed.AppOK))
	v3 := webSpec(en.bed.PushApp(t, "web", "v3", testbed.AppOK))
	pol := planner.Service{RetainContainers: 3, Standby: planner.StandbyPaused}
	cname := func(s *planner.Spec) string { return containerName("web", "web", s.Version()) }
	// state is a container's status and restart policy, "-" when it is gone.
	state := func(t *testing.T, s *testbed.Server, spec *planner.Spec) string {
		t.Helper()
		out, err := s.Run(t.Context(), "docker", "inspect", "-f", "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}", cname(spec))
		if err != nil {
			return "-"
		}
		return strings.TrimSpace(out)
	}
	expect := func(t *testing.T, what string, want map[*planner.Spec]string) {
		t.Helper()
		for _, s := range en.bed.Servers {
			for spec, w := range want {
				if got := state(t, s, spec); got != w {
					t.Errorf("%s: %s on %s is %q, want %q", what, cname(spec), s.Name, got, w)
				}
			}
		}
	}
	// answers reports whether the container answers /up from its server,
	// bypassing the proxy; a paused one accepts the connection but never
	// answers.
	answers := func(t *testing.T, s *testbed.Server, spec *planner.Spec) bool {
		t.Helper()
		ip := strings.TrimSpace(s.Exec(t, "docker", "inspect", "-f", "{{.NetworkSettings.Networks.bosun.IPAddress}}", cname(spec)))
		_, err := s.Run(t.Context(), "curl", "-sf", "-m", "1", "http://"+ip+"/up")
		return err == nil
	}

	t.Run("v2 over v1 pauses v1 with restart policy no", func(t *testing.T) {
		en.mustApply(en.plan(v1, pol))
		en.mustApply(en.plan(v2, pol))
		expect(t, "after v2", map[*planner.Spec]string{v1: "paused no", v2: "running unless-stopped"})
		for _, s := range en.bed.Servers {
			for range 3 {
				if v := get(t, s.HTTPAddr); v != "v2" {
					t.Errorf("%s serves %s, want v2", s.Name, v)
				}
			}
			if answers(t, s, v1) {
				t.Errorf("paused %s on %s answered a request", cname(v1), s.Name)
			}
		}
		st, err := en.ex.Status(t.Context(), []planner.Host{en.hosts[s1.Name], en.hosts[s2.Name]}, false)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range st {
			got[c.Container+"@"+c.Host] = c.State
		}
		for _, h := range en.names {
			if got[cname(v1)+"@"+h] != "paused" || got[cname(v2)+"@"+h] != "running" {
				t.Errorf("status on %s: %v, want %s paused and %s running", h, got, cname(v1), cname(v2))
			}
		}
	})

	t.Run("revert to v1 under load unpauses it and pauses v2", func(t *testing.T) {
		since := time.Now()
		l := startLoad(t, en.httpAddrs(), "v1", "v2")
		time.Sleep(200 * time.Millisecond)
		en.mustApply(en.plan(v1, pol))
		l.expectOnly("v1")
		time.Sleep(200 * time.Millisecond)
		l.check(t)
		expect(t, "after the revert", map[*planner.Spec]string{v1: "running unless-stopped", v2: "paused no"})
		for _, s := range en.bed.Servers {
			if n := containerEvents(t, s, since, "type=container", "event=start", "label=bosun.service=web"); n != 0 {
				t.Errorf("%d containers started on %s, want v1 unpaused", n, s.Name)
			}
			if n := containerEvents(t, s, since, "type=container", "event=unpause", "container="+cname(v1)); n != 1 {
				t.Errorf("%s unpaused %d times on %s, want once", cname(v1), n, s.Name)
			}
			if n := containerEvents(t, s, since, "type=image", "event=pull"); n != 0 {
				t.Errorf("%d pulls on %s", n, s.Name)
			}
			if !answers(t, s, v1) || answers(t, s, v2) {
				t.Errorf("on %s: %s answers %v, paused %s answers %v", s.Name, cname(v1), answers(t, s, v1), cname(v2), answers(t, s, v2))
			}
		}
		skipped := en.events.find(func(ev Event) bool {
			return ev.Step == StepPull && ev.Status == StatusSkipped && ev.Message == "paused standby "+cname(v1) && ev.Time.After(since)
		})
		unpaused := en.events.find(func(ev Event) bool {
			return ev.Step == StepStart && ev.Status == StatusOK && ev.Message == "unpaused" && ev.Time.After(since)
		})
		if len(skipped) != 2 || len(unpaused) != 2 {
			t.Errorf("events: %d pull-skipped-paused-standby, %d start-unpaused; want 2 each", len(skipped), len(unpaused))
		}
	})

	t.Run("a third version stops the old standby and pauses the one that served", func(t *testing.T) {
		en.mustApply(en.plan(v3, pol))
		expect(t, "after v3", map[*planner.Spec]string{v1: "paused no", v2: "exited no", v3: "running unless-stopped"})
	})

	t.Run("back to a stopped former standby restores its restart policy", func(t *testing.T) {
		en.mustApply(en.plan(v2, pol))
		expect(t, "after v2 again", map[*planner.Spec]string{v1: "exited no", v2: "running unless-stopped", v3: "paused no"})
		for _, s := range en.bed.Servers {
			if v := get(t, s.HTTPAddr); v != "v2" {
				t.Errorf("%s serves %s, want v2", s.Name, v)
			}
		}
	})

	t.Run("prune never removes the paused standby", func(t *testing.T) {
		// Retention 1 with only the serving container kept by name: the
		// paused v3 is the retained version, so every stopped one goes.
		hc, err := en.ex.host(en.hosts[s1.Name])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := prune(t.Context(), hc.docker, "web", "web", []string{cname(v2)}, 1); err != nil {
			t.Fatalf("prune: %v", err)
		}
		if got := state(t, s1, v3); got != "paused no" {
			t.Errorf("after prune %s is %q, want paused", cname(v3), got)
		}
		if got := state(t, s1, v1); got != "-" {
			t.Errorf("after prune the stopped %s is %q, want removed", cname(v1), got)
		}
	})

	t.Run("a failed second host puts the first back on its paused standby", func(t *testing.T) {
		// A fresh executor has no connection to server-2 yet; one host per
		// batch, and server-2's sshd stops once server-1 has switched.
		ex := en.newExecutor(nil)
		stopped := false
		en.events.setOn(func(ev Event) {
			if ev.Host == s1.Name && ev.Step == StepSwitch && ev.Status == StatusOK && !stopped {
				stopped = true
				s2.StopSSH(t)
			}
		})
		defer func() { en.events.setOn(nil); s2.StartSSH(t) }()
		v4 := webSpec(en.bed.PushApp(t, "web", "v4", testbed.AppOK))
		l := startLoad(t, []string{s1.HTTPAddr}, "v2", "v4")
		since := time.Now()
		_, err := ex.Apply(t.Context(), en.plan(v4, planner.Service{BootLimit: 1, RetainContainers: 3, Standby: planner.StandbyPaused}), ApplyOpts{})
		l.expectOnly("v2")
		time.Sleep(100 * time.Millisecond)
		l.check(t)
		var re *RolloutError
		if !errors.As(err, &re) || len(re.RolledBack) != 1 || !strings.Contains(re.RolledBack[0], s1.Name) {
			t.Fatalf("err = %v, want %s rolled back", err, s1.Name)
		}
		if got := state(t, s1, v2); got != "running unless-stopped" {
			t.Errorf("after the undo %s on %s is %q, want running unless-stopped", cname(v2), s1.Name, got)
		}
		if n := containerEvents(t, s1, since, "type=container", "event=unpause", "container="+cname(v2)); n != 1 {
			t.Errorf("%s unpaused %d times on %s, want once (by the undo)", cname(v2), n, s1.Name)
		}
		if got := state(t, s1, v4); got != "exited unless-stopped" {
			t.Errorf("after the undo %s on %s is %q, want exited", cname(v4), s1.Name, got)
		}
		if v := get(t, s1.HTTPAddr); v != "v2" {
			t.Errorf("%s serves %s after the undo, want v2", s1.Name, v)
		}
	})

	t.Run("standby stopped stops a leftover paused standby", func(t *testing.T) {
		off := planner.Service{RetainContainers: 3, Standby: planner.StandbyStopped}
		en.mustApply(en.plan(v1, off))
		for _, s := range en.bed.Servers {
			// server-2 kept v3 paused: server-1's last rollout was undone.
			if ps := s.Exec(t, "docker", "ps", "--filter", "label=bosun.service=web", "--filter", "status=paused", "--format", "{{.Names}}"); strings.TrimSpace(ps) != "" {
				t.Errorf("paused web containers on %s after a rollout with standby stopped: %s", s.Name, ps)
			}
		}
		en.mustApply(en.plan(v3, off))
		for _, s := range en.bed.Servers {
			ps := s.Exec(t, "docker", "ps", "--filter", "label=bosun.service=web", "--format", "{{.Names}} {{.State}}")
			if strings.TrimSpace(ps) != cname(v3)+" running" {
				t.Errorf("web containers up on %s:\n%s\nwant only %s running", s.Name, ps, cname(v3))
			}
		}
	})

	t.Run("unproxied and stateful roles are never paused", func(t *testing.T) {
		worker := func(gen string) *planner.Spec {
			return &planner.Spec{
				Service: "jobs", Role: "worker", Image: v1.Image, Env: map[string]string{"GEN": gen},
				ReadinessDelay: planner.Duration(300 * time.Millisecond), DeployTimeout: planner.Duration(10 * time.Second),
			}
		}
		db := func(gen string) *planner.Spec {
			s := worker(gen)
			s.Service, s.Role, s.Stateful = "db", "primary", true
			s.Volumes = []planner.Volume{{Source: "/srv/db-data", Target: "/data"}}
			return s
		}
		for _, mk := range []func(string) *planner.Spec{worker, db} {
			a, b := mk("1"), mk("2")
			en.mustApply(en.plan(a, pol, s1.Name))
			pl := en.plan(b, pol, s1.Name)
			pl.Changes[0].Disruptive = b.Stateful
			en.mustApply(pl)
			ps := strings.TrimSpace(s1.Exec(t, "docker", "ps", "-a", "--filter", "label=bosun.service="+a.Service, "--format", "{{.Names}} {{.State}}"))
			want := containerName(a.Service, a.Role, b.Version()) + " running\n" + containerName(a.Service, a.Role, a.Version()) + " exited"
			if ps != want {
				t.Errorf("%s containers:\n%s\nwant\n%s", a.Service, ps, want)
			}
		}
	})
}
