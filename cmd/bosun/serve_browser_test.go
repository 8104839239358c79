package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/webhook"
)

// The dashboard in a real browser: Debian's chromium (installed by
// testbed.RequireChromium when the machine lacks it), driven by chromedp,
// against `bosun serve` on two test servers with the fake GitHub and its
// OAuth App (startDashboard). One bed, daemon and browser serve every
// subtest of TestBrowser; each subtest logs in as the role it needs in a
// browser context of its own (its own cookies), and leaves the service as
// it found it (released, serving).
//
// Every page a test visits is saved as a PNG in the screenshot folder:
// $BOSUN_SCREENSHOTS, or bosun-screenshots/TEST under the temporary folder
// (the test logs where). With -update, the fleet page and a live
// deployment page are also written to docs/img/, which docs/dashboard.md
// shows.

// browserBed is what the browser tests share.
type browserBed struct {
	*dashboardDaemon
	Bed     *testbed.Bed
	GH      *testbed.FakeGitHub
	RepoDir string
	// Images are the sample app's pushed references by version: v1, v2
	// (healthy).
	Images map[string]string

	// Serving is the version shop serves on both servers, as the
	// subtests leave it.
	Serving string

	forgeRepo string
	mu        sync.Mutex
	head      string // the last commit on master
	browser   context.Context
	shots     string          // screenshot folder
	cleaned   map[string]bool // subtests whose screenshot folder was emptied
}

// browserRoles are the users who log in through the fake GitHub, by role
// (see startDashboard's roles).
var browserRoles = map[string]testbed.OAuthUser{
	"viewer":   {Login: "vera", Orgs: []string{"acme"}},
	"deployer": {Login: "dave", Orgs: []string{"acme"}, Teams: []string{"acme/ops"}},
	"admin":    {Login: "ada", Orgs: []string{"acme"}},
}

// shopService is the service file of "shop" on both servers: a canary on
// the first watched for watch, then the second.
func (e *browserBed) shopService(image string, watch time.Duration) string {
	return fmt.Sprintf(`service: shop
image: %s
servers: [%s, %s]
proxy:
  host: shop.test
  app_port: 80
  healthcheck: {path: /up, interval: 1, timeout: 2}
deploy_timeout: 30
drain_timeout: 1
x-bosun:
  canary: {hosts: 1, watch: %s}
`, image, e.Bed.Servers[0].Name, e.Bed.Servers[1].Name, watch)
}

// startBrowserBed starts the servers, the daemon (deploying shop v1 on
// both) and chromium.
func startBrowserBed(t *testing.T) *browserBed {
	t.Helper()
	if testing.Short() {
		t.Skip("needs test servers and chromium")
	}
	testbed.RequireDocker(t)
	chromium := testbed.RequireChromium(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	e := &browserBed{Bed: bed, GH: testbed.NewFakeGitHub(t), forgeRepo: "acme/fleet", Images: map[string]string{}, Serving: "v1"}
	for _, v := range []string{"v1", "v2"} {
		e.Images[v] = bed.PushApp(t, "shop", v, testbed.AppOK)
	}
	proxyImage := bed.PushProxy(t)
	var fleet strings.Builder
	fleet.WriteString("servers:\n")
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fmt.Fprintf(&fleet, "  %s: {host: %s, port: %s, user: root}\n", s.Name, host, port)
	}
	e.RepoDir = filepath.Join(t.TempDir(), "fleet")
	e.head = testbed.Commit(t, e.RepoDir, "fleet", map[string]string{"fleet.yml": fleet.String(), "services/shop.yml": e.shopService(e.Images["v1"], time.Second)})
	e.dashboardDaemon = startDashboard(t, bed, e.GH, e.RepoDir, e.forgeRepo, proxyImage)
	waitFor(t, 3*time.Minute, "shop v1 serving on both servers after the start", func() bool { return e.serves("v1") })
	first := e.head
	waitFor(t, time.Minute, "bosun/deploy success on the first commit", func() bool {
		s := lastStatus(e.GH, first, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})

	e.shots = os.Getenv("BOSUN_SCREENSHOTS")
	if e.shots == "" {
		e.shots = filepath.Join(os.TempDir(), "bosun-screenshots")
	}
	if err := os.MkdirAll(e.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", e.shots)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), // the system's chromium; chromedp downloads nothing
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // chromium's sandbox refuses to run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil { // starts chromium
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	e.browser = browser
	return e
}

// other is the version shop does not serve.
func (e *browserBed) other() string {
	if e.Serving == "v1" {
		return "v2"
	}
	return "v1"
}

// serves says whether every server's proxy serves version for shop.test.
func (e *browserBed) serves(version string) bool {
	for _, s := range e.Bed.Servers {
		if !strings.Contains(serving(s.HTTPAddr, "shop.test"), version) {
			return false
		}
	}
	return true
}

// push commits files on master and delivers the push webhook; it returns
// the commit.
func (e *browserBed) push(t *testing.T, files map[string]string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	sha := testbed.Commit(t, e.RepoDir, "change", files)
	if code := e.hook(t, "push", "push-"+sha, pushEvent(e.forgeRepo, "master", e.head, sha)); code != http.StatusAccepted {
		t.Fatalf("push webhook: %d, want 202", code)
	}
	e.head = sha
	return sha
}

// api GETs path from the dashboard's API with the viewer token into v.
func (e *browserBed) api(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.Viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// deploymentOf waits for the deployment of commit sha to be recorded and
// returns it.
func (e *browserBed) deploymentOf(t *testing.T, sha string) dashboard.Deployment {
	t.Helper()
	var found dashboard.Deployment
	waitFor(t, 2*time.Minute, "the deployment of "+sha, func() bool {
		var list dashboard.DeploymentList
		e.api(t, "/api/v1/deployments?limit=10", &list)
		for _, d := range list.Deployments {
			if d.Commit == sha {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

// waitFinished waits for deployment id to finish and returns it.
func (e *browserBed) waitFinished(t *testing.T, id int64) dashboard.Deployment {
	t.Helper()
	var d dashboard.Deployment
	waitFor(t, 3*time.Minute, fmt.Sprintf("deployment %d to finish", id), func() bool {
		e.api(t, fmt.Sprintf("/api/v1/deployments/%d", id), &d)
		return d.FinishedAt != nil
	})
	return d
}

// browserPage is one tab, in a browser context of its own (cookies apart
// from every other), logged in as a role or not at all.
type browserPage struct {
	t    *testing.T
	e    *browserBed
	ctx  context.Context
	name string // for screenshot files
	n    int
}

// newPage opens a tab in a fresh browser context.
func (e *browserBed) newPage(t *testing.T, name string) *browserPage {
	t.Helper()
	e.mu.Lock()
	if e.cleaned == nil {
		e.cleaned = map[string]bool{}
	}
	if !e.cleaned[t.Name()] { // last run's screenshots go
		e.cleaned[t.Name()] = true
		os.RemoveAll(filepath.Join(e.shots, unsafeName.ReplaceAllString(t.Name(), "_")))
	}
	e.mu.Unlock()
	ctx, cancel := chromedp.NewContext(e.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return &browserPage{t: t, e: e, ctx: ctx, name: name}
}

// loginAs opens a tab and logs in as role (viewer, deployer or admin)
// through the fake GitHub's OAuth flow: /fleet without a session goes to
// /login, the forge's authorize page and back; the tab ends on /fleet,
// signed in.
func (e *browserBed) loginAs(t *testing.T, role string) *browserPage {
	t.Helper()
	u, ok := browserRoles[role]
	if !ok {
		t.Fatalf("no user with role %q", role)
	}
	p := e.newPage(t, role)
	e.GH.LoginAs(u)
	p.open("/fleet")
	if got := p.location(); got != e.URL+"/fleet" {
		t.Fatalf("after logging in as %s the tab is at %s, want %s/fleet", u.Login, got, e.URL)
	}
	want := fmt.Sprintf("github:%s (%s)", u.Login, role)
	if who := p.text("header .who"); who != want {
		t.Fatalf("header says %q, want %q", who, want)
	}
	return p
}

// do runs chromedp actions in the tab, failing the test on an error.
func (p *browserPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	pageRun(p, what, chromedp.Steps(steps...))
}

// pageRun runs one chromedp action in the tab and returns its value,
// failing the test on an error (with a screenshot of the tab).
func pageRun[T any](p *browserPage, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.shot("failed")
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to path (on the dashboard), waits for the page's main
// element and saves a screenshot.
func (p *browserPage) open(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.e.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
	p.shot(path)
}

// click clicks the first element matching the CSS selector sel, waits for
// the page it leads to and saves a screenshot.
func (p *browserPage) click(sel string) {
	p.t.Helper()
	p.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible), chromedp.Sleep(300*time.Millisecond), chromedp.WaitReady(chromedp.CSS("main")))
	p.shot("after-click")
}

// location is the tab's URL.
func (p *browserPage) location() string {
	p.t.Helper()
	return pageRun(p, "read the location", chromedp.Location())
}

// text is the visible text of the first element matching sel.
func (p *browserPage) text(sel string) string {
	p.t.Helper()
	return strings.TrimSpace(pageRun(p, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// evalJS evaluates a JavaScript expression in the page (awaiting a
// promise) and decodes its value.
func evalJS[T any](p *browserPage, js string) T {
	p.t.Helper()
	return pageRun(p, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// tryEval is evalJS for a poll: an error (the page is loading, say) is
// returned, not fatal.
func tryEval[T any](p *browserPage, js string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// waitJS polls the JavaScript expression js until it is true, across page
// loads; the test fails when it is not within timeout.
func (p *browserPage) waitJS(timeout time.Duration, what, js string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := tryEval[bool](p, js)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.shot("timeout")
			p.t.Fatalf("timed out after %s waiting for %s (%s): %v", timeout, what, js, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count is how many elements match the CSS selector sel now.
func (p *browserPage) count(sel string) int {
	p.t.Helper()
	return evalJS[int](p, fmt.Sprintf("document.querySelectorAll(%q).length", sel))
}

// post POSTs form (URL-encoded, with the page's CSRF token as csrf when
// the page has one) to path from the page with fetch, and returns the
// answer's status code (a redirect is 0: fetch hides it).
func (p *browserPage) post(path string, form map[string]string) int {
	p.t.Helper()
	if form == nil {
		form = map[string]string{}
	}
	b, _ := json.Marshal(form)
	return evalJS[int](p, fmt.Sprintf(`(async () => {
  const f = new URLSearchParams(%s);
  const c = document.querySelector("input[name=csrf]");
  if (c) f.set("csrf", c.value);
  const r = await fetch(%q, {method: "POST", body: f, redirect: "manual"});
  return r.status;
})()`, b, path))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// shot saves a full-page screenshot of the tab as NN-NAME-WHAT.png in the
// screenshot folder and returns its path.
func (p *browserPage) shot(what string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", what, err)
		return ""
	}
	p.n++
	what = strings.Trim(unsafeName.ReplaceAllString(what, "_"), "_")
	if what == "" {
		what = "home" // the path /
	}
	name := fmt.Sprintf("%02d-%s-%s.png", p.n, p.name, what)
	path := filepath.Join(p.e.shots, unsafeName.ReplaceAllString(p.t.Name(), "_"), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// docShot writes the tab's screenshot to docs/img/NAME.png under -update.
func (p *browserPage) docShot(name string) {
	p.t.Helper()
	if !*update {
		return
	}
	png := pageRun(p, "screenshot for the docs", chromedp.FullScreenshot(100))
	path := filepath.Join("..", "..", "docs", "img", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s", path)
}

// TestBrowser drives the dashboard in chromium; see browserBed.
func TestBrowser(t *testing.T) {
	e := startBrowserBed(t)
	t.Run("login", func(t *testing.T) { testBrowserLogin(t, e) })
	t.Run("liveRollout", func(t *testing.T) { testBrowserLiveRollout(t, e) })
	t.Run("cancel", func(t *testing.T) { testBrowserCancel(t, e) })
	t.Run("hold", func(t *testing.T) { testBrowserHold(t, e) })
	t.Run("historyByServer", func(t *testing.T) { testBrowserHistoryByServer(t, e) })
	t.Run("newService", func(t *testing.T) { testBrowserNewService(t, e) })
	t.Run("rollback", func(t *testing.T) { testBrowserRollback(t, e) })
}

// testBrowserLogin: a tab without a session is sent through the fake
// GitHub's login and back; the fleet page then shows shop on both servers.
func testBrowserLogin(t *testing.T, e *browserBed) {
	p := e.newPage(t, "anonymous")
	e.GH.LoginAs(browserRoles["viewer"])
	before := len(e.GH.AuthorizeCalls())
	p.open("/history")
	if got := p.location(); got != e.URL+"/history" {
		t.Fatalf("after the login the tab is at %s, want %s/history (the page asked for)", got, e.URL)
	}
	if n := len(e.GH.AuthorizeCalls()); n != before+1 {
		t.Errorf("authorize calls on the fake GitHub: %d, want %d (the tab went through the forge)", n, before+1)
	}
	if who := p.text("header .who"); who != "github:vera (viewer)" {
		t.Errorf("header: %q, want github:vera (viewer)", who)
	}
	p.open("/fleet")
	// The stylesheet applies (the pages' CSP refuses inline styles).
	if bg := evalJS[string](p, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(29, 35, 42)" {
		t.Errorf("the header's background is %q, want rgb(29, 35, 42) from /static/style.css", bg)
	}
	for _, s := range e.Bed.Servers {
		if n := p.count(fmt.Sprintf(`table.matrix a[href="/servers/%s"]`, s.Name)); n != 1 {
			t.Errorf("fleet rows of %s: %d, want 1", s.Name, n)
		}
	}
	if n := p.count("table.matrix td.h-running"); n != 2 {
		t.Errorf("running cells: %d, want 2 (shop on both servers)", n)
	}
	p.docShot("fleet")

	// Logging out drops the session: the login page sends the tab to the
	// forge again, where a user without a role is now signed in.
	e.GH.LoginAs(testbed.OAuthUser{Login: "mallory", Orgs: []string{"evil"}})
	p.click("header form button")
	if body := p.text("main"); !strings.Contains(body, "mallory has no role on this dashboard") {
		t.Errorf("after logging out and in as mallory:\n%s", body)
	}
	p.open("/fleet")
	if body := p.text("main"); !strings.Contains(body, "mallory has no role on this dashboard") {
		t.Errorf("a user without a role sees:\n%s", body)
	}
	if n := p.count("table.matrix"); n != 0 {
		t.Errorf("a user without a role sees the fleet")
	}
}

// testBrowserLiveRollout: a push rolls out while a deployer watches its
// page; the steps arrive by the stream (the page rendered none), the first
// one before the rollout finished, in the order the executor took them.
func testBrowserLiveRollout(t *testing.T, e *browserBed) {
	p := e.loginAs(t, "deployer")
	next := e.other()
	sha := e.push(t, map[string]string{"services/shop.yml": e.shopService(e.Images[next], 6*time.Second)})
	dep := e.deploymentOf(t, sha)
	p.open(fmt.Sprintf("/deployments/%d", dep.ID))
	p.waitJS(2*time.Minute, "the first step on the page", `document.querySelectorAll("#steps tr.step").length > 0`)
	firstSeen := time.Now()
	p.waitJS(time.Minute, "the canary's watch on the page", `document.querySelectorAll("#steps tr.step").length >= 8`)
	midway := p.count("#steps tr.step")
	p.shot("live")
	p.docShot("deployment-live")
	done := e.waitFinished(t, dep.ID)
	if done.Status != "deployed" {
		t.Fatalf("deployment %d: %s %s, want deployed", dep.ID, done.Status, done.Error)
	}
	if !firstSeen.Before(*done.FinishedAt) {
		t.Errorf("the first step appeared at %s, after the rollout finished at %s", firstSeen.Format(time.StampMicro), done.FinishedAt.Format(time.StampMicro))
	}
	if midway >= countEvents(t, e, dep.ID) {
		t.Errorf("mid-rollout the page had %d steps, as many as the finished rollout: nothing arrived live", midway)
	}
	// The page reloads when the stream ends: the final status, and the
	// steps the server rendered.
	p.waitJS(30*time.Second, "the page to show the final status", `document.querySelector("#status").textContent == "deployed"`)
	p.shot("finished")
	rows := evalJS[[][]string](p, `Array.from(document.querySelectorAll("#steps tr.step")).map(tr => Array.from(tr.cells).map(td => td.textContent))`)
	var order []string
	for _, r := range rows {
		if len(r) < 4 {
			t.Fatalf("step row %v", r)
		}
		order = append(order, strings.TrimPrefix(r[1], "web@")+" "+r[2]+" "+r[3])
	}
	s1, s2 := e.Bed.Servers[0].Name, e.Bed.Servers[1].Name
	// The canary's steps, its watch, then the second server's.
	want := []string{" lock ok", s1 + " connect started", s1 + " pull ok", s1 + " start ok", s1 + " switch ok", s1 + " record ok", s1 + " canary started", s1 + " canary ok",
		s2 + " connect started", s2 + " pull ok", s2 + " start ok", s2 + " switch ok", s2 + " record ok", " done ok"}
	if !subsequence(want, order) {
		t.Errorf("steps done, in page order:\n%s\nwant in this order:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	if !e.serves(next) {
		t.Errorf("%s is not serving on both servers after the rollout", next)
	}
	e.Serving = next
}

// countEvents is how many events deployment id has in the API.
func countEvents(t *testing.T, e *browserBed, id int64) int {
	var evs struct{ Events []dashboard.Event }
	e.api(t, fmt.Sprintf("/api/v1/deployments/%d/events", id), &evs)
	return len(evs.Events)
}

// subsequence says whether want appears in got in order (other entries
// between them allowed).
func subsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// testBrowserHistoryByServer: the per-server view and the server filter
// list only deployments with a step on that server.
func testBrowserHistoryByServer(t *testing.T, e *browserBed) {
	p := e.loginAs(t, "viewer")
	s1 := e.Bed.Servers[0].Name
	p.open("/fleet")
	p.click(fmt.Sprintf(`table.matrix a[href="/servers/%s"]`, s1))
	if got := p.location(); got != e.URL+"/servers/"+s1 {
		t.Fatalf("the server's link led to %s", got)
	}
	p.shot("per-server")
	if h := p.text("h1"); h != "What ran on "+s1 {
		t.Errorf("heading %q", h)
	}
	all := p.count("#history tr.dep")
	var list dashboard.DeploymentList
	e.api(t, "/api/v1/deployments?server="+s1, &list)
	if all == 0 || all != len(list.Deployments) {
		t.Errorf("%s's view lists %d deployments; the API %d", s1, all, len(list.Deployments))
	}
	// The filter form, with a server that ran nothing.
	p.open("/history")
	p.do("fill in the server filter", chromedp.SetValue(chromedp.CSS(`form.filters input[name=server]`), "server-99"))
	p.click(`form.filters button[type=submit]`)
	p.shot("filtered")
	if got := p.location(); !strings.Contains(got, "server=server-99") {
		t.Errorf("after filtering: %s", got)
	}
	if n := p.count("#history tr.dep"); n != 0 {
		t.Errorf("server-99 ran %d deployments on the page, want none", n)
	}
	if !strings.Contains(p.text("main"), "No deployment matches") {
		t.Errorf("the filtered page does not say nothing matched")
	}
	p.open("/history?server=" + s1)
	if n := p.count("#history tr.dep"); n != all {
		t.Errorf("/history?server=%s lists %d, /servers/%s %d", s1, n, s1, all)
	}
}

// testBrowserCancel: a slow rollout (a canary watched for five minutes)
// runs; a viewer sees no cancel button and is refused the POST; a
// deployer cancels it from its page, which shows it stop; the canary goes
// back to the old version, the other server never left it.
func testBrowserCancel(t *testing.T, e *browserBed) {
	old, next := e.Serving, e.other()
	sha := e.push(t, map[string]string{"services/shop.yml": e.shopService(e.Images[next], 5*time.Minute)})
	dep := e.deploymentOf(t, sha)
	page := fmt.Sprintf("/deployments/%d", dep.ID)
	cancelPath := page + "/cancel"

	t.Run("viewerRefused", func(t *testing.T) {
		p := e.loginAs(t, "viewer")
		p.open(page)
		p.waitJS(time.Minute, "the first step", `document.querySelectorAll("#steps tr.step").length > 0`)
		if n := p.count("#cancel"); n != 0 {
			t.Errorf("the viewer's page has %d cancel buttons", n)
		}
		if n := p.count(`form[action$="/cancel"]`); n != 0 {
			t.Errorf("the viewer's page has %d cancel forms", n)
		}
		// With the session's CSRF token (the logout form's): the role refuses.
		if code := p.post(cancelPath, nil); code != http.StatusForbidden {
			t.Errorf("the viewer's POST %s: %d, want 403", cancelPath, code)
		}
		if code, body := postWith(t, e.URL+"/api/v1/deployments/"+fmt.Sprint(dep.ID)+"/cancel", e.Viewer); code != http.StatusForbidden {
			t.Errorf("cancel with a viewer token: %d %s, want 403", code, body)
		}
		if code, _ := postWith(t, e.URL+"/api/v1/deployments/999999/cancel", e.Deployer); code != http.StatusNotFound {
			t.Errorf("cancel of an unknown deployment: %d, want 404", code)
		}
		p.shot("refused")
	})
	if d := e.waitFinishedOrNot(t, dep.ID); d.FinishedAt != nil {
		t.Fatalf("the slow rollout ended before the deployer could cancel it: %+v", d)
	}

	t.Run("deployerCancels", func(t *testing.T) {
		p := e.loginAs(t, "deployer")
		p.open(page)
		// The canary is on the new version and being watched.
		p.waitJS(2*time.Minute, "the canary's watch", `Array.from(document.querySelectorAll("#steps tr.step")).some(tr => tr.cells[2].textContent == "canary" && tr.cells[3].textContent == "started")`)
		p.shot("watching")
		asked := time.Now()
		p.click("#cancel")
		if got := p.text("#cancelled"); !strings.Contains(got, "github:dave") {
			t.Errorf("after the click the page says %q, want who asked the cancel", got)
		}
		p.waitJS(2*time.Minute, "the page to show the rollout ended", `document.querySelector("#status").textContent != "deploying" && !!document.querySelector("#cancelled")`)
		p.shot("cancelled")
		if got := p.text("#cancelled"); got != "Cancelled by github:dave." {
			t.Errorf("the finished page says %q, want Cancelled by github:dave.", got)
		}
		if n := p.count("#cancel"); n != 0 {
			t.Errorf("the finished deployment still has a cancel button")
		}
		d := e.waitFinished(t, dep.ID)
		if took := d.FinishedAt.Sub(asked); took > 90*time.Second {
			t.Errorf("the rollout ended %s after the cancel; the canary's watch was 5 minutes, the cancel should end it at once", took)
		}
		if d.Status != "rolled_back" || !strings.HasPrefix(d.Error, "cancelled by github:dave") {
			t.Errorf("deployment = %s %q, want rolled_back (the canary put back), error cancelled by github:dave", d.Status, d.Error)
		}
		if got := p.text("#status"); got != d.Status {
			t.Errorf("the page's status %q, the API's %q", got, d.Status)
		}
		// Every host serves: the canary back on the old version, the
		// other never left it.
		for _, s := range e.Bed.Servers {
			if got := serving(s.HTTPAddr, "shop.test"); !strings.Contains(got, old) {
				t.Errorf("%s serves %q after the cancel, want %s", s.Name, got, old)
			}
		}
		var evs struct{ Events []dashboard.Event }
		e.api(t, fmt.Sprintf("/api/v1/deployments/%d/events", dep.ID), &evs)
		var asks, rollbacks int
		for _, ev := range evs.Events {
			if ev.Step == "cancel" && ev.Status == "requested" && ev.Actor == "github:dave" {
				asks++
			}
			if ev.Step == "rollback" && ev.Status == "ok" {
				rollbacks++
			}
		}
		if asks != 1 || rollbacks != 1 {
			t.Errorf("events: %d cancel requests by github:dave, %d hosts rolled back; want 1 and 1: %+v", asks, rollbacks, evs.Events)
		}
		var acts struct{ Actions []dashboard.Action }
		e.api(t, "/api/v1/actions?action=cancel", &acts)
		if len(acts.Actions) != 1 || acts.Actions[0].Actor != "github:dave" || acts.Actions[0].DeploymentID != dep.ID {
			t.Errorf("cancel actions: %+v, want one by github:dave on deployment %d", acts.Actions, dep.ID)
		}
		waitFor(t, time.Minute, "the bosun/deploy status of the cancelled commit", func() bool {
			st := lastStatus(e.GH, sha, webhook.ContextDeploy)
			return st != nil && st.GetState() == "error" && strings.Contains(st.GetDescription(), "cancelled by github:dave")
		})
		// Not retried: the job ended with the cancel.
		time.Sleep(3 * time.Second)
		var list dashboard.DeploymentList
		e.api(t, "/api/v1/deployments?limit=5", &list)
		if list.Deployments[0].ID != dep.ID {
			t.Errorf("a deployment after the cancelled one: %+v (the cancelled sync was retried)", list.Deployments[0])
		}
		// Finished: nothing left to cancel.
		if code, body := postWith(t, e.URL+"/api/v1/deployments/"+fmt.Sprint(dep.ID)+"/cancel", e.Deployer); code != http.StatusConflict {
			t.Errorf("cancel of the finished deployment: %d %s, want 409", code, body)
		}
	})
	if !e.serves(old) {
		e.Serving = "" // unknown: later subtests fail
	}
}

// waitFinishedOrNot returns deployment id as the API has it now.
func (e *browserBed) waitFinishedOrNot(t *testing.T, id int64) dashboard.Deployment {
	var d dashboard.Deployment
	e.api(t, fmt.Sprintf("/api/v1/deployments/%d", id), &d)
	return d
}

// testBrowserHold: a deployer goes from a deployment's page to its
// service's and holds it; the next push deploys nothing, and its plan
// shows shop's targets held (the plan comment of a pull request at that
// commit); Release ends the hold, and a sync then deploys the push.
func testBrowserHold(t *testing.T, e *browserBed) {
	if e.Serving == "" {
		t.Skip("shop's version is unknown after the cancel test failed")
	}
	p := e.loginAs(t, "deployer")
	var list dashboard.DeploymentList
	e.api(t, "/api/v1/deployments?service=shop&limit=1", &list)
	last := list.Deployments[0]
	p.open(fmt.Sprintf("/deployments/%d", last.ID))
	p.click("#service")
	if got := p.location(); got != e.URL+"/repos/fleet/services/shop" {
		t.Fatalf("the service link led to %s", got)
	}
	p.click("#hold")
	if n := p.count("#release"); n != 1 {
		t.Errorf("after Hold: %d release buttons, want 1", n)
	}
	if got := p.text("#flash"); !strings.Contains(got, "is held at") {
		t.Errorf("after Hold the page says %q", got)
	}
	t.Cleanup(func() { postWith(t, e.URL+"/api/v1/repos/fleet/services/shop/release", e.Deployer) })

	old, next := e.Serving, e.other()
	sha := e.push(t, map[string]string{"services/shop.yml": e.shopService(e.Images[next], time.Second)})
	waitFor(t, 2*time.Minute, "the bosun/deploy status of the push", func() bool {
		st := lastStatus(e.GH, sha, webhook.ContextDeploy)
		return st != nil && st.GetState() != "pending"
	})
	if st := lastStatus(e.GH, sha, webhook.ContextDeploy); st.GetState() != "success" || !strings.Contains(st.GetDescription(), "no changes") {
		t.Errorf("the push's deploy status: %s %q, want success, no changes (shop is held)", st.GetState(), st.GetDescription())
	}
	e.api(t, "/api/v1/deployments?service=shop&limit=1", &list)
	if list.Deployments[0].ID != last.ID {
		t.Errorf("the push deployed held shop: %+v", list.Deployments[0])
	}
	if !e.serves(old) {
		t.Errorf("shop no longer serves %s on both servers while held", old)
	}
	// The plan of that commit says held, with who held it.
	if code := e.hook(t, "pull_request", "pr-"+sha, pullRequestEvent(e.forgeRepo, "opened", 7, "master", sha)); code != http.StatusAccepted {
		t.Fatalf("pull_request webhook: %d", code)
	}
	var comment string
	waitFor(t, 2*time.Minute, "the plan comment of pull request 7", func() bool {
		cs := e.GH.Comments(e.forgeRepo, 7)
		if len(cs) == 0 {
			return false
		}
		comment = cs[len(cs)-1]
		return true
	})
	if !strings.Contains(comment, "0 to update") || !strings.Contains(comment, "2 held") || strings.Count(comment, "| held |") != 2 {
		t.Errorf("the plan of the push's commit does not show shop's 2 targets held:\n%s", comment)
	}

	p.click("#release")
	if n := p.count("#hold"); n != 1 {
		t.Errorf("after Release: %d hold buttons, want 1", n)
	}
	if got := p.text("#flash"); !strings.Contains(got, "released") {
		t.Errorf("after Release the page says %q", got)
	}
	var acts struct{ Actions []dashboard.Action }
	e.api(t, "/api/v1/actions?service=shop", &acts)
	var seen []string
	for _, a := range acts.Actions {
		if a.Actor == "github:dave" {
			seen = append(seen, a.Action)
		}
	}
	if !strings.HasPrefix(strings.Join(seen, ","), "release,hold") {
		t.Errorf("actions by github:dave on shop, newest first: %v, want release, hold", seen)
	}
	// The push's commit deploys at the next sync, now that shop is free.
	resp, err := http.DefaultClient.Do(mustRequest(t, http.MethodPost, e.URL+"/api/v1/repos/fleet/sync", e.Deployer))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("sync after the release: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, 3*time.Minute, next+" serving after the release and a sync", func() bool { return e.serves(next) })
	e.Serving = next
}

func mustRequest(t *testing.T, method, u, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
