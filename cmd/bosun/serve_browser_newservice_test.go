package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// testBrowserNewService: a deployer fills the new-service form in
// chromium. Bad input shows its errors on the form (the form's own check
// and the planner's) and writes nothing to the forge; a valid form opens
// a pull request on the fake GitHub, whose link the page shows, with a
// service file the planner accepts.
func testBrowserNewService(t *testing.T, e *browserBed) {
	p := e.loginAs(t, "deployer")
	p.open("/")
	p.click("#new-service")
	if got := p.location(); got != e.URL+"/services/new" {
		t.Fatalf("the home page's New service link leads to %s", got)
	}
	server := e.Bed.Servers[1].Name
	if n := p.count(fmt.Sprintf(`input[name=servers][value=%q]`, server)); n != 1 {
		t.Fatalf("the form offers %d checkboxes for %s (from fleet.yml), want 1", n, server)
	}
	fill := func(name, image, domain string, servers ...string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.SetValue(chromedp.CSS("#name"), name),
			chromedp.SetValue(chromedp.CSS("#image"), image),
			chromedp.SetValue(chromedp.CSS("#domain"), domain),
			chromedp.SetValue(chromedp.CSS("#health"), "/up"),
			chromedp.SetValue(chromedp.CSS("#secrets"), "BLOG_TOKEN"),
		}
		for _, s := range servers {
			steps = append(steps, chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=servers][value=%q]`, s))))
		}
		p.do("fill the form", steps...)
		p.shot("filled")
	}

	// Bad: a name that is no service name, and no server.
	fill("Blog Site", e.Images["v1"], "blog.test")
	p.click("#submit")
	errs := p.text("#errors")
	if !strings.Contains(errs, "is not a service name") || !strings.Contains(errs, "pick at least one") {
		t.Errorf("the form's errors = %q, want the name's and the servers'", errs)
	}
	// Bad for the planner only: an image reference it refuses.
	fill("blog", "Not An/Image:ref", "blog.test", server)
	p.click("#submit")
	if errs := p.text("#errors"); !strings.Contains(errs, "services/blog.yml:") {
		t.Errorf("the planner's error is not on the form: %q", errs)
	}
	if got := pageRun(p, "read the name field", chromedp.Value(chromedp.CSS("#name"))); got != "blog" {
		t.Errorf("the form lost what was typed: name = %q", got)
	}
	if n := len(e.GH.PullRequests()) + len(e.GH.Branches()); n != 0 {
		t.Fatalf("bad input wrote to the forge: %v %+v", e.GH.Branches(), e.GH.PullRequests())
	}

	// Good. The form kept the server checked from the last try: uncheck
	// nothing, click nothing more for it.
	fill("blog", e.Images["v1"], "blog.test")
	p.click("#submit")
	link := pageRun(p, "read the pull request's link", chromedp.AttributeValue(chromedp.CSS("#pr-link"), "href")).Value
	prs := e.GH.PullRequests()
	if len(prs) != 1 || link != prs[0].URL {
		t.Fatalf("the page links %q; the fake has %+v", link, prs)
	}
	file := prs[0].Files["services/blog.yml"]
	if prs[0].Base != "master" || !strings.Contains(file, "service: blog") || !strings.Contains(file, server) || !strings.Contains(file, "BLOG_TOKEN") {
		t.Errorf("pull request %+v with services/blog.yml:\n%s", prs[0], file)
	}
	e.mu.Lock()
	head := e.head
	e.mu.Unlock()
	if prs[0].BaseSHA != head {
		t.Errorf("the branch starts at %s, want the head %s that was validated", prs[0].BaseSHA, head)
	}
	// The file plans, beside the repository's own.
	tree := map[string]string{"services/blog.yml": file}
	for _, f := range []string{"fleet.yml", "services/shop.yml"} {
		b, err := os.ReadFile(filepath.Join(e.RepoDir, f))
		if err != nil {
			t.Fatal(err)
		}
		tree[f] = string(b)
	}
	merged := filepath.Join(t.TempDir(), "merged")
	sha := testbed.Commit(t, merged, "merge the pull request", tree)
	if _, err := planner.New(planner.Config{SecretKey: make([]byte, 32)}).Plan(t.Context(), os.DirFS(merged), planner.Input{Repo: "fleet", Commit: sha}); err != nil {
		t.Errorf("the planner refuses the pull request's file:\n%s\n%v", file, err)
	}
	p.shot("pull-request-opened")
}

// testBrowserRollback: a deployer rolls shop back from v2 to v1 on its
// service page. The daemon applies it on both servers and holds the
// service there; History shows the rollback with the deployer as actor.
// Releasing the hold and syncing brings git's v2 back.
func testBrowserRollback(t *testing.T, e *browserBed) {
	if !e.serves("v2") {
		e.push(t, map[string]string{"services/shop.yml": e.shopService(e.Images["v2"], time.Second)})
		waitFor(t, 3*time.Minute, "shop v2 serving before the rollback", func() bool { return e.serves("v2") })
	}
	p := e.loginAs(t, "deployer")
	p.open("/fleet")
	p.click(`a[href="/repos/fleet/services/shop"]`)
	if got := p.location(); got != e.URL+"/repos/fleet/services/shop" {
		t.Fatalf("the fleet's shop column leads to %s", got)
	}
	// The button on the version whose image is v1.
	clicked := evalJS[bool](p, `(() => {
  for (const tr of document.querySelectorAll("#versions tr.version")) {
    const b = tr.querySelector("button.rollback");
    if (b && tr.textContent.includes("/shop:v1")) { b.click(); return true; }
  }
  return false;
})()`)
	if !clicked {
		p.shot("no-rollback-button")
		t.Fatal("no rollback button on shop's v1 version")
	}
	p.do("wait for the page after the rollback", chromedp.Sleep(300*time.Millisecond), chromedp.WaitReady(chromedp.CSS("main")))
	p.shot("rollback-queued")
	if flash := p.text("#flash"); !strings.Contains(flash, "rollback of shop") {
		t.Errorf("after the click the page says %q", flash)
	}
	waitFor(t, 3*time.Minute, "shop v1 serving after the rollback", func() bool { return e.serves("v1") })
	waitFor(t, time.Minute, "shop held after the rollback", func() bool {
		p.open("/repos/fleet/services/shop")
		return p.count("#release") == 1
	})
	if held := p.text("main"); !strings.Contains(held, "rollback by github:dave from the dashboard") {
		t.Errorf("the service page does not show the hold's reason:\n%s", held)
	}
	p.open("/history?actor=github:dave")
	if n := p.count(`#actions tr.action`); n < 1 || !strings.Contains(p.text("#actions"), "rollback") {
		t.Errorf("History by actor github:dave shows %d actions, without the rollback: %q", n, p.text("#actions"))
	}
	if !strings.Contains(p.text("#history"), "rollback by github:dave") {
		t.Errorf("History lists no deployment triggered by the rollback: %q", p.text("#history"))
	}

	// Back to git: release, then sync.
	p.open("/repos/fleet/services/shop")
	p.click("#release")
	if p.count("#release") != 0 || p.count("#hold") != 1 {
		t.Errorf("after Release the page still shows the hold")
	}
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/v1/repos/fleet/sync", nil)
	req.Header.Set("Authorization", "Bearer "+e.Deployer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("sync: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, 3*time.Minute, "shop v2 serving again after the release and a sync", func() bool { return e.serves("v2") })
}
