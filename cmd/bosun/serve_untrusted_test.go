package main

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/webhook"
)

// prDaemon runs `bosun serve` in-process on a config repository whose
// tracked branch deploys nothing (no server is reached), reporting to a fake
// GitHub. extraConfig is appended to bosun.yaml; environ is the daemon's
// environment.
func prDaemon(t *testing.T, extraConfig string, environ map[string]string) (d *daemonUnderTest, gh *testbed.FakeGitHub, repoDir string) {
	t.Helper()
	dir := t.TempDir()
	repoDir = filepath.Join(dir, "fleet")
	testbed.Commit(t, repoDir, "change", map[string]string{"fleet.yml": "servers:\n  web-1: {host: 10.0.0.1}\n"})
	_, priv, _ := ed25519.GenerateKey(nil)
	pemBlock, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(pemBlock), 0o600); err != nil {
		t.Fatal(err)
	}
	gh = testbed.NewFakeGitHub(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state: sqlite:///%s/state.db
data_dir: %s/data
ssh: {key: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: github, base_url: %s, token_env: GITHUB_TOKEN}
repos:
  - {name: fleet, url: %s, branch: master, poll: 1h, forge_repo: acme/fleet}
%s`, dir, dir, keyPath, gh.BaseURL(), repoDir, extraConfig)
	path := filepath.Join(dir, "bosun.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServe(t, path, environ), gh, repoDir
}

// TestServe_planCommentIsNoSecretOracle: a pull request names the daemon's
// own webhook secret and a service secret as env.secret, and puts guesses
// in clear env. The plan comment must read the same for a right guess as
// for a wrong one, and the daemon's own secret must not resolve at all.
func TestServe_planCommentIsNoSecretOracle(t *testing.T) {
	const dbPassword = "db-pass-7731"
	secretsFile := filepath.Join(t.TempDir(), "secrets.env")
	if err := os.WriteFile(secretsFile, []byte("SHOP_DB_PASSWORD="+dbPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, gh, repoDir := prDaemon(t, "secrets: {files: ["+secretsFile+"]}\n", map[string]string{
		"BOSUN_WEBHOOK_SECRET": hookSecret,
		"GITHUB_TOKEN":         "ghp_oracletoken",
	})
	// First pull request: the secrets are named, so bosun looks them up.
	svc := `service: shop
image: registry.test/shop:v1
servers: [web-1]
env:
  clear: {A: b}
  secret: ["W:BOSUN_WEBHOOK_SECRET", "D:SHOP_DB_PASSWORD"]
`
	head := gitCommitOnBranch(t, repoDir, "probe", map[string]string{"services/shop.yml": svc})
	if code := d.hook(t, "pull_request", "pr-1", pullRequestEvent("acme/fleet", "opened", 9, "master", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitFor(t, time.Minute, "bosun/plan on the pull request", func() bool { return lastStatus(gh, head, webhook.ContextPlan) != nil })
	comments := gh.Comments("acme/fleet", 9)
	if len(comments) != 1 {
		t.Fatalf("%d comments, want 1", len(comments))
	}
	if !strings.Contains(comments[0], "secret BOSUN_WEBHOOK_SECRET of service shop is not available") {
		t.Errorf("the daemon's own webhook secret resolved as a service secret:\n%s", comments[0])
	}

	// Second: guesses written where the plan quotes them (invalid images).
	guesses := []string{hookSecret, dbPassword, "not-the-secret-1234"}
	files := map[string]string{}
	for i, g := range guesses {
		files[fmt.Sprintf("services/probe%d.yml", i)] = fmt.Sprintf("service: probe%d\nimage: \"%s x\"\nservers: [web-1]\n", i, g)
	}
	head = gitCommitOnBranch(t, repoDir, "probe2", files)
	if code := d.hook(t, "pull_request", "pr-2", pullRequestEvent("acme/fleet", "opened", 10, "master", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitFor(t, time.Minute, "bosun/plan on the second pull request", func() bool { return lastStatus(gh, head, webhook.ContextPlan) != nil })
	comments = gh.Comments("acme/fleet", 10)
	if len(comments) != 1 {
		t.Fatalf("%d comments, want 1", len(comments))
	}
	for _, g := range guesses {
		if !strings.Contains(comments[0], g+" x") {
			t.Errorf("the comment does not quote %q as written: a right guess reads differently from a wrong one\n%s", g, comments[0])
		}
	}
	if strings.Contains(comments[0], "[redacted]") {
		t.Errorf("the comment redacts a value the pull request wrote, which confirms a guess:\n%s", comments[0])
	}
	if desc := lastStatus(gh, head, webhook.ContextPlan).GetDescription(); strings.Contains(desc, "[redacted]") {
		t.Errorf("bosun/plan redacts a value the pull request wrote: %q", desc)
	}
}

// TestServe_planCommentNotHijacked: a comment by another user that starts
// with bosun's marker is left as it is; bosun writes its own.
func TestServe_planCommentNotHijacked(t *testing.T) {
	d, gh, repoDir := prDaemon(t, "", map[string]string{"BOSUN_WEBHOOK_SECRET": hookSecret, "GITHUB_TOKEN": "ghp_hijacktoken"})
	forged := webhook.Marker("fleet") + "\n**bosun plan: no changes.** (forged)"
	gh.AddCommentBy("acme/fleet", 5, "mallory", forged)
	head := gitCommitOnBranch(t, repoDir, "feature", map[string]string{"services/shop.yml": "service: shop\nimage: registry.test/shop:v1\nservers: [web-1]\n"})
	if code := d.hook(t, "pull_request", "pr-h", pullRequestEvent("acme/fleet", "opened", 5, "master", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitFor(t, time.Minute, "bosun/plan", func() bool { return lastStatus(gh, head, webhook.ContextPlan) != nil })
	comments := gh.Comments("acme/fleet", 5)
	if len(comments) != 2 || comments[0] != forged || !strings.Contains(comments[1], "1 to create") {
		t.Fatalf("comments = %q, want mallory's untouched and bosun's own plan", comments)
	}
}

// TestCLI_symlinkOutOfTheRepository: validate and plan --worktree do not
// follow a symlink out of the repository, so the outside file's keys never
// show in their errors.
func TestCLI_symlinkOutOfTheRepository(t *testing.T) {
	dir := t.TempDir()
	testbed.Commit(t, dir, "change", map[string]string{"fleet.yml": "servers:\n  web-1: {host: 10.0.0.1}\n", "services/web.yml": "service: web\nimage: a/b:1\nservers: [web-1]\n"})
	outside := filepath.Join(t.TempDir(), "outside.yml")
	if err := os.WriteFile(outside, []byte("outside_private_key_name: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "services", "evil.yml")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", dir}, {"plan", "--repo", dir, "--worktree", "--state", "sqlite:///" + filepath.Join(t.TempDir(), "state.db")}} {
		code, out, errs := runCLI(t, nil, args...)
		if code == 0 || strings.Contains(out+errs, "outside_private_key_name") || !strings.Contains(out+errs, "services/evil.yml") {
			t.Errorf("bosun %s: exit %d, want an error at services/evil.yml that shows nothing of the outside file:\n%s%s", args[0], code, out, errs)
		}
	}
}
