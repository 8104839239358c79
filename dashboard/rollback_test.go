package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
)

// The service page lists the versions a service ran, marks the running
// one, and offers a deployer a rollback to each other one; the rollback is
// handed to the daemon with the actor and recorded. A viewer gets no
// button and a 403; a version never run is 404 through the API.
func TestService_rollback(t *testing.T) {
	var g *gitChanges
	b := newBedWith(t, sqliteDSN(t), nil, func(o *Options, gh *testbed.FakeGitHub) {
		g = &gitChanges{}
		o.Daemon, o.Changes = repos{"fleet"}, g
	})
	ctx := t.Context()
	t0 := time.Now().Add(-time.Hour)
	for i, v := range []string{"v1aaaaaaaa", "v2bbbbbbbb"} {
		if err := b.st.PutApplied(ctx, state.Applied{Repo: "fleet", Service: "web", Role: "web", Host: "server-01", Version: v, Commit: "c" + v,
			Spec: []byte(`{"image":"ghcr.io/acme/web:` + v[:2] + `"}`), AppliedAt: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	g.rollbacks = nil
	v, vcsrf := b.login(t, bob)
	code, _, page := do(t, v, "GET", b.url+"/repos/fleet/services/web", "", nil)
	if code != http.StatusOK || strings.Count(page, `<tr class="version">`) != 2 || !strings.Contains(page, "ghcr.io/acme/web:v1") || strings.Contains(page, `class="rollback"`) {
		t.Fatalf("a viewer's service page: %d, want both versions and no rollback button:\n%s", code, page)
	}
	if code, _, _ := do(t, v, "POST", b.url+"/repos/fleet/services/web/rollback", "", map[string]string{"csrf": vcsrf, "to": "v1aaaaaaaa"}); code != http.StatusForbidden {
		t.Errorf("a viewer's rollback: %d, want 403", code)
	}

	c, csrf := b.login(t, alice)
	_, _, page = do(t, c, "GET", b.url+"/repos/fleet/services/web", "", nil)
	if strings.Count(page, `class="rollback"`) != 1 || !strings.Contains(page, `name="to" value="v1aaaaaaaa"`) {
		t.Fatalf("a deployer's service page: want one rollback button, to v1 (v2 runs):\n%s", page)
	}
	nc := browser(t, false)
	nc.Jar = c.Jar
	code, h, _ := do(t, nc, "POST", b.url+"/repos/fleet/services/web/rollback", "", map[string]string{"csrf": csrf, "to": "v1aaaaaaaa"})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/repos/fleet/services/web?flash=") {
		t.Errorf("rollback: %d to %q, want a redirect to the service page", code, h.Get("Location"))
	}
	if len(g.rollbacks) != 1 || g.rollbacks[0] != "fleet web to=v1aaaaaaaa by github:alice: " {
		t.Errorf("rollbacks asked of the daemon = %q", g.rollbacks)
	}
	as, _ := b.st.ListActions(ctx, state.ActionFilter{Action: ActionRollback})
	if len(as) != 1 || as[0].Actor != "github:alice" || as[0].Service != "web" || as[0].Detail != "to v1aaaaaaaa" {
		t.Errorf("rollback actions = %+v", as)
	}

	deployer, err := CreateToken(ctx, b.st, "ci", Deployer, "test")
	if err != nil {
		t.Fatal(err)
	}
	g.err = state.ErrNotFound
	if code, _, body := do(t, browser(t, false), "POST", b.url+"/api/v1/repos/fleet/services/web/rollback", deployer, map[string]string{"to": "v9"}); code != http.StatusNotFound {
		t.Errorf("API rollback to a version never run: %d %s, want 404", code, body)
	}
	g.err = nil
	if code, _, body := do(t, browser(t, false), "POST", b.url+"/api/v1/repos/fleet/services/web/rollback", deployer, map[string]string{"reason": "bad release"}); code != http.StatusAccepted || !strings.Contains(body, "previous version") {
		t.Errorf("API rollback: %d %s, want 202", code, body)
	}
	if len(g.rollbacks) != 3 || g.rollbacks[2] != "fleet web to= by token:ci: bad release" {
		t.Errorf("rollbacks asked of the daemon = %q", g.rollbacks)
	}
	if as, _ := b.st.ListActions(ctx, state.ActionFilter{Action: ActionRollback}); len(as) != 2 {
		t.Errorf("a refused rollback was recorded, or the accepted one not: %+v", as)
	}
}
