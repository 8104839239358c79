package executor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// kamalServer is a test server set up as Kamal leaves one: network kamal,
// an accessory shop-db with its data in ~/shop-db/data, the app's web
// container, and kamal-proxy (a stand-in named and labelled as Kamal's)
// on ports 80/443 routing to it.
type kamalServer struct {
	s             *testbed.Server
	app, acc, job string // Kamal's container names (job: "" when none)
}

func setupKamal(t testing.TB, en *bedEnv, s *testbed.Server) kamalServer {
	t.Helper()
	return setupKamalAs(t, en, s, "", false)
}

// setupKamalAs is setupKamal for Kamal destination dest ("": none), with
// an unproxied role job (Kamal's `proxy: false`) beside web when job is set.
func setupKamalAs(t testing.TB, en *bedEnv, s *testbed.Server, dest string, job bool) kamalServer {
	t.Helper()
	kp := en.bed.PushKamalProxy(t)
	appRef := en.bed.PushApp(t, "shop", "kamal1", testbed.AppOK)
	dbRef := en.bed.PushApp(t, "shop-db", "kamaldb", testbed.AppOK)
	infix := ""
	if dest != "" {
		infix = "-" + dest
	}
	ks := kamalServer{s: s, app: "shop-web" + infix + "-0123456789abcdef", acc: "shop-db"}
	s.Exec(t, "sh", "-c", "docker network inspect kamal >/dev/null 2>&1 || docker network create kamal")
	s.Exec(t, "sh", "-c", "mkdir -p /root/shop-db/data && echo kamal-data > /root/shop-db/data/kamal-file")
	s.Exec(t, "docker", "run", "-d", "--name", ks.acc, "--network", "kamal", "--label", "service=shop-db",
		"--restart", "unless-stopped", "-v", "/root/shop-db/data:/data", dbRef)
	s.Exec(t, "docker", "run", "-d", "--name", ks.app, "--network", "kamal", "--label", "service=shop", "--label", "role=web",
		"--label", "destination="+dest, "--restart", "unless-stopped", appRef)
	if job {
		ks.job = "shop-job" + infix + "-0123456789abcdef"
		s.Exec(t, "docker", "run", "-d", "--name", ks.job, "--network", "kamal", "--label", "service=shop", "--label", "role=job",
			"--label", "destination="+dest, "--restart", "unless-stopped", appRef)
	}
	s.Exec(t, "docker", "run", "-d", "--name", KamalProxyContainer, "--network", "kamal", "-p", "80:80", "-p", "443:443",
		"-v", "kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy", "--restart", "unless-stopped",
		"-e", "PROXY_TO=http://"+ks.app+":80", kp)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := tryGet(s.HTTPAddr, "")
		if err == nil && v == "kamal1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kamal's stand-in does not serve kamal1: %q, %v", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ks
}

// state is a container's state on the server, "" when it is gone.
func (ks kamalServer) state(t testing.TB, name string) string {
	out, err := ks.s.Run(context.Background(), "docker", "inspect", "--format", "{{.State.Status}}", name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// takeoverSpecs are the bosun services of the Kamal app: web (proxied) and
// the accessory db, whose relative directory is Kamal's ~/shop-db/data.
func takeoverSpecs(en *bedEnv, webVersion string) (web, db *planner.Spec) {
	web = webSpec(en.bed.PushApp(en.t, "shop", webVersion, testbed.AppOK))
	web.Service = "shop"
	db = &planner.Spec{
		Service: "shop-db", Role: planner.AccessoryRole, Image: en.bed.PushApp(en.t, "shop-db", "db1", testbed.AppOK),
		Env:      map[string]string{"WRITE_FILE": "/data/marker"},
		Volumes:  []planner.Volume{{Source: planner.HomePrefix + "shop-db/data", Target: "/data"}},
		Stateful: true, DeployTimeout: planner.Duration(10 * time.Second), DrainTimeout: planner.Duration(time.Second),
		ReadinessDelay: planner.Duration(300 * time.Millisecond),
	}
	return web, db
}

// mergePlans puts several one-service plans into one.
func mergePlans(pls ...*planner.Plan) *planner.Plan {
	out := pls[0]
	for _, pl := range pls[1:] {
		out.Changes = append(out.Changes, pl.Changes...)
		out.Services = append(out.Services, pl.Services...)
		for h, c := range pl.Hosts {
			out.Hosts[h] = c
		}
	}
	sort.SliceStable(out.Changes, func(i, j int) bool { return out.Changes[i].Service < out.Changes[j].Service })
	return out
}

// gapProbe sends requests without pause to one address, each on a fresh
// connection, and records when each was answered and by which version.
type gapProbe struct {
	mu    sync.Mutex
	reqs  []probeReq
	stop  chan struct{}
	wg    sync.WaitGroup
	addr  string
	conns int
}

type probeReq struct {
	start, end time.Time
	version    string // "" on failure
	err        string
}

func startGapProbe(addr string, workers int) *gapProbe {
	p := &gapProbe{stop: make(chan struct{}), addr: addr, conns: workers}
	for range workers {
		p.wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-p.stop:
					return
				default:
				}
				r := probeReq{start: time.Now()}
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if f := strings.Fields(string(b)); resp.StatusCode == 200 && len(f) > 0 {
						r.version = f[0]
					} else {
						r.err = fmt.Sprintf("%s %s", resp.Status, b)
					}
				} else {
					r.err = err.Error()
				}
				r.end = time.Now()
				p.mu.Lock()
				p.reqs = append(p.reqs, r)
				p.mu.Unlock()
				if r.version == "" {
					time.Sleep(2 * time.Millisecond) // a closed port answers at once
				}
			}
		})
	}
	return p
}

// gapResult is what a probe saw around a takeover.
type gapResult struct {
	total, failed, outside int
	lastOld, firstNew      time.Time
	gap                    time.Duration // from the last answer of old to the first of new
	bad                    []string
}

// finish stops the probe and measures the listener gap between the last
// answer of version old and the first of version new. A failure counts as
// outside the gap unless it was under way at or after downFrom (when the
// old proxy was told to stop: it closes its listeners then, and a request
// still on its way to them fails) and started before the first answer of
// new; an answer of old after one of new counts too.
func (p *gapProbe) finish(old, new string, downFrom time.Time) gapResult {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var g gapResult
	g.total = len(p.reqs)
	for _, r := range p.reqs {
		switch r.version {
		case old:
			if r.end.After(g.lastOld) {
				g.lastOld = r.end
			}
		case new:
			if g.firstNew.IsZero() || r.end.Before(g.firstNew) {
				g.firstNew = r.end
			}
		}
	}
	if !g.lastOld.IsZero() && !g.firstNew.IsZero() && g.firstNew.After(g.lastOld) {
		g.gap = g.firstNew.Sub(g.lastOld)
	}
	for _, r := range p.reqs {
		switch {
		case r.version == old && !g.firstNew.IsZero() && r.start.After(g.firstNew):
			g.outside++
			g.bad = append(g.bad, "answered by "+old+" after "+new+" had answered")
		case r.version == old || r.version == new:
		default:
			g.failed++
			// Within the gap: it overlaps the time between the last old
			// answer and the first new one.
			if downFrom.IsZero() || g.firstNew.IsZero() || r.end.Before(downFrom) || r.start.After(g.firstNew) {
				g.outside++
				if len(g.bad) < 10 {
					g.bad = append(g.bad, fmt.Sprintf("at %s: %s%s", r.start.Format("15:04:05.000"), r.version, r.err))
				}
			}
		}
	}
	return g
}

// TestApply_KamalTakeover takes a server over from Kamal under a request
// load: bosun's containers are health-checked first, then kamal-proxy's
// ports move to bosun-proxy; no request fails outside the measured gap,
// the accessory's data stays in Kamal's directory, and Kamal's containers
// are stopped but kept, then removed with RemoveKamal.
func TestApply_KamalTakeover(t *testing.T) {
	en := newBedEnv(t, 1)
	s := en.bed.Servers[0]
	ks := setupKamal(t, en, s)
	web, db := takeoverSpecs(en, "b1")
	plan := func() *planner.Plan {
		return mergePlans(en.plan(web, planner.Service{}), en.plan(db, planner.Service{}))
	}

	t.Run("ambiguous", func(t *testing.T) {
		// A Kamal app this plan does not deploy, behind the same kamal-proxy.
		blog := en.bed.PushApp(t, "blog", "k1", testbed.AppOK)
		s.Exec(t, "docker", "run", "-d", "--name", "blog-web-abc", "--network", "kamal", "--label", "service=blog", "--label", "role=web", "--label", "destination=", blog)
		defer s.Exec(t, "docker", "rm", "-f", "blog-web-abc")
		_, err := en.ex.Apply(t.Context(), plan(), ApplyOpts{Trigger: "test"})
		if err == nil || !strings.Contains(err.Error(), "takeover from Kamal refused") || !strings.Contains(err.Error(), "blog/web in blog-web-abc") {
			t.Fatalf("apply = %v, want a refusal naming blog/web", err)
		}
		if st := ks.state(t, KamalProxyContainer); st != "running" {
			t.Errorf("kamal-proxy is %q after a refusal, want running", st)
		}
		if st := ks.state(t, ProxyContainer); st != "" {
			t.Errorf("bosun-proxy exists (%s) after a refusal", st)
		}
		if st := ks.state(t, ks.acc); st != "running" {
			t.Errorf("Kamal's accessory is %q after a refusal, want running", st)
		}
	})

	probe := startGapProbe(s.HTTPAddr, 4)
	time.Sleep(300 * time.Millisecond)
	res, err := en.ex.Apply(t.Context(), plan(), ApplyOpts{Trigger: "test"})
	if err != nil {
		probe.finish("kamal1", "b1", time.Time{})
		t.Fatalf("apply: %v\noutput:\n%s", err, en.out.String())
	}
	time.Sleep(500 * time.Millisecond)
	if len(res.Takeovers) != 1 || !res.Takeovers[0].PortsMoved {
		probe.finish("kamal1", "b1", time.Time{})
		t.Fatalf("takeovers = %+v, want the ports moved on %s", res.Takeovers, s.Name)
	}
	g := probe.finish("kamal1", "b1", res.Takeovers[0].ProxyStop)
	t.Logf("takeover under load: %d requests, %d failed, listener gap %s (last kamal-proxy answer %s, first bosun-proxy answer %s)",
		g.total, g.failed, g.gap, g.lastOld.Format("15:04:05.000"), g.firstNew.Format("15:04:05.000"))
	if g.lastOld.IsZero() || g.firstNew.IsZero() {
		t.Fatalf("the probe saw no answer from kamal1 or b1 (%d requests)", g.total)
	}
	if g.outside > 0 {
		t.Errorf("%d requests failed outside the listener gap: %s", g.outside, strings.Join(g.bad, "; "))
	}
	if got := get(t, s.HTTPAddr); got != "b1" {
		t.Errorf("after the takeover port 80 answers %s, want b1", got)
	}
	t.Logf("executor: ports moved in %s", res.Takeovers[0].Switch)
	// The takeover is announced before anything changes, naming what it found.
	ann := en.events.find(func(ev Event) bool { return ev.Step == StepTakeover && ev.Status == StatusStarted })
	if len(ann) != 1 || !strings.Contains(ann[0].Message, "kamal-proxy ("+en.bed.Registry+"/"+testbed.KamalProxyImage+", running)") || !strings.Contains(ann[0].Message, ks.app+" (running)") {
		t.Errorf("takeover announcement = %+v", ann)
	}
	// Health-checked before the move: the route was switched while
	// kamal-proxy still held the ports.
	for _, name := range []string{KamalProxyContainer, ks.app, ks.acc} {
		if st := ks.state(t, name); st != "exited" {
			t.Errorf("Kamal's %s is %q, want stopped and kept (exited)", name, st)
		}
	}
	if out := strings.TrimSpace(s.Exec(t, "cat", "/root/shop-db/data/kamal-file")); out != "kamal-data" {
		t.Errorf("Kamal's accessory data = %q, want kamal-data", out)
	}
	if out := strings.TrimSpace(s.Exec(t, "cat", "/root/shop-db/data/marker")); out != "db1" {
		t.Errorf("bosun's accessory did not write into Kamal's directory: marker = %q", out)
	}
	if pub := s.Exec(t, "docker", "inspect", "--format", `{{index .Config.Labels "bosun.proxy.publish"}} {{json .HostConfig.PortBindings}}`, ProxyContainer); strings.HasPrefix(pub, "none") || !strings.Contains(pub, `"80/tcp"`) {
		t.Errorf("bosun-proxy after the takeover: %s, want it publishing 80", pub)
	}

	t.Run("remove-kamal", func(t *testing.T) {
		pl := plan()
		if !pl.Empty() {
			t.Fatalf("the second plan changes something: %+v", pl.Changes)
		}
		res, err := en.ex.Apply(t.Context(), pl, ApplyOpts{Trigger: "test", RemoveKamal: true})
		if err != nil {
			t.Fatalf("apply --remove-kamal: %v\noutput:\n%s", err, en.out.String())
		}
		for _, name := range []string{KamalProxyContainer, ks.app, ks.acc} {
			if st := ks.state(t, name); st != "" {
				t.Errorf("Kamal's %s is still there (%s) after RemoveKamal", name, st)
			}
		}
		if len(res.Takeovers) != 1 || len(res.Takeovers[0].Removed) != 3 {
			t.Errorf("takeovers = %+v, want 3 removed", res.Takeovers)
		}
		if out := strings.TrimSpace(s.Exec(t, "cat", "/root/shop-db/data/kamal-file")); out != "kamal-data" {
			t.Errorf("Kamal's accessory data after RemoveKamal = %q, want kamal-data", out)
		}
		if _, err := s.Run(t.Context(), "docker", "volume", "inspect", "kamal-proxy-config"); err != nil {
			t.Errorf("kamal-proxy's volume was removed: %v", err)
		}
		if got := get(t, s.HTTPAddr); got != "b1" {
			t.Errorf("after RemoveKamal port 80 answers %s, want b1", got)
		}
	})
}

// resetKamal removes what a takeover left on the server (bosun's
// containers, proxy and its volume; Kamal's containers and data), so that
// setupKamal can lay out a Kamal server again.
func resetKamal(t testing.TB, s *testbed.Server) {
	t.Helper()
	s.Exec(t, "sh", "-c", "docker rm -f kamal-proxy shop-web-0123456789abcdef shop-db bosun-proxy >/dev/null 2>&1; "+
		"ids=$(docker ps -aq --filter label=bosun.service); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null; "+
		"docker volume rm bosun-proxy >/dev/null 2>&1; rm -rf /root/shop-db; true")
}

// BenchmarkTakeover_listenerGap measures the listener gap of a takeover
// from Kamal on port 80: the time from the last answer by kamal-proxy to
// the first by bosun-proxy, seen by 4 clients sending requests without
// pause, each on a fresh connection. Each iteration lays out a Kamal
// server again (not timed) and takes it over with a fresh state store.
// Reported: the gap's median, min and max over the iterations, and the
// executor's own measure (kamal-proxy told to stop until Docker published
// bosun-proxy's ports). Run it with -benchtime=5x or more.
func BenchmarkTakeover_listenerGap(b *testing.B) {
	en := newBedEnv(b, 1)
	s := en.bed.Servers[0]
	web := webSpec(en.bed.PushApp(b, "shop", "b1", testbed.AppOK))
	web.Service = "shop"
	var gaps, switches []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		resetKamal(b, s)
		setupKamal(b, en, s)
		st, err := state.Open(b.Context(), "sqlite:///"+b.TempDir()+"/s.db")
		if err != nil {
			b.Fatal(err)
		}
		en.store = st
		ex := en.newExecutor(func(c *Config) { c.Logger = slog.New(slog.DiscardHandler); c.Progress = nil })
		pl := en.plan(web, planner.Service{})
		probe := startGapProbe(s.HTTPAddr, 4)
		time.Sleep(200 * time.Millisecond)
		b.StartTimer()
		res, err := ex.Apply(b.Context(), pl, ApplyOpts{Trigger: "bench"})
		b.StopTimer()
		time.Sleep(300 * time.Millisecond)
		if err != nil || len(res.Takeovers) != 1 || !res.Takeovers[0].PortsMoved {
			probe.finish("kamal1", "b1", time.Time{})
			b.Fatalf("takeover %d: %v, %+v", i, err, res.Takeovers)
		}
		g := probe.finish("kamal1", "b1", res.Takeovers[0].ProxyStop)
		if g.outside > 0 {
			b.Errorf("takeover %d: %d requests failed outside the gap: %s", i, g.outside, strings.Join(g.bad, "; "))
		}
		gaps = append(gaps, g.gap)
		switches = append(switches, res.Takeovers[0].Switch)
		b.Logf("takeover %d: gap %s (%d requests, %d failed), executor %s", i, g.gap, g.total, g.failed, res.Takeovers[0].Switch)
		_ = st.Close()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	sort.Slice(switches, func(i, j int) bool { return switches[i] < switches[j] })
	b.ReportMetric(ms(gaps[len(gaps)/2]), "gap-median-ms")
	b.ReportMetric(ms(gaps[0]), "gap-min-ms")
	b.ReportMetric(ms(gaps[len(gaps)-1]), "gap-max-ms")
	b.ReportMetric(ms(switches[len(switches)/2]), "executor-median-ms")
}

// TestApply_KamalTakeoverTwoServers takes over two servers that Kamal
// manages with destination staging, where the service has an unproxied
// role (job, Kamal's `proxy: false`) beside web:
//   - another Kamal destination running behind kamal-proxy is refused;
//   - a rollout whose new containers fail their health check leaves Kamal
//     as it was on both servers: kamal-proxy serves throughout (no request
//     fails), every Kamal container runs, nothing is recorded applied;
//   - the next apply takes both over: no request fails outside each
//     server's listener gap, Kamal's web, job and kamal-proxy are stopped
//     and kept, bosun's job runs, and a stopped Kamal container of the
//     other destination is left alone.
func TestApply_KamalTakeoverTwoServers(t *testing.T) {
	en := newBedEnv(t, 2)
	kss := make([]kamalServer, 2)
	for i, s := range en.bed.Servers {
		kss[i] = setupKamalAs(t, en, s, "staging", true)
	}
	s1, s2 := en.bed.Servers[0], en.bed.Servers[1]
	withDest := func(pl *planner.Plan) *planner.Plan { pl.Destination = "staging"; return pl }
	job := &planner.Spec{
		Service: "shop", Role: "job", Image: en.bed.PushApp(t, "shop", "b1", testbed.AppOK),
		ReadinessDelay: planner.Duration(300 * time.Millisecond), DeployTimeout: planner.Duration(10 * time.Second),
		DrainTimeout: planner.Duration(time.Second),
	}
	// One service, two roles: web (proxied) and job.
	plan := func(web *planner.Spec) *planner.Plan {
		pol := planner.Service{Name: "shop", PrimaryRole: "web", Roles: []string{"web", "job"}}
		pl := en.plan(web, pol)
		pl.Changes = append(pl.Changes, en.plan(job, pol).Changes...)
		sort.SliceStable(pl.Changes, func(i, j int) bool { return pl.Changes[i].Role < pl.Changes[j].Role })
		return withDest(pl)
	}
	kamalRuns := func(t *testing.T, when string) {
		t.Helper()
		for _, ks := range kss {
			for _, name := range []string{KamalProxyContainer, ks.app, ks.job, ks.acc} {
				if st := ks.state(t, name); st != "running" {
					t.Errorf("%s %s: Kamal's %s is %q, want running (untouched)", when, ks.s.Name, name, st)
				}
			}
			if v, err := tryGet(ks.s.HTTPAddr, ""); err != nil || v != "kamal1" {
				t.Errorf("%s %s: port 80 answers %q (%v), want Kamal's kamal1", when, ks.s.Name, v, err)
			}
		}
	}

	t.Run("other destination refused", func(t *testing.T) {
		prodRef := en.bed.PushApp(t, "shop", "kamalprod", testbed.AppOK)
		s2.Exec(t, "docker", "run", "-d", "--name", "shop-web-production-0123456789abcdef", "--network", "kamal",
			"--label", "service=shop", "--label", "role=web", "--label", "destination=production", prodRef)
		defer s2.Exec(t, "docker", "rm", "-f", "shop-web-production-0123456789abcdef")
		web := webSpec(en.bed.PushApp(t, "shop", "b1", testbed.AppOK))
		web.Service = "shop"
		_, err := en.ex.Apply(t.Context(), plan(web), ApplyOpts{Trigger: "test"})
		if err == nil || !strings.Contains(err.Error(), "shop/web (destination production) in shop-web-production-0123456789abcdef") {
			t.Fatalf("apply = %v, want a refusal naming Kamal's production container", err)
		}
		kamalRuns(t, "after the refusal")
	})

	t.Run("new containers fail health", func(t *testing.T) {
		probes := []*gapProbe{startGapProbe(s1.HTTPAddr, 2), startGapProbe(s2.HTTPAddr, 2)}
		bad := webSpec(en.bed.PushApp(t, "shop", "sick1", testbed.AppUnhealthy))
		bad.Service = "shop"
		res, err := en.ex.Apply(t.Context(), plan(bad), ApplyOpts{Trigger: "test"})
		for i, p := range probes {
			g := p.finish("kamal1", "sick1", time.Time{})
			if g.failed > 0 || !g.firstNew.IsZero() {
				t.Errorf("%s during the failed takeover: %d of %d requests failed (%s), bosun's answered: %v", en.bed.Servers[i].Name, g.failed, g.total, strings.Join(g.bad, "; "), !g.firstNew.IsZero())
			}
		}
		if err == nil {
			t.Fatalf("apply of an unhealthy web succeeded: %+v", res)
		}
		for _, tk := range res.Takeovers {
			if tk.PortsMoved {
				t.Errorf("ports moved on %s although web failed there", tk.Host)
			}
		}
		kamalRuns(t, "after the failed takeover")
		for _, s := range en.bed.Servers {
			if _, ok := en.appliedRecord("shop", "web", s.Name); ok {
				t.Errorf("shop/web is recorded applied on %s, which kamal-proxy still serves", s.Name)
			}
			if pub := s.Exec(t, "docker", "inspect", "--format", `{{index .Config.Labels "bosun.proxy.publish"}}`, ProxyContainer); strings.TrimSpace(pub) != "none" {
				t.Errorf("%s: bosun-proxy publishes ports (%q) after a failed takeover", s.Name, pub)
			}
		}
	})

	t.Run("takeover", func(t *testing.T) {
		// A stopped container of Kamal's production destination: not this plan's.
		prodRef := en.bed.PushApp(t, "shop", "kamalprod", testbed.AppOK)
		s1.Exec(t, "docker", "create", "--name", "shop-web-production-0123456789abcdef", "--network", "kamal",
			"--label", "service=shop", "--label", "role=web", "--label", "destination=production", prodRef)
		probes := []*gapProbe{startGapProbe(s1.HTTPAddr, 2), startGapProbe(s2.HTTPAddr, 2)}
		time.Sleep(200 * time.Millisecond)
		web := webSpec(en.bed.PushApp(t, "shop", "b1", testbed.AppOK))
		web.Service = "shop"
		res, err := en.ex.Apply(t.Context(), plan(web), ApplyOpts{Trigger: "test"})
		time.Sleep(500 * time.Millisecond)
		stops := map[string]time.Time{}
		switches := map[string]time.Duration{}
		if err == nil {
			for _, tk := range res.Takeovers {
				if tk.PortsMoved {
					stops[tk.Host], switches[tk.Host] = tk.ProxyStop, tk.Switch
				}
			}
		}
		for i, p := range probes {
			s := en.bed.Servers[i]
			g := p.finish("kamal1", "b1", stops[s.Name])
			t.Logf("%s: %d requests, %d failed, listener gap %s, executor %s", s.Name, g.total, g.failed, g.gap, switches[s.Name])
			if g.outside > 0 {
				t.Errorf("%s: %d requests failed outside the listener gap: %s", s.Name, g.outside, strings.Join(g.bad, "; "))
			}
		}
		if err != nil {
			t.Fatalf("apply: %v\noutput:\n%s", err, en.out.String())
		}
		if len(stops) != 2 {
			t.Fatalf("takeovers = %+v, want the ports moved on both servers", res.Takeovers)
		}
		for _, ks := range kss {
			if got := get(t, ks.s.HTTPAddr); got != "b1" {
				t.Errorf("%s: port 80 answers %s after the takeover, want b1", ks.s.Name, got)
			}
			for _, name := range []string{KamalProxyContainer, ks.app, ks.job} {
				if st := ks.state(t, name); st != "exited" {
					t.Errorf("%s: Kamal's %s is %q, want stopped and kept", ks.s.Name, name, st)
				}
			}
			if st := ks.state(t, ks.acc); st != "running" {
				t.Errorf("%s: Kamal's accessory %s is %q: this plan does not deploy it, so it runs on", ks.s.Name, ks.acc, st)
			}
			ids := strings.Fields(ks.s.Exec(t, "docker", "ps", "-q", "--filter", "label="+LabelService+"=shop", "--filter", "label="+LabelRole+"=job"))
			if len(ids) != 1 {
				t.Errorf("%s: %d running bosun job containers, want 1", ks.s.Name, len(ids))
			}
		}
		if st := kss[0].state(t, "shop-web-production-0123456789abcdef"); st != "created" {
			t.Errorf("Kamal's production container is %q, want it left as it was (created)", st)
		}
	})
}
