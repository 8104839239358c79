package watcher

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/bosunhq/bosun/internal/testbed"
)

func newWatcher(t *testing.T, src string, poll time.Duration) *Watcher {
	t.Helper()
	w, err := New(Config{Name: "fleet", URL: src, Branch: "master", Dir: filepath.Join(t.TempDir(), "clone"), Poll: poll})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWatcher_Sync(t *testing.T) {
	src := t.TempDir()
	first := testbed.Commit(t, src, "test commit", map[string]string{"fleet.yml": "servers: {}\n"})
	w := newWatcher(t, "file://"+src, time.Hour)

	rev, err := w.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rev.SHA != first || rev.Repo != "fleet" || rev.Branch != "master" {
		t.Fatalf("first sync = %+v, want %s", rev, first)
	}
	second := testbed.Commit(t, src, "test commit", map[string]string{"services/web.yml": "service: web\n"})
	if rev, err = w.Sync(t.Context()); err != nil || rev.SHA != second {
		t.Fatalf("second sync = %+v, %v; want %s", rev, err, second)
	}
	fsys, err := w.FetchCommit(t.Context(), second, ".")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "services/web.yml"); err != nil || string(b) != "service: web\n" {
		t.Fatalf("services/web.yml = %q, %v", b, err)
	}

	// A fresh Watcher on the same folder reuses the clone.
	w2, _ := New(Config{Name: "fleet", URL: "file://" + src, Branch: "master", Dir: w.cfg.Dir})
	if rev, err := w2.Sync(t.Context()); err != nil || rev.SHA != second {
		t.Fatalf("sync of a reused clone = %+v, %v", rev, err)
	}
}

func TestWatcher_FetchCommit_pullRequestHead(t *testing.T) {
	src := t.TempDir()
	testbed.Commit(t, src, "test commit", map[string]string{"fleet.yml": "servers: {}\n"})
	w := newWatcher(t, src, time.Hour)
	if _, err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A commit that only a pull request ref points at, as on GitHub.
	r, _ := git.PlainOpen(src)
	head, _ := r.Head()
	prHead := testbed.Commit(t, src, "test commit", map[string]string{"services/pr.yml": "service: pr\n"})
	if err := r.Storer.SetReference(plumbing.NewHashReference("refs/pull/7/head", plumbing.NewHash(prHead))); err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference("refs/heads/master", head.Hash())); err != nil {
		t.Fatal(err)
	}
	fsys, err := w.FetchCommit(t.Context(), prHead, ".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fsys, "services/pr.yml"); err != nil {
		t.Fatal(err)
	}
}

func TestWatcher_Run_localCommit(t *testing.T) {
	src := t.TempDir()
	first := testbed.Commit(t, src, "test commit", map[string]string{"fleet.yml": "servers: {}\n"})
	w := newWatcher(t, src, time.Hour) // only fsnotify can see the next commit in time
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	revs := make(chan Revision, 10)
	done := make(chan error)
	go func() { done <- w.Run(ctx, func(r Revision) { revs <- r }) }()

	expect := func(want string) {
		t.Helper()
		select {
		case rev := <-revs:
			if rev.SHA != want {
				t.Fatalf("revision %s, want %s", rev.SHA, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no revision within 10s, want %s", want)
		}
	}
	expect(first)
	second := testbed.Commit(t, src, "test commit", map[string]string{"services/a.yml": "service: a\n"})
	expect(second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWatcher_Run_trigger(t *testing.T) {
	src := t.TempDir()
	first := testbed.Commit(t, src, "test commit", map[string]string{"fleet.yml": "servers: {}\n"})
	// The remote is a bare clone of src; a commit in src reaches it only by
	// the push below, after which Trigger (a webhook) must fetch it.
	remote := filepath.Join(t.TempDir(), "remote.git")
	if _, err := git.PlainClone(remote, true, &git.CloneOptions{URL: src}); err != nil {
		t.Fatal(err)
	}
	w := newWatcher(t, "file://"+remote, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	revs := make(chan Revision, 10)
	// Refs not watched: only Trigger may see the push.
	go w.run(ctx, func(r Revision) { revs <- r }, "")
	select {
	case rev := <-revs:
		if rev.SHA != first {
			t.Fatalf("got %s", rev.SHA)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no first revision")
	}
	// Push a new commit into the remote, then trigger as a webhook would.
	second := testbed.Commit(t, src, "test commit", map[string]string{"b.yml": "x: 1\n"})
	r, _ := git.PlainOpen(src)
	if _, err := r.CreateRemote(&gitconfig.RemoteConfig{Name: "bare", URLs: []string{remote}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(&git.PushOptions{RemoteName: "bare", RefSpecs: []gitconfig.RefSpec{"refs/heads/master:refs/heads/master"}}); err != nil {
		t.Fatal(err)
	}
	w.Trigger()
	select {
	case rev := <-revs:
		if rev.SHA != second {
			t.Fatalf("got %s, want %s", rev.SHA, second)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no revision after Trigger")
	}
}

func TestWatcher_Trigger_coalesces(t *testing.T) {
	w := newWatcher(t, "/nowhere", time.Hour)
	for range 3 {
		w.Trigger() // never blocks
	}
	if len(w.trigger) != 1 {
		t.Fatalf("%d pending triggers, want 1", len(w.trigger))
	}
}

func TestDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, out := make(chan struct{}), make(chan struct{}, 1)
		go debounce(t.Context(), 100*time.Millisecond, in, out)
		for range 5 {
			in <- struct{}{}
			time.Sleep(30 * time.Millisecond)
		}
		synctest.Wait()
		select {
		case <-out:
			t.Fatal("signalled during the burst")
		default:
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		select {
		case <-out:
		default:
			t.Fatal("no signal after the burst went quiet")
		}
		select {
		case <-out:
			t.Fatal("a burst gave more than one signal")
		default:
		}
	})
}

// TestWatchFile checks that a config file replaced by rename, as editors
// and config managers do, is reported.
func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bosun.yaml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := WatchFile(t.Context(), path, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".bosun.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported within 5s of replacing the file")
	}
}
