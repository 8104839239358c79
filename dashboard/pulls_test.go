package dashboard

import (
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/state"
)

// The pull requests page and API show each open pull request's stored
// plan, the same Markdown as its comment (the page renders it, and shows
// its source too), with its status; a pull request
// dropped from the store (closed) is gone from both.
func TestPulls_pageAndAPI(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	ctx := t.Context()
	plan := "### bosun plan for `fleet` at `abc1234`\n\n| service | action |\n| --- | --- |\n| shop | update <v2> |\n"
	for _, pr := range []state.PullRequest{
		{Repo: "fleet", Number: 7, HeadSHA: "abc1234def", Title: "Bump shop", Author: "ada", URL: "https://github.example/acme/fleet/pull/7", Markdown: plan, Status: "success", Summary: "1 to change"},
		{Repo: "fleet", Number: 8, HeadSHA: "fff0000aaa", Title: "Break it", Author: "bob", Markdown: "**invalid config**", Status: "failure", Summary: "invalid config: services/x.yml:1:1"},
		{Repo: "other", Number: 1, HeadSHA: "0000000111", Title: "Other repo"},
	} {
		if err := b.st.PutPullRequest(ctx, pr); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := b.login(t, bob) // a viewer
	code, _, body := do(t, c, "GET", b.url+"/pulls?repo=fleet", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /pulls: %d %s", code, body)
	}
	for _, want := range []string{`href="https://github.example/acme/fleet/pull/7"`, "Bump shop", "by ada", "1 to change", html.EscapeString(plan),
		"<h3>bosun plan for <code>fleet</code> at <code>abc1234</code></h3>", "<td>update &lt;v2&gt;</td>", "<p><strong>invalid config</strong></p>", "Break it", "invalid config: services/x.yml:1:1", ">failure<"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /pulls lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Other repo") || strings.Index(body, "Break it") > strings.Index(body, "Bump shop") {
		t.Errorf("GET /pulls?repo=fleet shows another repository's pull request, or not newest first:\n%s", body)
	}

	viewer, err := CreateToken(ctx, b.st, "look", Viewer, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"/api/v1/repos/fleet/pulls", "/api/v1/pulls?repo=fleet"} {
		code, _, body := do(t, browser(t, false), "GET", b.url+u, viewer, nil)
		got := decode[struct{ Pulls []PullRequest }](t, body)
		if code != http.StatusOK || len(got.Pulls) != 2 || got.Pulls[0].Number != 8 || got.Pulls[1].Markdown != plan || got.Pulls[1].Status != "success" || got.Pulls[1].Author != "ada" {
			t.Errorf("GET %s: %d %+v", u, code, got)
		}
	}
	if err := b.st.DeletePullRequest(ctx, "fleet", 7); err != nil {
		t.Fatal(err)
	}
	if _, _, body := do(t, c, "GET", b.url+"/pulls", "", nil); strings.Contains(body, "Bump shop") || !strings.Contains(body, "Other repo") {
		t.Errorf("a closed pull request is still listed, or another is missing:\n%s", body)
	}
	_, _, body = do(t, browser(t, false), "GET", b.url+"/api/v1/pulls", viewer, nil)
	if got := decode[struct{ Pulls []PullRequest }](t, body); len(got.Pulls) != 2 {
		t.Errorf("GET /api/v1/pulls after the close: %+v", got)
	}
}

// Actions taken through the API are recorded with their actor and shown in
// History (filterable by actor) and in /api/v1/actions.
func TestActions_inHistory(t *testing.T) {
	b := newBed(t, sqliteDSN(t), nil)
	ctx := t.Context()
	if err := b.st.PutApplied(ctx, state.Applied{Repo: "fleet", Service: "web", Role: "web", Host: "server-01", Version: "v1abc", Commit: "c1", Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	deployer, err := CreateToken(ctx, b.st, "ci", Deployer, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t, false)
	if code, _, body := do(t, c, "POST", b.url+"/api/v1/repos/fleet/services/web/hold", deployer, map[string]string{"reason": "incident"}); code != http.StatusOK {
		t.Fatalf("hold: %d %s", code, body)
	}
	if code, _, body := do(t, c, "POST", b.url+"/api/v1/repos/fleet/services/web/release", deployer, nil); code != http.StatusOK {
		t.Fatalf("release: %d %s", code, body)
	}
	if code, _, _ := do(t, c, "POST", b.url+"/api/v1/repos/fleet/services/web/release", deployer, nil); code != http.StatusNotFound {
		t.Fatalf("second release: %d, want 404", code)
	}
	_, _, body := do(t, c, "GET", b.url+"/api/v1/actions?repo=fleet", deployer, nil)
	got := decode[struct{ Actions []Action }](t, body)
	if len(got.Actions) != 2 || got.Actions[0].Action != ActionRelease || got.Actions[1].Action != ActionHold ||
		got.Actions[1].Actor != "token:ci" || got.Actions[1].Service != "web" || got.Actions[1].Detail != "at v1abc: incident" {
		t.Fatalf("actions (a refused release must not count) = %+v", got.Actions)
	}

	v, _ := b.login(t, bob)
	code, _, page := do(t, v, "GET", b.url+"/history?actor=token:ci", "", nil)
	if code != http.StatusOK || strings.Count(page, `<tr class="action">`) != 2 || !strings.Contains(page, "token:ci") || !strings.Contains(page, "at v1abc: incident") {
		t.Errorf("GET /history?actor=token:ci: %d, want both actions:\n%s", code, page)
	}
	if _, _, page := do(t, v, "GET", b.url+"/history?actor=github:nobody", "", nil); strings.Contains(page, `<tr class="action">`) {
		t.Errorf("History filtered by another actor shows actions:\n%s", page)
	}
}
