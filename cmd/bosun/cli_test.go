package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/bosunhq/bosun/internal/testbed"
)

// runCLI runs bosun in-process and returns its exit code and output.
func runCLI(t testing.TB, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{getenv: func(k string) string { return environ[k] }, stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code = run(ctx, args, e)
	return code, out.String(), errb.String()
}

const testFleet = `servers:
  web-1: {host: 10.0.0.11, tags: [web]}
  web-2: {host: 10.0.0.12, tags: [web]}
`

const testService = `service: shop
image: registry.example.com/shop:v1
servers: [web-1, web-2]
proxy:
  host: shop.example.com
env:
  clear: {RAILS_ENV: production}
  secret: [SHOP_KEY]
`

func TestCLI_validate(t *testing.T) {
	dir := t.TempDir()
	testbed.Commit(t, dir, "change", map[string]string{"fleet.yml": testFleet, "services/shop.yml": testService})
	if code, out, errs := runCLI(t, nil, "validate", dir); code != 0 {
		t.Fatalf("validate of a good config: exit %d\n%s%s", code, out, errs)
	}

	bad := strings.Replace(testService, "servers: [web-1, web-2]", "servers: [web-1, web-9]\nimagee: x", 1)
	testbed.Commit(t, dir, "change", map[string]string{"services/shop.yml": bad})
	code, out, _ := runCLI(t, nil, "validate", dir)
	if code != 1 {
		t.Fatalf("validate of a bad config: exit %d, want 1\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("want every error (unknown host and unknown key), got:\n%s", out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "services/shop.yml:") {
			t.Errorf("error line %q does not start with file:line:col", l)
		}
	}
	if !strings.Contains(out, "web-9") || !strings.Contains(out, "imagee") {
		t.Errorf("errors do not name the unknown host and the unknown key:\n%s", out)
	}

	if code, _, _ := runCLI(t, nil, "validate", filepath.Join(dir, "missing")); code != 1 {
		t.Errorf("validate of a missing folder: exit %d, want 1", code)
	}
}

// TestCLI_validateKamalInputs: --destination merges the destination file and
// --erb-env passes exactly the named variables to ERB lookups.
func TestCLI_validateKamalInputs(t *testing.T) {
	dir := t.TempDir()
	svc := strings.Replace(testService, "servers: [web-1, web-2]", "servers: [<%= ENV[\"SHOP_HOST\"] %>]", 1)
	testbed.Commit(t, dir, "change", map[string]string{"fleet.yml": testFleet, "services/shop.yml": svc,
		"services/shop.staging.yml": "servers: [web-9]\n"})
	env := map[string]string{"SHOP_HOST": "web-1", "OTHER": "web-2"}
	if code, out, errs := runCLI(t, env, "validate", "--erb-env", "SHOP_HOST", dir); code != 0 {
		t.Fatalf("validate with --erb-env: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCLI(t, env, "validate", dir); code != 1 || !strings.Contains(out, "ERB: SHOP_HOST is not available") {
		t.Errorf("validate without --erb-env: exit %d, want the ERB error:\n%s", code, out)
	}
	code, out, _ := runCLI(t, env, "validate", "--erb-env", "SHOP_HOST", "--destination", "staging", dir)
	if code != 1 || !strings.Contains(out, "services/shop.staging.yml:1:11: role web: unknown host \"web-9\"") {
		t.Errorf("validate --destination staging: exit %d, want the destination file's error:\n%s", code, out)
	}
}

func TestCLI_planExitCodes(t *testing.T) {
	dir := t.TempDir()
	v1 := testbed.Commit(t, dir, "change", map[string]string{"fleet.yml": testFleet, "services/shop.yml": testService})
	dsn := "sqlite:///" + filepath.Join(t.TempDir(), "state.db")
	secrets := map[string]string{"SHOP_KEY": "hunter2-very-secret"}

	t.Run("changes exit 2", func(t *testing.T) {
		code, out, errs := runCLI(t, secrets, "plan", "--repo", dir, "--state", dsn)
		if code != 2 {
			t.Fatalf("exit %d, want 2\n%s%s", code, out, errs)
		}
		for _, want := range []string{"shop", "web-1", "web-2", "create"} {
			if !strings.Contains(out, want) {
				t.Errorf("plan output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out+errs, "hunter2") {
			t.Errorf("plan output shows a secret value:\n%s", out)
		}
	})
	t.Run("no changes against the same commit exit 0", func(t *testing.T) {
		code, out, errs := runCLI(t, secrets, "plan", "--repo", dir, "--base", v1)
		if code != 0 {
			t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
		}
	})
	t.Run("base diff shows the changed image", func(t *testing.T) {
		testbed.Commit(t, dir, "change", map[string]string{"services/shop.yml": strings.Replace(testService, ":v1", ":v2", 1)})
		code, out, errs := runCLI(t, secrets, "plan", "--repo", dir, "--base", v1, "--json")
		if code != 2 {
			t.Fatalf("exit %d, want 2\n%s%s", code, out, errs)
		}
		for _, want := range []string{`"schema_version"`, `"update"`, `shop:v1`, `shop:v2`, `"web-2"`} {
			if !strings.Contains(out, want) {
				t.Errorf("JSON plan lacks %s:\n%s", want, out)
			}
		}
	})
	t.Run("invalid config exit 1", func(t *testing.T) {
		testbed.Commit(t, dir, "change", map[string]string{"services/shop.yml": "service: shop\nimage: [\n"})
		code, out, errs := runCLI(t, secrets, "plan", "--repo", dir, "--state", dsn)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
		}
		if !strings.Contains(out, "services/shop.yml:") {
			t.Errorf("error does not name the file:\n%s", out)
		}
	})
	t.Run("bad ref exit 1", func(t *testing.T) {
		if code, _, _ := runCLI(t, secrets, "plan", "--repo", dir, "--ref", "no-such-branch", "--state", dsn); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
}

func TestCLI_help(t *testing.T) {
	code, out, _ := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "validate") || !strings.Contains(out, "plan") {
		t.Fatalf("bosun --help: exit %d\n%s", code, out)
	}
	for name := range commands {
		code, out, errs := runCLI(t, nil, name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: bosun "+name) {
			t.Errorf("bosun %s --help: exit %d, output:\n%s%s", name, code, out, errs)
		}
	}
	if code, _, errs := runCLI(t, nil, "frobnicate"); code != 1 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d, %s", code, errs)
	}
}

// gitCommitOnBranch commits files on branch (made from the current HEAD
// when missing) and checks the previous branch out again.
func gitCommitOnBranch(t testing.TB, dir, branch string, files map[string]string) string {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	_, missing := r.Reference(ref, false)
	if err := wt.Checkout(&git.CheckoutOptions{Branch: ref, Create: missing != nil, Force: true}); err != nil {
		t.Fatal(err)
	}
	sha := testbed.Commit(t, dir, "change", files)
	if err := wt.Checkout(&git.CheckoutOptions{Branch: head.Name(), Force: true}); err != nil {
		t.Fatal(err)
	}
	return sha
}

// gitFastForward points branch (the checked-out one) at sha, work tree
// included, as a merge on the forge followed by a pull would.
func gitFastForward(t testing.TB, dir, branch, sha string) {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), plumbing.NewHash(sha))); err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: plumbing.NewHash(sha), Mode: git.HardReset}); err != nil {
		t.Fatal(err)
	}
}

// A BOSUN_LOG_LEVEL that is no level stops the command before it does
// anything, instead of logging at the default level.
func TestCLI_badLogLevelIsAnError(t *testing.T) {
	code, stdout, stderr := runCLI(t, map[string]string{"BOSUN_LOG_LEVEL": "loud"}, "version")
	if code == 0 || stdout != "" || !strings.Contains(stderr, `BOSUN_LOG_LEVEL="loud": want debug, info, warn or error`) {
		t.Fatalf("exit %d, stdout %q, stderr %q: want a failure naming the bad level and nothing run", code, stdout, stderr)
	}
	for _, level := range []string{"", "debug", "INFO", "warn", "error"} {
		if code, _, stderr := runCLI(t, map[string]string{"BOSUN_LOG_LEVEL": level}, "version"); code != 0 {
			t.Errorf("BOSUN_LOG_LEVEL=%q: exit %d, stderr %q", level, code, stderr)
		}
	}
}
