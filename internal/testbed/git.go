package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitFiles writes files (path in the work tree → content) into the git
// repository at dir, initialising it when there is none, removes the paths
// mapped to "", and commits exactly those paths with msg on the checked-out
// branch. It returns the new commit's SHA. Files in the work tree that are not
// named are left as they are, committed or not.
func CommitFiles(dir, msg string, files map[string]string) (string, error) {
	r, err := git.PlainOpen(dir)
	if err != nil {
		if r, err = git.PlainInit(dir, false); err != nil {
			return "", fmt.Errorf("init git repository %s: %w", dir, err)
		}
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", fmt.Errorf("open work tree of %s: %w", dir, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		body := files[name]
		if body == "" {
			if _, err := wt.Remove(name); err != nil {
				return "", fmt.Errorf("remove %s from %s: %w", name, dir, err)
			}
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return "", err
		}
		if _, err := wt.Add(name); err != nil {
			return "", fmt.Errorf("add %s in %s: %w", name, dir, err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "bosun testbed", Email: "testbed@bosun.test", When: time.Now()}})
	if err != nil {
		return "", fmt.Errorf("commit in %s: %w", dir, err)
	}
	return h.String(), nil
}

// Commit is CommitFiles for tests: it fails t on an error.
func Commit(t testing.TB, dir, msg string, files map[string]string) string {
	t.Helper()
	sha, err := CommitFiles(dir, msg, files)
	if err != nil {
		t.Fatal(err)
	}
	return sha
}
