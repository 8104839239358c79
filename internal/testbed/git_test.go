package testbed

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommitFiles_commitsNamedPathsOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	first := Commit(t, dir, "first", map[string]string{"a.yml": "a: 1\n", "sub/b.yml": "b: 1\n"})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "untracked.yml"), []byte("u: 1\n"), 0o644))
	second := Commit(t, dir, "second", map[string]string{"a.yml": "", "sub/b.yml": "b: 2\n"})

	r, err := git.PlainOpen(dir)
	require.NoError(t, err)
	c, err := r.CommitObject(plumbing.NewHash(second))
	require.NoError(t, err)
	assert.Equal(t, "second", c.Message)
	assert.Equal(t, []plumbing.Hash{plumbing.NewHash(first)}, c.ParentHashes, "parents of the second commit")
	tree, err := c.Tree()
	require.NoError(t, err)
	var got []string
	require.NoError(t, tree.Files().ForEach(func(f *object.File) error {
		body, err := f.Contents()
		got = append(got, f.Name+"="+body)
		return err
	}))
	assert.Equal(t, []string{"sub/b.yml=b: 2\n"}, got, "tree of the second commit: a.yml removed, untracked.yml not committed")
}
