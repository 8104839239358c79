package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Revision is the head of a tracked branch as last fetched.
type Revision struct {
	Repo   string // the repository's name in bosun
	Branch string
	SHA    string
}

// Config configures a Watcher for one repository.
type Config struct {
	Name   string // bosun's name for the repository
	URL    string // remote URL, file:// URL or local path
	Branch string // the tracked branch
	Dir    string // where the clone lives; created if missing
	Poll   time.Duration
	// Auth is the git credential (SSH key or HTTPS token) for URL; nil for
	// none. It never appears in logs or errors.
	Auth   transport.AuthMethod
	Logger *slog.Logger // nil means slog.Default()
}

// Watcher keeps a clone of one repository and reports when the head of its
// tracked branch moves: on Trigger (a webhook), on a poll timer with jitter,
// and, for a local repository, when its refs change on disk.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	trigger chan struct{}

	mu   sync.Mutex // guards repo and the clone on disk
	repo *git.Repository
	last string // the last SHA reported by Run
}

// New returns a Watcher; nothing is cloned until Sync or Run.
func New(cfg Config) (*Watcher, error) {
	if cfg.Name == "" || cfg.URL == "" || cfg.Branch == "" || cfg.Dir == "" {
		return nil, errors.New("watcher: Name, URL, Branch and Dir are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{cfg: cfg, log: log.With("component", "watcher", "repo", cfg.Name), trigger: make(chan struct{}, 1)}, nil
}

// Trigger asks Run to fetch now. It never blocks; triggers that arrive
// while one is pending coalesce.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Sync clones the repository if needed, fetches, and returns the head of the
// tracked branch.
func (w *Watcher) Sync(ctx context.Context) (Revision, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.openOrClone(ctx); err != nil {
		return Revision{}, err
	}
	err := w.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{gitconfig.RefSpec("+refs/heads/*:refs/remotes/origin/*")},
		Auth:       w.cfg.Auth,
		Force:      true,
		Prune:      true,
		Tags:       git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return Revision{}, fmt.Errorf("fetch %s: %w", Redact(w.cfg.URL), redactErr(err, w.cfg.URL))
	}
	ref, err := w.repo.Reference(plumbing.NewRemoteReferenceName("origin", w.cfg.Branch), true)
	if err != nil {
		return Revision{}, fmt.Errorf("branch %s of %s: %w", w.cfg.Branch, Redact(w.cfg.URL), err)
	}
	return Revision{Repo: w.cfg.Name, Branch: w.cfg.Branch, SHA: ref.Hash().String()}, nil
}

// FetchCommit makes sure commit sha is in the clone (fetching when it is
// not, e.g. the head of a pull request) and returns its tree at sub.
func (w *Watcher) FetchCommit(ctx context.Context, sha, sub string) (fs.FS, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.openOrClone(ctx); err != nil {
		return nil, err
	}
	if _, err := w.repo.CommitObject(plumbing.NewHash(sha)); err != nil {
		// Pull request heads live under refs/pull/ on GitHub.
		err := w.repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: "origin",
			RefSpecs: []gitconfig.RefSpec{
				"+refs/heads/*:refs/remotes/origin/*",
				"+refs/pull/*/head:refs/remotes/origin/pull/*",
			},
			Auth: w.cfg.Auth, Force: true, Tags: git.NoTags,
		})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, fmt.Errorf("fetch %s: %w", Redact(w.cfg.URL), redactErr(err, w.cfg.URL))
		}
	}
	return (&Repo{src: Redact(w.cfg.URL), repo: w.repo}).FS(sha, sub)
}

// openOrClone opens the clone in cfg.Dir, or makes it. Callers hold w.mu.
func (w *Watcher) openOrClone(ctx context.Context) error {
	if w.repo != nil {
		return nil
	}
	r, err := git.PlainOpen(w.cfg.Dir)
	if err == nil {
		// The URL may have changed in the daemon's config since the clone.
		if err := setOrigin(r, w.cfg.URL); err != nil {
			return err
		}
		w.repo = keepingFiles(r, w.cfg.Dir)
		return nil
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return fmt.Errorf("open clone %s: %w", w.cfg.Dir, err)
	}
	if err := os.MkdirAll(w.cfg.Dir, 0o700); err != nil {
		return err
	}
	w.log.InfoContext(ctx, "cloning", "url", Redact(w.cfg.URL))
	r, err = git.PlainInit(w.cfg.Dir, true)
	if err != nil {
		return fmt.Errorf("make clone %s: %w", w.cfg.Dir, err)
	}
	if err := setOrigin(r, w.cfg.URL); err != nil {
		return err
	}
	w.repo = keepingFiles(r, w.cfg.Dir)
	return nil
}

// keepingFiles reopens the bare clone at dir with storage that keeps pack
// files open between reads (see openKeepingFiles); on failure it keeps r.
func keepingFiles(r *git.Repository, dir string) *git.Repository {
	if r2, err := openKeepingFiles(dir, nil); err == nil {
		return r2
	}
	return r
}

func setOrigin(r *git.Repository, url string) error {
	if strings.HasPrefix(url, "/") {
		url = "file://" + url
	}
	cfg, err := r.Config()
	if err != nil {
		return err
	}
	if rc, ok := cfg.Remotes["origin"]; ok && len(rc.URLs) == 1 && rc.URLs[0] == url {
		return nil
	}
	cfg.Remotes["origin"] = &gitconfig.RemoteConfig{Name: "origin", URLs: []string{url}, Fetch: []gitconfig.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}}
	return r.SetConfig(cfg)
}

// Run syncs at once, then on every Trigger, every poll interval (±10 %
// jitter) and, for a local repository, on changes to its refs. It calls
// notify with the head whenever it differs from the last one reported
// (including the first). Fetch errors are logged and retried at the next
// tick. Run returns when ctx ends.
func (w *Watcher) Run(ctx context.Context, notify func(Revision)) error {
	return w.run(ctx, notify, w.localGitDir())
}

// run is Run watching the refs of the git folder refsDir ("" for none).
func (w *Watcher) run(ctx context.Context, notify func(Revision), refsDir string) error {
	if refsDir != "" {
		changes, err := watchRefs(ctx, refsDir, w.log)
		if err != nil {
			w.log.WarnContext(ctx, "not watching local repository; polling only", "err", err)
		} else {
			go func() {
				for range changes {
					w.Trigger()
				}
			}()
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-w.trigger:
		}
		rev, err := w.Sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			if failures == 1 || failures%10 == 0 { // limit repeated errors
				w.log.WarnContext(ctx, "sync failed; will retry", "err", err, "failures", failures)
			}
		} else {
			failures = 0
			if rev.SHA != w.last {
				w.last = rev.SHA
				notify(rev)
			}
		}
		timer.Reset(jitter(w.cfg.Poll))
	}
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// localGitDir is the .git folder of a local source repository, or "".
func (w *Watcher) localGitDir() string {
	if !isLocal(w.cfg.URL) {
		return ""
	}
	p := strings.TrimPrefix(w.cfg.URL, "file://")
	for _, dir := range []string{filepath.Join(p, ".git"), p} {
		if st, err := os.Stat(filepath.Join(dir, "refs")); err == nil && st.IsDir() {
			return dir
		}
	}
	return ""
}

// watchRefs reports (debounced) when the refs of the git folder dir change:
// loose refs under refs/heads, packed-refs, HEAD.
func watchRefs(ctx context.Context, dir string, log *slog.Logger) (<-chan struct{}, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	// Watch folders, not files: git replaces files by rename.
	add := func(p string) error {
		if err := fw.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	}
	if err := add(dir); err != nil {
		fw.Close()
		return nil, err
	}
	heads := filepath.Join(dir, "refs", "heads")
	filepath.WalkDir(heads, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			add(p)
		}
		return nil
	})
	return notify(ctx, fw, 100*time.Millisecond, log, func(ev fsnotify.Event) bool {
		if ev.Has(fsnotify.Create) {
			if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && strings.HasPrefix(ev.Name, heads) {
				add(ev.Name) // a new branch folder such as refs/heads/feature
			}
		}
		return true
	}), nil
}

// WatchFile reports, debounced by quiet, when the file at path may have
// changed: it watches the file's folder, since editors and config managers
// replace files by rename. The channel closes when ctx ends.
func WatchFile(ctx context.Context, path string, quiet time.Duration, log *slog.Logger) (<-chan struct{}, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(filepath.Dir(abs)); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch %s: %w", filepath.Dir(abs), err)
	}
	if log == nil {
		log = slog.Default()
	}
	return notify(ctx, fw, quiet, log, func(ev fsnotify.Event) bool { return filepath.Clean(ev.Name) == abs }), nil
}

// notify turns fw's events that keep says matter into one signal per burst,
// after quiet passes without one; it owns fw and closes it when ctx ends.
func notify(ctx context.Context, fw *fsnotify.Watcher, quiet time.Duration, log *slog.Logger, keep func(fsnotify.Event) bool) <-chan struct{} {
	raw := make(chan struct{})
	out := make(chan struct{}, 1)
	go func() {
		defer fw.Close()
		defer close(raw)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if !keep(ev) {
					continue
				}
				select {
				case raw <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				log.WarnContext(ctx, "fsnotify", "err", err)
			}
		}
	}()
	go func() {
		defer close(out)
		debounce(ctx, quiet, raw, out)
	}()
	return out
}

// debounce sends one signal on out after in has been quiet for d; a burst of
// signals on in (git writes several files per commit) becomes one.
func debounce(ctx context.Context, d time.Duration, in <-chan struct{}, out chan<- struct{}) {
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-in:
			if !ok {
				return
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			select {
			case out <- struct{}{}:
			default: // one pending signal is enough
			}
		}
	}
}
