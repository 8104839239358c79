package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/webhook"
)

// TestServe_dashboard runs `bosun serve` with the dashboard on its own
// address over a test server: the metrics move with real deploys (read by
// a viewer token), a deployer logs in through the fake GitHub's OAuth flow
// and syncs the repository from the home page, and the deployment it makes
// is recorded with that actor and found through the API by its server.
func TestServe_dashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bed := testbed.Start(t, testbed.Options{Servers: 1})
	v1 := bed.PushApp(t, "shop", "v1", testbed.AppOK)
	v2 := bed.PushApp(t, "shop", "v2", testbed.AppOK)
	proxyImage := bed.PushProxy(t)
	gh := testbed.NewFakeGitHub(t)
	srv := bed.Servers[0]

	const forgeRepo = "acme/fleet"
	host, port, _ := strings.Cut(srv.SSHAddr, ":")
	fleet := fmt.Sprintf("servers:\n  %s: {host: %s, port: %s, user: root, tags: [eu-west]}\n", srv.Name, host, port)
	service := func(image string) string {
		return fmt.Sprintf(`service: shop
image: %s
servers: [%s]
proxy:
  host: shop.test
  app_port: 80
  healthcheck: {path: /up, interval: 1, timeout: 2}
deploy_timeout: 30
drain_timeout: 1
`, image, srv.Name)
	}
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "fleet")
	first := testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": fleet, "services/shop.yml": service(v1)})

	dd := startDashboard(t, bed, gh, repoDir, forgeRepo, proxyImage)
	d, dashURL, viewer := dd.daemonUnderTest, dd.URL, dd.Viewer
	serves := func(version string) func() bool {
		return func() bool { return strings.Contains(serving(srv.HTTPAddr, "shop.test"), version) }
	}
	waitFor(t, 3*time.Minute, "v1 serving after start", serves("v1"))
	waitFor(t, 30*time.Second, "bosun/deploy success on the first commit", func() bool {
		s := lastStatus(gh, first, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})

	get := func(base, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	scrape := func() map[string]float64 {
		t.Helper()
		code, body := get(dashURL, "/metrics", viewer)
		if code != http.StatusOK {
			t.Fatalf("GET /metrics with the viewer token: %d %s", code, body)
		}
		return parseMetrics(body)
	}

	// The webhooks' address serves no dashboard; the dashboard's no
	// webhooks.
	if code, _ := get(d.url, "/api/v1/deployments", viewer); code != http.StatusNotFound {
		t.Errorf("/api/v1 on the webhook address: %d, want 404 (the dashboard has its own)", code)
	}
	if code, _ := get(dashURL, "/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}

	// The start-up deploy moved the deployment series.
	m := scrape()
	shop := `{repo="fleet",service="shop"}`
	if m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`] != 1 || m["bosun_rollout_duration_seconds_count"+shop] != 1 || m["bosun_rollout_duration_seconds_sum"+shop] <= 0 {
		t.Errorf("after the first deploy: deployments %v, rollout count %v sum %v; want 1, 1, > 0",
			m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`], m["bosun_rollout_duration_seconds_count"+shop], m["bosun_rollout_duration_seconds_sum"+shop])
	}
	if ts := m["bosun_last_successful_deploy_timestamp_seconds"+shop]; ts < float64(time.Now().Add(-5*time.Minute).Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last successful deploy = %v, want within the last minutes", ts)
	}
	if _, ok := m["bosun_queue_depth"]; !ok {
		t.Errorf("no bosun_queue_depth")
	}

	// A push: push-to-serving is measured, the webhook answers counted;
	// a refused webhook and a forge error too.
	second := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service(v2)})
	gh.FailNext(1) // the pending status: 502, retried
	if code := d.hook(t, "push", "push-v2", pushEvent(forgeRepo, "master", first, second)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	req, _ := http.NewRequest("POST", d.url+"/hooks/github", strings.NewReader("{}"))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256=00")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a badly signed webhook: %v %v", resp, err)
	}
	waitFor(t, 3*time.Minute, "v2 serving after the push", serves("v2"))
	waitFor(t, time.Minute, "bosun/deploy success on the push", func() bool {
		s := lastStatus(gh, second, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
	m = scrape()
	if m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`] != 2 || m["bosun_rollout_duration_seconds_count"+shop] != 2 {
		t.Errorf("after the push: deployments %v, rollouts %v; want 2, 2", m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`], m["bosun_rollout_duration_seconds_count"+shop])
	}
	if n, sum := m[`bosun_push_to_serving_seconds_count{repo="fleet"}`], m[`bosun_push_to_serving_seconds_sum{repo="fleet"}`]; n != 1 || sum <= 0 || sum > 180 {
		t.Errorf("push to serving: count %v sum %v; want one push, served within the wait", n, sum)
	}
	if m[`bosun_webhook_deliveries_total{code="202"}`] < 1 || m[`bosun_webhook_deliveries_total{code="401"}`] != 1 {
		t.Errorf("webhook answers: 202 %v, 401 %v; want at least 1 and 1", m[`bosun_webhook_deliveries_total{code="202"}`], m[`bosun_webhook_deliveries_total{code="401"}`])
	}
	if m[`bosun_forge_api_errors_total{reason="502"}`] != 1 {
		t.Errorf("forge API errors (502) = %v, want 1", m[`bosun_forge_api_errors_total{reason="502"}`])
	}

	// A deployer logs in and syncs a commit that no webhook announced.
	gh.LoginAs(testbed.OAuthUser{Login: "alice", Orgs: []string{"acme"}, Teams: []string{"acme/ops"}})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(dashURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	home, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || !strings.Contains(string(home), "github:alice") || !strings.Contains(string(home), "Sync now") {
		t.Fatalf("home after login: %d at %s:\n%s", resp.StatusCode, resp.Request.URL, home)
	}
	csrf := between(string(home), `name="csrf" value="`, `"`)
	third := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": strings.Replace(service(v1), "drain_timeout: 1", "drain_timeout: 2", 1)})
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if resp, err := browser.PostForm(dashURL+"/repos/fleet/sync", url.Values{}); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sync without the CSRF token: %v %v, want 403", resp, err)
	}
	if code, _ := postWith(t, dashURL+"/api/v1/repos/fleet/sync", viewer); code != http.StatusForbidden {
		t.Errorf("sync with a viewer token: %d, want 403", code)
	}
	resp, err = browser.PostForm(dashURL+"/repos/fleet/sync", url.Values{"csrf": {csrf}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sync: %v %v, want 303", resp, err)
	}
	waitFor(t, 3*time.Minute, "v1 serving after the sync", serves("v1"))
	waitFor(t, time.Minute, "bosun/deploy success on the synced commit", func() bool {
		s := lastStatus(gh, third, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})

	// The API: the sync's deployment, by server, with its actor on every
	// event.
	code, body := get(dashURL, "/api/v1/deployments?server="+srv.Name, viewer)
	var list dashboard.DeploymentList
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list.Deployments) != 3 {
		t.Fatalf("deployments on %s: %d %v, want 3:\n%s", srv.Name, code, err, body)
	}
	dep := list.Deployments[0]
	if dep.Trigger != "sync by github:alice" || dep.Commit != third || dep.Status != "deployed" {
		t.Errorf("newest deployment = %+v, want the sync of %s by github:alice, deployed", dep, third)
	}
	code, body = get(dashURL, fmt.Sprintf("/api/v1/deployments/%d/events", dep.ID), viewer)
	var evs struct{ Events []dashboard.Event }
	if err := json.Unmarshal([]byte(body), &evs); code != http.StatusOK || err != nil || len(evs.Events) < 3 {
		t.Fatalf("events: %d %v %s", code, err, body)
	}
	for _, e := range evs.Events {
		if e.Actor != "github:alice" {
			t.Errorf("event %s %s of the sync has actor %q, want github:alice", e.Host, e.Step, e.Actor)
		}
	}
	if _, body := get(dashURL, fmt.Sprintf("/api/v1/deployments/%d/events", list.Deployments[1].ID), viewer); strings.Contains(body, `"actor"`) {
		t.Errorf("the push's deployment has an actor: %s", body)
	}
	if code, _ := get(dashURL, "/api/v1/deployments?server=server-99", viewer); code != http.StatusOK {
		t.Errorf("another server: %d", code)
	}
	if m := scrape(); m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`] != 3 {
		t.Errorf("deployments after the sync = %v, want 3", m[`bosun_deployments_total{repo="fleet",service="shop",status="deployed"}`])
	}

	// The deployment keeps the plan that caused it.
	code, body = get(dashURL, fmt.Sprintf("/api/v1/deployments/%d", dep.ID), viewer)
	var one dashboard.Deployment
	if err := json.Unmarshal([]byte(body), &one); code != http.StatusOK || err != nil || !strings.Contains(one.Plan, "shop") || !strings.Contains(one.Plan, srv.Name) {
		t.Errorf("deployment %d: %d %v, want its plan naming shop on %s:\n%s", dep.ID, code, err, srv.Name, body)
	}

	// The fleet, by tag, with the daemon's live check of the server (over
	// SSH, in the background), and bosun status --server reading it.
	var fl dashboard.Fleet
	waitFor(t, 2*time.Minute, "the fleet's live check", func() bool {
		code, body := get(dashURL, "/api/v1/fleet?tag=eu-west", viewer)
		fl = dashboard.Fleet{}
		return code == http.StatusOK && json.Unmarshal([]byte(body), &fl) == nil && fl.LiveCheckedAt != nil
	})
	if len(fl.Servers) != 1 || fl.Servers[0].Name != srv.Name || fmt.Sprint(fl.Servers[0].Tags) != "[eu-west]" || len(fl.Targets) != 1 {
		t.Fatalf("the fleet by tag eu-west: %+v", fl)
	}
	if tg := fl.Targets[0]; tg.Service != "shop" || tg.Health != "running" || !strings.HasPrefix(tg.Live, "running") || tg.Image != v1 || tg.Commit != third || tg.Rollout != "ok" {
		t.Errorf("shop on %s in the fleet: %+v; want running (rollout ok, live running), %s at %s", srv.Name, tg, v1, third)
	}
	if _, body := get(dashURL, "/api/v1/fleet?tag=us-east", viewer); !strings.Contains(body, `"targets": []`) {
		t.Errorf("the fleet by a tag no server has:\n%s", body)
	}
	code, out, errOut := runCLI(t, map[string]string{"BOSUN_TOKEN": viewer}, "status", "--server", dashURL)
	if code != 0 || !regexp.MustCompile(`fleet\s+shop\s+`+regexp.QuoteMeta(srv.Name)+`\s+\S+\s+\S+\s+`+regexp.QuoteMeta(third[:12])+`\s+running\s+running`).MatchString(out) || !strings.Contains(out, "Live check:") {
		t.Errorf("bosun status --server: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, map[string]string{"BOSUN_TOKEN": "bosun_wrong"}, "status", "--server", dashURL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("bosun status --server with a bad token: exit %d %s", code, errOut)
	}
}

// dashboardDaemon is `bosun serve` with the dashboard on its own address,
// over test servers: the webhooks from the fake GitHub, login through its
// OAuth App. Roles: org acme is viewer, team acme/ops deployer, user ada
// admin.
type dashboardDaemon struct {
	*daemonUnderTest
	URL      string // the dashboard's base URL
	DSN      string // the store
	Viewer   string // an API token with the viewer role ("prometheus")
	Deployer string // an API token with the deployer role ("ci")
}

// startDashboard writes bosun.yaml for repository fleet at repoDir (branch
// master, forge repository forgeRepo, no polling) and runs `bosun serve`.
func startDashboard(t *testing.T, bed *testbed.Bed, gh *testbed.FakeGitHub, repoDir, forgeRepo, proxyImage string) *dashboardDaemon {
	t.Helper()
	gh.SetOAuthApp("Iv1.e2e", "e2e-oauth-secret")
	// The dashboard's own address, known before the start: its base URL
	// is the OAuth callback's.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dashAddr := l.Addr().String()
	l.Close()
	dd := &dashboardDaemon{URL: "http://" + dashAddr}

	dir := t.TempDir()
	dd.DSN = "sqlite:///" + filepath.Join(dir, "state.db")
	for role, name := range map[string]string{"viewer": "prometheus", "deployer": "ci"} {
		code, out, errOut := runCLI(t, map[string]string{"USER": "ops"}, "token", "create", "--state", dd.DSN, "--role", role, name)
		if code != 0 {
			t.Fatalf("token create: exit %d %s", code, errOut)
		}
		if role == "viewer" {
			dd.Viewer = strings.TrimSpace(out)
		} else {
			dd.Deployer = strings.TrimSpace(out)
		}
	}

	cfgPath := filepath.Join(dir, "bosun.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state: %s
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: github, base_url: %s, token_env: GITHUB_TOKEN}
grace: 1m
log: {format: json, level: info}
repos:
  - {name: fleet, url: %s, branch: master, poll: 1h, forge_repo: %s}
dashboard:
  listen: %s
  base_url: %s
  github: {client_id: Iv1.e2e, client_secret_env: BOSUN_OAUTH_SECRET, web_url: %s, api_url: %s}
  roles:
    - {org: acme, role: viewer}
    - {org: acme, team: ops, role: deployer}
    - {user: ada, role: admin}
`, dd.DSN, filepath.Join(dir, "data"), bed.KeyPath, bed.KnownHostsPath, gh.BaseURL(), repoDir, forgeRepo, dashAddr, dd.URL, gh.WebURL(), gh.BaseURL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	dd.daemonUnderTest = startServe(t, cfgPath, map[string]string{
		"BOSUN_WEBHOOK_SECRET": hookSecret,
		"GITHUB_TOKEN":         "ghp_e2etoken",
		"BOSUN_OAUTH_SECRET":   "e2e-oauth-secret",
		"BOSUN_PROXY_IMAGE":    proxyImage,
	})
	return dd
}

func postWith(t *testing.T, u, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

// parseMetrics reads Prometheus' text format into "name{labels}" → value.
func parseMetrics(body string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
