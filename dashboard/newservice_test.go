package dashboard

import (
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/watcher"
	"github.com/bosunhq/bosun/webhook"
)

// gitChanges is the daemon's side of the form over real parts: a watcher's
// clone of a real git repository, the real planner, and a reporter on the
// fake GitHub. It is what *daemon.Daemon does, without a queue.
type gitChanges struct {
	w   *watcher.Watcher
	rep *webhook.Reporter

	mu        sync.Mutex
	rollbacks []string
	err       error // Rollback's answer
}

func newGitChanges(t *testing.T, src string, gh *testbed.FakeGitHub) *gitChanges {
	w, err := watcher.New(watcher.Config{Name: "fleet", URL: src, Branch: "master", Dir: filepath.Join(t.TempDir(), "clone"), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &gitChanges{w: w, rep: webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())}
}

func (g *gitChanges) Head(ctx context.Context, repo string) (fs.FS, string, error) {
	rev, err := g.w.Sync(ctx)
	if err != nil {
		return nil, "", err
	}
	fsys, err := g.w.FetchCommit(ctx, rev.SHA, ".")
	return fsys, rev.SHA, err
}

func (g *gitChanges) Check(ctx context.Context, repo, sha string, fsys fs.FS) error {
	_, err := planner.New(planner.Config{SecretKey: make([]byte, 32)}).Plan(ctx, fsys, planner.Input{Repo: repo, Commit: sha})
	return err
}

func (g *gitChanges) Propose(ctx context.Context, repo string, p webhook.Proposal) (webhook.ProposedPR, error) {
	p.Repo, p.Base = "acme/fleet", "master"
	return g.rep.Propose(ctx, p)
}

func (g *gitChanges) Rollback(ctx context.Context, repo, service, to, actor, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rollbacks = append(g.rollbacks, repo+" "+service+" to="+to+" by "+actor+": "+reason)
	return g.err
}

// formRepo is a config repository with two servers (tagged) and a
// template that needs a domain.
var formRepo = map[string]string{
	"fleet.yml":        "servers:\n  web-1: {host: 10.0.0.11, tags: [web, eu-west]}\n  web-2: {host: 10.0.0.12, tags: [web, us-east]}\n",
	"services/web.yml": "service: web\nimage: ghcr.io/acme/web:v1\nservers: [web-1]\n",
	"templates/app.yml.tmpl": "service: {{ .service_name }}\nimage: {{ .image_url }}\nservers: {{ toJson .servers }}\n" +
		"proxy:\n  host: {{ .domain }}\n  ssl: {{ .ssl }}\n  healthcheck: {path: {{ index . \"health_path\" | default \"/up\" }}}\n",
}

// newFormBed is a dashboard whose daemon side is gitChanges over a real
// repository made from formRepo.
func newFormBed(t *testing.T) (*bed, *gitChanges, map[string]string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "fleet")
	testbed.Commit(t, src, "start", formRepo)
	var g *gitChanges
	b := newBedWith(t, sqliteDSN(t), nil, func(o *Options, gh *testbed.FakeGitHub) {
		g = newGitChanges(t, src, gh)
		o.Daemon, o.Changes = repos{"fleet"}, g
	})
	return b, g, formRepo
}

// post sends the form (repeated keys allowed) with the session's CSRF.
func postForm(t *testing.T, c *http.Client, u, csrf string, v url.Values) (int, string) {
	t.Helper()
	v.Set("csrf", csrf)
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readAll(t, resp)
}

// A valid form opens a pull request on the fake GitHub whose service file,
// added to the repository, the planner accepts and plans as a new service;
// bad input shows its errors on the form and writes nothing, also when
// only the planner finds the mistake.
func TestNewService_form(t *testing.T) {
	b, _, files := newFormBed(t)
	c, csrf := b.login(t, alice) // a deployer

	code, _, page := do(t, c, "GET", b.url+"/services/new", "", nil)
	for _, want := range []string{`<a href="/services/new">New service</a>`, `value="app"`, `value="web-1"`, "eu-west", `value="web-2"`, "us-east", `name="csrf" value="` + csrf + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /services/new (%d) lacks %q:\n%s", code, want, page)
		}
	}

	bad := []struct {
		name string
		form url.Values
		want string
	}{
		{"bad name, no server", url.Values{"repo": {"fleet"}, "name": {"Bad Name"}, "image": {"ghcr.io/acme/x:v1"}}, "is not a service name"},
		{"no server", url.Values{"repo": {"fleet"}, "name": {"api"}, "image": {"ghcr.io/acme/x:v1"}}, "pick at least one"},
		{"unknown server", url.Values{"repo": {"fleet"}, "name": {"api"}, "image": {"ghcr.io/acme/x:v1"}, "servers": {"web-9"}}, "not in fleet.yml"},
		{"a secret value", url.Values{"repo": {"fleet"}, "name": {"api"}, "image": {"ghcr.io/acme/x:v1"}, "servers": {"web-1"}, "secrets": {"DB_PASSWORD=hunter2"}}, "names only, never values"},
		{"taken name", url.Values{"repo": {"fleet"}, "name": {"web"}, "image": {"ghcr.io/acme/x:v1"}, "servers": {"web-1"}}, "services/web.yml exists already"},
		// Only the planner knows these: a bad image reference, and the
		// template's missing variable.
		{"bad image", url.Values{"repo": {"fleet"}, "name": {"api"}, "image": {"GHCR.io/Acme/X:v1 latest"}, "servers": {"web-1"}}, "services/api.yml:"},
		{"template without its domain", url.Values{"repo": {"fleet"}, "type": {"app"}, "name": {"api"}, "image": {"ghcr.io/acme/x:v1"}, "servers": {"web-1"}}, "domain"},
	}
	for _, tc := range bad {
		code, page := postForm(t, c, b.url+"/services/new", csrf, tc.form)
		if code != http.StatusUnprocessableEntity || !strings.Contains(page, `id="errors"`) || !strings.Contains(page, tc.want) {
			t.Errorf("%s: %d, want 422 and %q on the form:\n%s", tc.name, code, tc.want, page)
		}
		if !strings.Contains(page, `value="`+tc.form.Get("name")+`"`) {
			t.Errorf("%s: the form lost what was typed", tc.name)
		}
	}
	if brs, prs := b.gh.Branches(), b.gh.PullRequests(); len(brs) != 0 || len(prs) != 0 {
		t.Fatalf("bad input wrote to the forge: branches %v, pull requests %+v", brs, prs)
	}

	good := []url.Values{
		{"repo": {"fleet"}, "name": {"api"}, "image": {"ghcr.io/acme/api:v1"}, "servers": {"web-1", "web-2"}, "domain": {"api.example.com"},
			"ssl": {"1"}, "health": {"/healthz"}, "env": {"RAILS_ENV=production\nLOG_LEVEL=info"}, "secrets": {"DATABASE_URL, API_KEY"}},
		{"repo": {"fleet"}, "type": {"app"}, "name": {"shop"}, "image": {"ghcr.io/acme/shop:v2"}, "servers": {"web-2"}, "domain": {"shop.example.com"}, "ssl": {"1"}},
	}
	for i, form := range good {
		name := form.Get("name")
		code, page := postForm(t, c, b.url+"/services/new", csrf, form)
		prs := b.gh.PullRequests()
		if code != http.StatusCreated || len(prs) != i+1 {
			t.Fatalf("%s: %d with %d pull requests, want 201 and one more:\n%s", name, code, len(prs), page)
		}
		pr := prs[i]
		if !strings.Contains(page, `id="pr-link" href="`+pr.URL+`"`) {
			t.Errorf("%s: the page does not link the pull request %s:\n%s", name, pr.URL, page)
		}
		file, ok := pr.Files["services/"+name+".yml"]
		if pr.Base != "master" || !strings.HasPrefix(pr.Head, "bosun/new-service-"+name) || len(pr.Files) != 1 || !ok {
			t.Fatalf("%s: pull request %+v", name, pr)
		}
		if strings.Contains(file, "hunter2") {
			t.Errorf("a secret value reached the file")
		}
		// The planner plans the repository with the file as a new service.
		tree := map[string]string{}
		for k, v := range files {
			tree[k] = v
		}
		tree["services/"+name+".yml"] = file
		repo := filepath.Join(t.TempDir(), "merged")
		sha := testbed.Commit(t, repo, "merge", tree)
		plan, err := planner.New(planner.Config{SecretKey: make([]byte, 32)}).Plan(t.Context(), os.DirFS(repo), planner.Input{Repo: "fleet", Commit: sha})
		if err != nil {
			t.Fatalf("%s: the planner refuses the pull request's file:\n%s\n%v", name, file, err)
		}
		var created []string
		for _, ch := range plan.Changes {
			if ch.Service == name && ch.Action == planner.ActionCreate {
				created = append(created, ch.Host)
			}
		}
		if want := strings.Join(form["servers"], " "); strings.Join(created, " ") != want {
			t.Errorf("%s: the plan creates it on %v, want %s:\n%s", name, created, want, file)
		}
	}
	if f := b.gh.PullRequests()[0].Files["services/api.yml"]; !strings.Contains(f, "DATABASE_URL") || !strings.Contains(f, "RAILS_ENV: production") || !strings.Contains(f, "path: /healthz") {
		t.Errorf("the plain file lost a field:\n%s", f)
	}
	if f := b.gh.PullRequests()[1].Files["services/shop.yml"]; !strings.Contains(f, "template: app") || !strings.Contains(f, "service_name: shop") {
		t.Errorf("the templated file is not a template and its vars:\n%s", f)
	}
	as, _ := b.st.ListActions(t.Context(), state.ActionFilter{Action: ActionNewService})
	if len(as) != 2 || as[0].Actor != "github:alice" || as[0].Detail != b.gh.PullRequests()[1].URL {
		t.Errorf("new-service actions = %+v", as)
	}

	// A viewer gets neither the form nor the post, nor a link to them.
	v, vcsrf := b.login(t, bob)
	if code, _, page := do(t, v, "GET", b.url+"/fleet", "", nil); code != http.StatusOK || strings.Contains(page, "/services/new") {
		t.Errorf("a viewer's GET /fleet (%d) links the new-service form:\n%s", code, page)
	}
	if code, _, _ := do(t, v, "GET", b.url+"/services/new", "", nil); code != http.StatusForbidden {
		t.Errorf("a viewer's GET /services/new: %d, want 403", code)
	}
	if code, _ := postForm(t, v, b.url+"/services/new", vcsrf, good[0]); code != http.StatusForbidden {
		t.Errorf("a viewer's POST /services/new: %d, want 403", code)
	}
	if len(b.gh.PullRequests()) != 2 {
		t.Errorf("a viewer opened a pull request")
	}
}
