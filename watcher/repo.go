package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/bosunhq/bosun/internal/commitsha"
)

// Repo is an opened git repository: a local one read in place, or a remote
// one cloned into memory.
type Repo struct {
	src  string // as given, with any credentials removed
	repo *git.Repository
	dir  string // work tree of a local repository; "" for a clone
}

// Open opens the repository at src: a local path (or file:// URL) is read in
// place; any other URL is cloned into memory. Credentials in a URL are used
// but never appear in errors.
func Open(ctx context.Context, src string) (*Repo, error) {
	if isLocal(src) {
		p := strings.TrimPrefix(src, "file://")
		r, err := git.PlainOpenWithOptions(p, &git.PlainOpenOptions{DetectDotGit: true})
		if err != nil {
			return nil, fmt.Errorf("open git repository %s: %w", p, err)
		}
		dir := p
		if wt, err := r.Worktree(); err == nil {
			dir = wt.Filesystem.Root()
			// Reopen with storage that keeps pack files open between reads.
			if r2, err := openKeepingFiles(filepath.Join(dir, ".git"), wt.Filesystem); err == nil {
				r = r2
			}
		}
		return &Repo{src: p, repo: r, dir: dir}, nil
	}
	r, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{URL: src, NoCheckout: true})
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", Redact(src), redactErr(err, src))
	}
	return &Repo{src: Redact(src), repo: r}, nil
}

// Resolve turns a ref (branch, tag, "HEAD", a full or abbreviated SHA, or
// any revision go-git understands) into a commit SHA.
func (r *Repo) Resolve(ref string) (string, error) {
	if ref == "" {
		ref = "HEAD"
	}
	h, err := r.repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		// A remote clone has remote-tracking branches only.
		if h2, err2 := r.repo.ResolveRevision(plumbing.Revision("refs/remotes/origin/" + ref)); err2 == nil {
			return h2.String(), nil
		}
		return "", fmt.Errorf("resolve %q in %s: %w", ref, r.src, err)
	}
	return h.String(), nil
}

// FS returns the tree of commit sha as an fs.FS, rooted at sub (a folder
// inside the repository; "" or "." for the root).
func (r *Repo) FS(sha, sub string) (fs.FS, error) {
	c, err := r.repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", commitsha.Short(sha), err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", commitsha.Short(sha), err)
	}
	sub = strings.Trim(filepath.ToSlash(sub), "/")
	if sub != "" && sub != "." {
		// Root the tree at the folder (rather than fs.Sub, which would
		// hide BlobHash from the planner).
		if tree, err = tree.Tree(sub); err != nil {
			return nil, fmt.Errorf("folder %q in commit %s: %w", sub, commitsha.Short(sha), fs.ErrNotExist)
		}
	}
	fsys := &treeFS{store: r.repo.Storer, root: tree, mtime: c.Committer.When}
	return fsys, nil
}

// Worktree returns the repository's working tree as an fs.FS, rooted at
// sub: uncommitted files included, for `bosun plan --worktree`. A symlink
// is followed only while it stays inside sub (os.Root): one that leaves it
// reads as an error, so no file outside the repository reaches the planner.
func (r *Repo) Worktree(sub string) (fs.FS, error) {
	if r.dir == "" {
		return nil, errors.New("a cloned repository has no working tree")
	}
	root, err := os.OpenRoot(filepath.Join(r.dir, sub))
	if err != nil {
		return nil, err
	}
	return root.FS(), nil
}

func isLocal(src string) bool {
	if strings.HasPrefix(src, "file://") {
		return true
	}
	if strings.Contains(src, "://") {
		return false
	}
	// scp-like "git@host:path" is remote; a path with a colon before any
	// slash is that form.
	if i := strings.Index(src, ":"); i > 0 && !strings.Contains(src[:i], "/") {
		return false
	}
	return true
}

// Redact removes credentials from a repository URL, so that it can be
// logged or shown: the secret part becomes "[redacted]" (the placeholder
// used everywhere in bosun, planner.RedactedText).
func Redact(src string) string {
	u, err := url.Parse(src)
	if err != nil || u.User == nil {
		return src
	}
	// url.URL escapes brackets in the user info: write a marker, then the
	// placeholder over it.
	if _, hasPassword := u.User.Password(); hasPassword {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
		return strings.Replace(u.String(), ":REDACTED@", ":[redacted]@", 1)
	} else if u.Scheme == "http" || u.Scheme == "https" {
		u.User = url.User("REDACTED") // a bare user name over HTTP is a token
		return strings.Replace(u.String(), "//REDACTED@", "//[redacted]@", 1)
	}
	return u.String()
}

// redactErr replaces the raw URL in an error message with its redacted form.
func redactErr(err error, src string) error {
	if r := Redact(src); r != src {
		return errors.New(strings.ReplaceAll(err.Error(), src, r))
	}
	return err
}

// openKeepingFiles opens the repository whose git folder is dotgit with
// storage that keeps a few pack files open: without it, go-git opens and
// closes the pack file for every object it reads, which dominated reading
// a commit of many files.
func openKeepingFiles(dotgit string, worktree billy.Filesystem) (*git.Repository, error) {
	if st, err := os.Stat(dotgit); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a git folder", dotgit)
	}
	storage := filesystem.NewStorageWithOptions(osfs.New(dotgit), cache.NewObjectLRUDefault(), filesystem.Options{MaxOpenDescriptors: 16})
	return git.Open(storage, worktree)
}
