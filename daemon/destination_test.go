package daemon

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/webhook"
)

// TestDaemon_destinationAndERBEnv: a repository entry's destination and
// erb_env reach the planner of `bosun serve`. The daemon deploys the
// destination file merged over its base, with the ERB lookups filled from
// the listed variables only; a second entry of the same files without a
// destination deploys the base. A pull request that asks ERB for a variable
// the operator did not list gets an error in its plan, never the value.
func TestDaemon_destinationAndERBEnv(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "shop")
	files := map[string]string{
		"fleet.yml": "servers:\n  web-1: {host: 10.0.0.1}\n",
		"services/web.yml": "service: web\nimage: app:<%= ENV.fetch(\"APP_TAG\", \"latest\") %>\nservers: [web-1]\n" +
			"proxy: {host: web.example.com}\nenv:\n  clear:\n    STAGE: base\n",
		"services/web.staging.yml": "proxy: {host: staging.example.com}\nenv:\n  clear:\n    STAGE: staging\n",
	}
	head := testbed.Commit(t, src, "shop with a staging destination", files)
	repos := []RepoConfig{
		{Name: "shop-staging", URL: src, Branch: "master", Path: ".", Poll: Duration(time.Hour), ForgeRepo: "acme/shop",
			Destination: "staging", ERBEnv: []string{"APP_TAG"}},
		{Name: "shop-base", URL: src, Branch: "master", Path: ".", Poll: Duration(time.Hour)},
	}
	env := map[string]string{"APP_TAG": "v7", "DAEMON_TOKEN": "ghs_daemon_token_value"}
	gh := testbed.NewFakeGitHub(t)
	rep := webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, newApplier(), 10*time.Second, rep,
		func(d *Deps) { d.Getenv = func(k string) string { return env[k] } })
	td.heads = map[string]string{"shop-staging": head, "shop-base": head}
	td.waitApplied(t, time.Minute)

	applied := func(repo string) planner.Spec {
		t.Helper()
		rows, err := td.store.ListApplied(t.Context(), repo)
		if err != nil || len(rows) != 1 {
			t.Fatalf("applied of %s = %d rows, %v; want 1", repo, len(rows), err)
		}
		var s planner.Spec
		if err := json.Unmarshal(rows[0].Spec, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct{ repo, image, stage, host string }{
		// APP_TAG is listed for the staging entry only: the base entry
		// gets the ERB default.
		{"shop-staging", "app:v7", "staging", "staging.example.com"},
		{"shop-base", "app:latest", "base", "web.example.com"},
	} {
		s := applied(c.repo)
		host := ""
		if s.Proxy != nil && len(s.Proxy.Hosts) > 0 {
			host = s.Proxy.Hosts[0]
		}
		if s.Image != c.image || s.Env["STAGE"] != c.stage || host != c.host {
			t.Errorf("%s deployed image %q, STAGE %q, proxy host %q; want %q, %q, %q", c.repo, s.Image, s.Env["STAGE"], host, c.image, c.stage, c.host)
		}
	}

	// A pull request reads a variable the daemon has but the operator did
	// not list: its plan is an error that names the variable, not its value.
	files["services/web.staging.yml"] += "labels:\n  token: <%= ENV[\"DAEMON_TOKEN\"] %>\n"
	prHead := testbed.Commit(t, src, "print the daemon's token", files)
	if code := td.deliver(t, "pull_request", "pr-1", pullRequest("acme/shop", "opened", 4, prHead), true); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	deadline := time.Now().Add(time.Minute)
	var comments []string
	for {
		if comments = gh.Comments("acme/shop", 4); len(comments) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no plan comment on the pull request; forge calls: %q", gh.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
	last := comments[len(comments)-1]
	if strings.Contains(last, env["DAEMON_TOKEN"]) {
		t.Fatalf("the plan comment shows the daemon's variable:\n%s", last)
	}
	if !strings.Contains(last, "DAEMON_TOKEN") || !strings.Contains(last, "web.staging.yml") {
		t.Errorf("the plan comment does not name the unlisted variable and its file:\n%s", last)
	}
	for _, s := range gh.Statuses() {
		if strings.Contains(s.GetDescription(), env["DAEMON_TOKEN"]) {
			t.Errorf("a status shows the daemon's variable: %q", s.GetDescription())
		}
	}
}
