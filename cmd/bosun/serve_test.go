package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"
	"golang.org/x/crypto/ssh"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/internal/testutil"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

const hookSecret = "e2e-webhook-secret"

// daemonUnderTest is `bosun serve` running in-process.
type daemonUnderTest struct {
	url  string // http://127.0.0.1:PORT
	logs *testutil.SyncBuffer
	stop context.CancelFunc
	done chan int
}

// startServe runs `bosun serve --config path` and returns once it listens.
func startServe(t testing.TB, path string, environ map[string]string) *daemonUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	d := &daemonUnderTest{logs: &testutil.SyncBuffer{}, stop: cancel, done: make(chan int, 1)}
	e := env{getenv: func(k string) string { return environ[k] }, stdin: strings.NewReader(""), stdout: io.Discard, stderr: pw}
	exited := make(chan struct{})
	go func() {
		code := run(ctx, []string{"serve", "--config", path}, e)
		pw.Close()
		d.done <- code
		close(exited)
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "bosun serve started" {
				listening <- rec.Listen
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			t.Error("bosun serve did not stop within 2 minutes of its context ending")
		}
		if t.Failed() {
			t.Logf("bosun serve logs:\n%s", d.logs.String())
		}
	})
	select {
	case addr := <-listening:
		d.url = "http://" + addr
	case code := <-d.done:
		t.Fatalf("bosun serve exited with %d before listening:\n%s", code, d.logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("bosun serve did not listen within a minute:\n%s", d.logs.String())
	}
	return d
}

// hook delivers a signed GitHub webhook and returns the status code.
func (d *daemonUnderTest) hook(t testing.TB, event, id string, payload any) int {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.url+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(webhook.Sign([]byte(hookSecret), body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func pushEvent(repo, branch, before, after string) *github.PushEvent {
	return &github.PushEvent{
		Ref: github.String("refs/heads/" + branch), Before: github.String(before), After: github.String(after),
		Repo: &github.PushEventRepository{FullName: github.String(repo), Name: github.String(repo[strings.Index(repo, "/")+1:])},
	}
}

func pullRequestEvent(repo, action string, number int, base, head string) *github.PullRequestEvent {
	return &github.PullRequestEvent{
		Action: github.String(action), Number: github.Int(number),
		Repo: &github.Repository{FullName: github.String(repo)},
		PullRequest: &github.PullRequest{
			Number: github.Int(number),
			Base:   &github.PullRequestBranch{Ref: github.String(base)},
			Head:   &github.PullRequestBranch{Ref: github.String("bump"), SHA: github.String(head)},
		},
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serving returns the body of GET / on a server's proxy for host.
func serving(addr, host string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = host
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// holds lists the services of repository fleet held in the store at dsn.
func holds(t testing.TB, dsn string) []string {
	t.Helper()
	st, err := state.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs, err := st.ListHolds(t.Context(), "fleet")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.Repo+"/"+h.Service)
	}
	return out
}

// lastStatus is the newest status posted for sha in context, or nil.
func lastStatus(f *testbed.FakeGitHub, sha, context string) *testbed.PostedStatus {
	var last *testbed.PostedStatus
	for _, s := range f.Statuses() {
		if s.SHA == sha && s.GetContext() == context {
			last = &s
		}
	}
	return last
}

func TestServe_EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	v1 := bed.PushApp(t, "shop", "v1", testbed.AppOK)
	v2 := bed.PushApp(t, "shop", "v2", testbed.AppOK)
	proxyImage := bed.PushProxy(t)
	gh := testbed.NewFakeGitHub(t)

	const forgeRepo = "acme/fleet"
	const secretValue = "e2e-secret-value-5f1c"
	fleet := "servers:\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s, user: root}\n", s.Name, host, port)
	}
	service := func(image string) string {
		return fmt.Sprintf(`service: shop
image: %s
servers: [server-1, server-2]
proxy:
  host: shop.test
  app_port: 80
  healthcheck: {path: /up, interval: 1, timeout: 2}
env:
  clear: {APP_NOTE: e2e}
  secret: [SHOP_SECRET]
deploy_timeout: 30
drain_timeout: 2
retain_containers: 3
`, image)
	}

	dir := t.TempDir()
	repoDir := filepath.Join(dir, "fleet")
	first := testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": fleet, "services/shop.yml": service(v1)})

	cfgPath := filepath.Join(dir, "bosun.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state: sqlite:///%s
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: github, base_url: %s, token_env: GITHUB_TOKEN}
secrets: {env: [SHOP_SECRET]}
grace: 1m
log: {format: json, level: info}
repos:
  - name: fleet
    url: %s
    branch: master
    poll: 1h
    forge_repo: %s
`, filepath.Join(dir, "state.db"), filepath.Join(dir, "data"), bed.KeyPath, bed.KnownHostsPath, gh.BaseURL(), repoDir, forgeRepo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, cfgPath, map[string]string{
		"BOSUN_WEBHOOK_SECRET": hookSecret,
		"GITHUB_TOKEN":         "ghp_e2etoken",
		"SHOP_SECRET":          secretValue,
		"BOSUN_PROXY_IMAGE":    proxyImage,
	})

	servesEverywhere := func(version string) func() bool {
		return func() bool {
			for _, s := range bed.Servers {
				if !strings.Contains(serving(s.HTTPAddr, "shop.test"), version) {
					return false
				}
			}
			return true
		}
	}

	// Start-up: the daemon deploys the branch head it finds.
	waitFor(t, 3*time.Minute, "v1 serving on both servers after start", servesEverywhere("v1"))
	waitFor(t, 30*time.Second, "bosun/deploy success on the first commit", func() bool {
		s := lastStatus(gh, first, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
	if code := d.hook(t, "ping", "ping-1", map[string]any{"zen": "hi"}); code != http.StatusOK {
		t.Fatalf("ping: %d", code)
	}

	// A pull request that bumps the image: one plan comment, bosun/plan success.
	prHead := gitCommitOnBranch(t, repoDir, "bump", map[string]string{"services/shop.yml": service(v2)})
	if code := d.hook(t, "pull_request", "pr-1", pullRequestEvent(forgeRepo, "opened", 7, "master", prHead)); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitFor(t, time.Minute, "bosun/plan on the pull request head", func() bool { return lastStatus(gh, prHead, webhook.ContextPlan) != nil })
	if s := lastStatus(gh, prHead, webhook.ContextPlan); s.GetState() != "success" || !strings.Contains(s.GetDescription(), "2 to change") {
		t.Errorf("bosun/plan = %s %q, want success \"2 to change\"", s.GetState(), s.GetDescription())
	}
	comments := gh.Comments(forgeRepo, 7)
	if len(comments) != 1 || !strings.Contains(comments[0], "shop:v2") {
		t.Fatalf("want one plan comment naming shop:v2, got %q", comments)
	}

	// Another push to the pull request: the same comment, edited.
	prHead2 := gitCommitOnBranch(t, repoDir, "bump", map[string]string{"services/shop.yml": strings.Replace(service(v2), "APP_NOTE: e2e", "APP_NOTE: e2e-2", 1)})
	if code := d.hook(t, "pull_request", "pr-2", pullRequestEvent(forgeRepo, "synchronize", 7, "master", prHead2)); code != http.StatusAccepted {
		t.Fatalf("pull_request synchronize: %d", code)
	}
	waitFor(t, time.Minute, "bosun/plan on the second head", func() bool { return lastStatus(gh, prHead2, webhook.ContextPlan) != nil })
	comments = gh.Comments(forgeRepo, 7)
	if len(comments) != 1 || !strings.Contains(comments[0], "e2e-2") {
		t.Fatalf("want the one comment edited to the new plan, got %d comments: %q", len(comments), comments)
	}
	// A replayed delivery is accepted and does nothing.
	before := len(gh.Calls())
	if code := d.hook(t, "pull_request", "pr-2", pullRequestEvent(forgeRepo, "synchronize", 7, "master", prHead2)); code != http.StatusAccepted {
		t.Fatalf("replayed delivery: %d", code)
	}

	// Merge: master moves to the pull request head; the push deploys v2,
	// even though the forge fails the first status call (it is retried).
	gitFastForward(t, repoDir, "master", prHead2)
	gh.FailNext(1)
	if code := d.hook(t, "push", "push-merge", pushEvent(forgeRepo, "master", first, prHead2)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	waitFor(t, 3*time.Minute, "v2 serving on both servers after the merge", servesEverywhere("v2"))
	waitFor(t, time.Minute, "bosun/deploy success on the merge", func() bool {
		s := lastStatus(gh, prHead2, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
	sawPending := false
	for _, s := range gh.Statuses() {
		if s.SHA == prHead2 && s.GetContext() == webhook.ContextDeploy && s.GetState() == "pending" {
			sawPending = true
		}
	}
	if !sawPending {
		t.Error("no bosun/deploy pending status before the success")
	}
	for _, c := range gh.Calls()[before:] {
		if strings.Contains(c, "#7") {
			t.Errorf("the replayed delivery planned again: %s", c)
		}
	}

	// Revert: back to v1, from the retained containers.
	v1Containers := map[string]string{}
	for _, s := range bed.Servers {
		v1Containers[s.Name] = strings.TrimSpace(s.Exec(t, "docker", "ps", "-aq", "--filter", "label=bosun.service=shop", "--filter", "status=exited"))
	}
	revert := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service(v1)})
	if code := d.hook(t, "push", "push-revert", pushEvent(forgeRepo, "master", prHead2, revert)); code != http.StatusAccepted {
		t.Fatalf("push revert: %d", code)
	}
	waitFor(t, 3*time.Minute, "v1 serving again after the revert", servesEverywhere("v1"))
	waitFor(t, time.Minute, "bosun/deploy success on the revert", func() bool {
		s := lastStatus(gh, revert, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
	for _, s := range bed.Servers {
		running := strings.TrimSpace(s.Exec(t, "docker", "ps", "-q", "--filter", "label=bosun.service=shop"))
		if running == "" || !strings.Contains(v1Containers[s.Name], running) {
			t.Errorf("%s: v1 runs in container %q, not the retained one (%q)", s.Name, running, v1Containers[s.Name])
		}
	}

	// A hold keeps v1 against a push of v2; a push that asks for the held
	// version again ends it.
	dsn := "sqlite:///" + filepath.Join(dir, "state.db")
	if code, out, errs := runCLI(t, nil, "hold", "shop", "--name", "fleet", "--state", dsn); code != 0 {
		t.Fatalf("hold: exit %d\n%s%s", code, out, errs)
	}
	heldPush := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service(v2)})
	if code := d.hook(t, "push", "push-held", pushEvent(forgeRepo, "master", revert, heldPush)); code != http.StatusAccepted {
		t.Fatalf("push while held: %d", code)
	}
	waitFor(t, time.Minute, "bosun/deploy success on the held push", func() bool {
		s := lastStatus(gh, heldPush, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
	if !servesEverywhere("v1")() || len(holds(t, dsn)) != 1 {
		t.Fatalf("a push while held deployed v2 or ended the hold (holds %v)", holds(t, dsn))
	}
	caughtUp := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service(v1)})
	if code := d.hook(t, "push", "push-caught-up", pushEvent(forgeRepo, "master", heldPush, caughtUp)); code != http.StatusAccepted {
		t.Fatalf("push of the held version: %d", code)
	}
	waitFor(t, time.Minute, "the hold ended by a push of the held version", func() bool { return len(holds(t, dsn)) == 0 })

	// A bad config commit: failure status naming file:line, nothing deployed.
	bad := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": strings.Replace(service(v2), "servers: [server-1, server-2]", "servers: [server-1, server-9]", 1)})
	if code := d.hook(t, "push", "push-bad", pushEvent(forgeRepo, "master", caughtUp, bad)); code != http.StatusAccepted {
		t.Fatalf("push bad: %d", code)
	}
	waitFor(t, time.Minute, "bosun/deploy failure on the bad commit", func() bool {
		s := lastStatus(gh, bad, webhook.ContextDeploy)
		return s != nil && s.GetState() == "failure"
	})
	if s := lastStatus(gh, bad, webhook.ContextDeploy); !strings.Contains(s.GetDescription(), "services/shop.yml:") {
		t.Errorf("failure status %q does not name file:line", s.GetDescription())
	}
	if !servesEverywhere("v1")() {
		t.Error("the previous version stopped serving after a bad commit")
	}

	// No secret value reached the forge or the logs.
	for _, c := range append(gh.Comments(forgeRepo, 7), d.logs.String()) {
		if strings.Contains(c, secretValue) || strings.Contains(c, "ghp_e2etoken") {
			t.Fatal("a secret value reached a comment or the logs")
		}
	}
	for _, s := range gh.Statuses() {
		if strings.Contains(s.GetDescription(), secretValue) {
			t.Fatal("a secret value reached a status")
		}
	}
}

// TestServe_killDuringRollout kills `bosun serve` with SIGKILL while it rolls
// out, with a newer push accepted just before, and restarts it: no accepted
// delivery is lost, the interrupted deployment is marked as such, and the
// servers converge to the newest commit.
func TestServe_killDuringRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bin := testbed.BosunBinary(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	images := map[string]string{}
	for _, v := range []string{"v1", "v2", "v3"} {
		images[v] = bed.PushApp(t, "shop", v, testbed.AppOK)
	}
	proxyImage := bed.PushProxy(t)

	fleet := "servers:\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s}\n", s.Name, host, port)
	}
	service := func(v string) string {
		return "service: shop\nimage: " + images[v] + "\nservers: [server-1, server-2]\nproxy: {host: shop.test, healthcheck: {path: /up, interval: 1}}\ndrain_timeout: 1\n"
	}
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "fleet")
	v1 := testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": fleet, "services/shop.yml": service("v1")})
	dbPath := filepath.Join(dir, "state.db")
	cfgPath := filepath.Join(dir, "bosun.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state: sqlite:///%s
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
repos: [{name: fleet, url: %s, branch: master, poll: 1h, forge_repo: acme/fleet}]
`, dbPath, filepath.Join(dir, "data"), bed.KeyPath, bed.KnownHostsPath, repoDir)), 0o644)

	start := func() (*exec.Cmd, *daemonUnderTest) {
		return startServeProcess(t, bin, cfgPath, "BOSUN_WEBHOOK_SECRET="+hookSecret, "BOSUN_PROXY_IMAGE="+proxyImage)
	}
	servesEverywhere := func(version string) func() bool {
		return func() bool {
			for _, s := range bed.Servers {
				if !strings.Contains(serving(s.HTTPAddr, "shop.test"), version) {
					return false
				}
			}
			return true
		}
	}

	cmd, d := start()
	waitFor(t, 3*time.Minute, "v1 serving", servesEverywhere("v1"))

	st, err := state.Open(t.Context(), "sqlite:///"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v2 := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service("v2")})
	if code := d.hook(t, "push", "kill-v2", pushEvent("acme/fleet", "master", v1, v2)); code != http.StatusAccepted {
		t.Fatalf("push v2: %d", code)
	}
	var rollout int64
	waitFor(t, time.Minute, "the v2 rollout to start", func() bool {
		ds, err := st.ListDeployments(t.Context(), state.DeploymentFilter{Commit: v2, Status: state.StatusDeploying})
		if err == nil && len(ds) > 0 {
			rollout = ds[0].ID
		}
		return rollout != 0
	})
	v3 := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service("v3")})
	if code := d.hook(t, "push", "kill-v3", pushEvent("acme/fleet", "master", v2, v3)); code != http.StatusAccepted {
		t.Fatalf("push v3: %d", code)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	for _, id := range []string{"kill-v2", "kill-v3"} {
		if _, err := st.GetDelivery(t.Context(), id); err != nil {
			t.Errorf("accepted delivery %s lost: %v", id, err)
		}
	}
	start()
	waitFor(t, 4*time.Minute, "v3, the newest commit, serving after the restart", servesEverywhere("v3"))
	waitFor(t, 2*time.Minute, "the interrupted deployment marked", func() bool {
		dep, err := st.GetDeployment(t.Context(), rollout)
		return err == nil && dep.Status != state.StatusDeploying
	})
	dep, _ := st.GetDeployment(t.Context(), rollout)
	if dep.Status != state.StatusFailed || !strings.Contains(dep.Error, "interrupted") {
		t.Errorf("deployment %d: %s %q, want it marked failed as interrupted (a deployed one means the kill came too late to test anything)", rollout, dep.Status, dep.Error)
	}
}

// startServeProcess runs `bosun serve --config cfgPath` as its own process
// (so that a test can kill -9 it) with environ added to the environment,
// and returns once it listens. Its logs are collected in the result.
func startServeProcess(t *testing.T, bin, cfgPath string, environ ...string) (*exec.Cmd, *daemonUnderTest) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), environ...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &daemonUnderTest{logs: &testutil.SyncBuffer{}}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			d.logs.Write([]byte(sc.Text() + "\n"))
			var rec struct{ Msg, Listen string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "bosun serve started" {
				listening <- rec.Listen
			}
		}
	}()
	select {
	case addr := <-listening:
		d.url = "http://" + addr
	case <-time.After(time.Minute):
		t.Fatalf("bosun serve did not start:\n%s", d.logs.String())
	}
	return cmd, d
}

// TestServe_killBetweenBootBatches kills `bosun serve` with SIGKILL in the
// middle of a rollout, between two boot batches (boot limit 1: server-1 has
// switched, server-2 waits its turn), and sends no new push: the restarted
// daemon, or the surviving one of two on one PostgreSQL, picks the job up
// once its lease runs out and converges the fleet; the dead run's
// deployment is marked interrupted.
func TestServe_killBetweenBootBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bin := testbed.BosunBinary(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		images[v] = bed.PushApp(t, "shop", v, testbed.AppOK)
	}
	proxyImage := bed.PushProxy(t)
	fleet := "servers:\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s}\n", s.Name, host, port)
	}
	environ := []string{"BOSUN_WEBHOOK_SECRET=" + hookSecret, "BOSUN_PROXY_IMAGE=" + proxyImage}

	for _, tc := range []struct {
		name, service string
		replicas      bool // two daemons on one PostgreSQL, or one on SQLite restarted
	}{
		{"restart on SQLite", "shopa", false},
		{"survivor of two on PostgreSQL", "shopb", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vhost := tc.service + ".test"
			service := func(v string) string {
				return "service: " + tc.service + "\nimage: " + images[v] + "\nservers: [server-1, server-2]\nproxy: {host: " + vhost + ", healthcheck: {path: /up, interval: 1}}\ndrain_timeout: 1\nboot: {limit: 1, wait: 20}\n"
			}
			serves := func(s *testbed.Server, v string) bool { return strings.Contains(serving(s.HTTPAddr, vhost), v) }
			dir := t.TempDir()
			repoDir := filepath.Join(dir, "fleet")
			v1 := testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": fleet, "services/" + tc.service + ".yml": service("v1")})
			dsn := "sqlite:///" + filepath.Join(dir, "state.db")
			if tc.replicas {
				dsn = testbed.Postgres(t)
			}
			config := func(name string) string {
				path := filepath.Join(dir, name+".yaml")
				os.WriteFile(path, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state: %q
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
repos: [{name: fleet, url: %s, branch: master, poll: 1h, forge_repo: acme/fleet}]
`, dsn, filepath.Join(dir, "data-"+name), bed.KeyPath, bed.KnownHostsPath, repoDir)), 0o644)
				return path
			}
			type daemon struct {
				cmd *exec.Cmd
				d   *daemonUnderTest
				cfg string
			}
			var daemons []daemon
			for _, name := range []string{"a", "b"}[:map[bool]int{false: 1, true: 2}[tc.replicas]] {
				cfg := config(name)
				cmd, d := startServeProcess(t, bin, cfg, environ...)
				daemons = append(daemons, daemon{cmd, d, cfg})
			}
			waitFor(t, 3*time.Minute, "v1 serving on both servers", func() bool { return serves(bed.Servers[0], "v1") && serves(bed.Servers[1], "v1") })

			st, err := state.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			v2 := testbed.Commit(t, repoDir, "change", map[string]string{"services/" + tc.service + ".yml": service("v2")})
			if code := daemons[0].d.hook(t, "push", "push-v2", pushEvent("acme/fleet", "master", v1, v2)); code != http.StatusAccepted {
				t.Fatalf("push v2: %d", code)
			}
			waitFor(t, 2*time.Minute, "server-1 switched to v2", func() bool { return serves(bed.Servers[0], "v2") })
			victim := -1
			for i, d := range daemons {
				if strings.Contains(d.d.logs.String(), `"msg":"rollout started"`) && strings.Contains(d.d.logs.String(), v2) {
					victim = i
				}
			}
			if victim < 0 {
				t.Fatal("no daemon logged the v2 rollout")
			}
			ds, err := st.ListDeployments(t.Context(), state.DeploymentFilter{Commit: v2, Status: state.StatusDeploying})
			if err != nil || len(ds) != 1 {
				t.Fatalf("deployments of v2 deploying: %v, %v; want one", ds, err)
			}
			if !serves(bed.Servers[1], "v1") {
				t.Fatal("server-2 already serves v2: the kill would come too late to test anything")
			}
			if err := daemons[victim].cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			daemons[victim].cmd.Wait()
			killed := time.Now()
			if !serves(bed.Servers[1], "v1") {
				t.Fatal("server-2 switched before the kill landed")
			}
			if !tc.replicas {
				startServeProcess(t, bin, daemons[0].cfg, environ...)
			}
			// No new push, no new commit: the job itself runs again.
			waitFor(t, 3*time.Minute, "v2 serving on both servers without a new push", func() bool { return serves(bed.Servers[0], "v2") && serves(bed.Servers[1], "v2") })
			t.Logf("converged %s after the kill", time.Since(killed).Round(time.Second))
			waitFor(t, 2*time.Minute, "the killed run's deployment marked", func() bool {
				dep, err := st.GetDeployment(t.Context(), ds[0].ID)
				return err == nil && dep.Status != state.StatusDeploying
			})
			if dep, _ := st.GetDeployment(t.Context(), ds[0].ID); dep.Status != state.StatusFailed || !strings.Contains(dep.Error, "interrupted") {
				t.Errorf("deployment %d: %s %q, want failed as interrupted", dep.ID, dep.Status, dep.Error)
			}
		})
	}
}

// TestServe_configReload edits the config file of a running daemon: a valid
// change (a second repository) takes effect, an invalid one is refused
// with the running config kept.
func TestServe_configReload(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"one", "two"} {
		testbed.Commit(t, filepath.Join(dir, name), "change", map[string]string{"fleet.yml": "servers:\n  web-1: {host: 10.0.0.1}\n"})
	}
	cfg := func(repos ...string) string {
		s := fmt.Sprintf("listen: 127.0.0.1:0\nstate: sqlite:///%s/state.db\ndata_dir: %s/data\nssh: {key: %s/id_ed25519}\nwebhook: {secret_env: BOSUN_WEBHOOK_SECRET}\nrepos:\n", dir, dir, dir)
		for _, r := range repos {
			s += fmt.Sprintf("  - {name: %s, url: %s, branch: master, poll: 1h}\n", r, filepath.Join(dir, r))
		}
		return s
	}
	// The daemon needs an SSH key even before it has a server to reach.
	_, priv, _ := ed25519.GenerateKey(nil)
	pemBlock, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(pemBlock), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bosun.yaml")
	if err := os.WriteFile(path, []byte(cfg("one")), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, path, map[string]string{"BOSUN_WEBHOOK_SECRET": hookSecret})
	ready := func() bool {
		resp, err := http.Get(d.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	waitFor(t, 30*time.Second, "readyz with one repository", ready)

	// Replace the file as editors do: write a new one and rename it over.
	replace := func(body string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace(cfg("one", "two"))
	waitFor(t, 30*time.Second, "the reload", func() bool { return strings.Contains(d.logs.String(), `"msg":"config reloaded"`) })
	if _, err := os.Stat(filepath.Join(dir, "data", "repos", "two")); err != nil {
		waitFor(t, 30*time.Second, "a clone of the added repository", func() bool {
			_, err := os.Stat(filepath.Join(dir, "data", "repos", "two"))
			return err == nil
		})
	}
	replace(cfg("one", "two") + "unknown_key: 1\n")
	waitFor(t, 30*time.Second, "the refusal", func() bool {
		return strings.Contains(d.logs.String(), `"msg":"config change refused; keeping the running config"`)
	})
	if !strings.Contains(d.logs.String(), "unknown_key") {
		t.Errorf("the refusal does not name the bad key:\n%s", d.logs.String())
	}
	waitFor(t, 30*time.Second, "readyz still fine", ready)
}

// TestServe_unreachableHostRetries stops server-2's sshd and pushes a new
// commit: an unreachable host is transient, so bosun/deploy stays pending
// (naming the host) and the sync is retried with backoff; once sshd is
// back, the retry converges the fleet without a new push.
func TestServe_unreachableHostRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("needs test servers")
	}
	testbed.RequireDocker(t)
	bed := testbed.Start(t, testbed.Options{Servers: 2})
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		images[v] = bed.PushApp(t, "shop", v, testbed.AppOK)
	}
	proxyImage := bed.PushProxy(t)
	gh := testbed.NewFakeGitHub(t)
	fleet := "servers:\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s}\n", s.Name, host, port)
	}
	service := func(v string) string {
		return "service: shop\nimage: " + images[v] + "\nservers: [server-1, server-2]\nproxy: {host: shop.test, healthcheck: {path: /up, interval: 1}}\ndrain_timeout: 1\n"
	}
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "fleet")
	v1 := testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": fleet, "services/shop.yml": service("v1")})
	cfgPath := filepath.Join(dir, "bosun.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state: sqlite:///%s
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: github, base_url: %s, token_env: GITHUB_TOKEN}
repos: [{name: fleet, url: %s, branch: master, poll: 1h, forge_repo: acme/fleet}]
`, filepath.Join(dir, "state.db"), filepath.Join(dir, "data"), bed.KeyPath, bed.KnownHostsPath, gh.BaseURL(), repoDir)), 0o644)
	d := startServe(t, cfgPath, map[string]string{"BOSUN_WEBHOOK_SECRET": hookSecret, "GITHUB_TOKEN": "ghp_x", "BOSUN_PROXY_IMAGE": proxyImage})
	serves := func(v string) func() bool {
		return func() bool {
			for _, s := range bed.Servers {
				if !strings.Contains(serving(s.HTTPAddr, "shop.test"), v) {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 3*time.Minute, "v1 serving on both servers", serves("v1"))

	bed.Servers[1].StopSSH(t)
	sshdStopped := true
	defer func() {
		if sshdStopped {
			bed.Servers[1].StartSSH(t)
		}
	}()
	v2 := testbed.Commit(t, repoDir, "change", map[string]string{"services/shop.yml": service("v2")})
	if code := d.hook(t, "push", "push-v2", pushEvent("acme/fleet", "master", v1, v2)); code != http.StatusAccepted {
		t.Fatalf("push v2: %d", code)
	}
	// Two failed attempts: the first and a retry.
	waitFor(t, 2*time.Minute, "a retry of the rollout to the unreachable host", func() bool {
		return strings.Count(d.logs.String(), `"msg":"deploy failed; will retry"`) >= 2
	})
	if strings.Contains(d.logs.String(), "waiting for a new commit") {
		t.Fatal("an unreachable host was taken as a final failure")
	}
	for _, s := range gh.Statuses() {
		if s.SHA == v2 && s.GetContext() == webhook.ContextDeploy && s.GetState() != "pending" {
			t.Fatalf("bosun/deploy on v2 went %s (%q) while server-2 was unreachable; want pending", s.GetState(), s.GetDescription())
		}
	}
	if st := lastStatus(gh, v2, webhook.ContextDeploy); st == nil || !strings.Contains(st.GetDescription(), "server-2") {
		t.Errorf("bosun/deploy on v2 = %v; want pending naming server-2", st)
	}

	bed.Servers[1].StartSSH(t)
	sshdStopped = false
	waitFor(t, 4*time.Minute, "v2 serving on both servers after sshd is back, with no new push", serves("v2"))
	waitFor(t, time.Minute, "bosun/deploy success on v2", func() bool {
		s := lastStatus(gh, v2, webhook.ContextDeploy)
		return s != nil && s.GetState() == "success"
	})
}
