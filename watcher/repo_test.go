package watcher

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/bosunhq/bosun/internal/testbed"
)

func TestRepo_FS(t *testing.T) {
	dir := t.TempDir()
	first := testbed.Commit(t, dir, "test commit", map[string]string{
		"deploy/fleet.yml":        "servers: {}\n",
		"deploy/services/web.yml": "service: web\n",
		"README.md":               "hello\n",
	})
	second := testbed.Commit(t, dir, "test commit", map[string]string{
		"deploy/services/web.yml": "service: web\nimage: app:v2\n",
		"deploy/services/api.yml": "service: api\n",
	})

	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Resolve("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if head != second {
		t.Fatalf("HEAD = %s, want %s", head, second)
	}
	if sha, err := r.Resolve(first[:10]); err != nil || sha != first {
		t.Fatalf("Resolve(abbrev) = %s, %v; want %s", sha, err, first)
	}

	t.Run("old commit sees old files", func(t *testing.T) {
		fsys, err := r.FS(first, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(fsys, "fleet.yml", "services/web.yml"); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Open("services/api.yml"); err == nil {
			t.Fatal("services/api.yml exists at the first commit")
		}
	})
	t.Run("new commit", func(t *testing.T) {
		fsys, err := r.FS(second, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(fsys, "fleet.yml", "services/web.yml", "services/api.yml"); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "deploy/services/web.yml"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := fs.ReadFile(fsys, "services/web.yml")
		if err != nil || string(b) != string(got) {
			t.Fatalf("web.yml = %q, %v; want %q", b, err, got)
		}
	})
	t.Run("missing folder", func(t *testing.T) {
		if _, err := r.FS(second, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("FS(nope) error = %v", err)
		}
	})
	t.Run("worktree sees uncommitted files", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "deploy/services/new.yml"), []byte("service: new\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fsys, err := r.Worktree("deploy")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadFile(fsys, "services/new.yml"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpen_clone(t *testing.T) {
	dir := t.TempDir()
	sha := testbed.Commit(t, dir, "test commit", map[string]string{"fleet.yml": "servers: {}\n"})
	r, err := Open(t.Context(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve("master"); err != nil || got != sha {
		t.Fatalf("Resolve(master) = %s, %v", got, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@github.com/a/b.git": "https://user:[redacted]@github.com/a/b.git",
		"https://ghp_token@github.com/a/b.git":   "https://[redacted]@github.com/a/b.git",
		"ssh://git@github.com/a/b.git":           "ssh://git@github.com/a/b.git",
		"git@github.com:a/b.git":                 "git@github.com:a/b.git",
		"/srv/repo":                              "/srv/repo",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRepo_FS_concurrent reads a commit's files from many goroutines at
// once, as the planner does (run with -race).
func TestRepo_FS_concurrent(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("services/s%02d/svc.yml", i)] = fmt.Sprintf("service: s%02d\n", i)
	}
	sha := testbed.Commit(t, dir, "test commit", files)
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.FS(sha, ".")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for name, want := range files {
		wg.Go(func() {
			if _, err := fs.Stat(fsys, name); err != nil {
				t.Error(err)
			}
			b, err := fs.ReadFile(fsys, name)
			if err != nil || string(b) != want {
				t.Errorf("%s = %q, %v", name, b, err)
			}
		})
	}
	wg.Wait()
}

// TestRepo_Worktree_symlinks: a symlink inside the working tree that leaves
// the repository is not followed (its target's content never reaches the
// planner); one that stays inside is.
func TestRepo_Worktree_symlinks(t *testing.T) {
	dir := t.TempDir()
	testbed.Commit(t, dir, "test commit", map[string]string{"fleet.yml": "servers: {}\n", "shared/web.yml": "service: web\n"})
	outside := filepath.Join(t.TempDir(), "outside.yml")
	if err := os.WriteFile(outside, []byte("outside_secret_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "services"), 0o755)
	if err := os.Symlink(outside, filepath.Join(dir, "services", "evil.yml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared/web.yml", filepath.Join(dir, "services", "web.yml")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.Worktree(".")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "services/evil.yml"); err == nil {
		t.Errorf("a symlink out of the repository was followed: read %q", b)
	}
	if b, err := fs.ReadFile(fsys, "services/web.yml"); err != nil || string(b) != "service: web\n" {
		t.Errorf("a symlink inside the repository: %q, %v", b, err)
	}
}
