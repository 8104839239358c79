package planner

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hashFS is a MapFS with BlobHash that counts the service files read.
type hashFS struct {
	fstest.MapFS
	reads atomic.Int32
}

func (h *hashFS) BlobHash(name string) (string, bool) {
	f, ok := h.MapFS[name]
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%x", sha256.Sum256(f.Data)), true
}

func (h *hashFS) Open(name string) (fs.File, error) {
	if strings.HasPrefix(name, "services/") {
		h.reads.Add(1)
	}
	return h.MapFS.Open(name)
}

func (h *hashFS) ReadFile(name string) ([]byte, error) {
	if strings.HasPrefix(name, "services/") {
		h.reads.Add(1)
	}
	return h.MapFS.ReadFile(name)
}

func TestPlanner_blobHashSkipsUnchangedFiles(t *testing.T) {
	src := &hashFS{MapFS: fstest.MapFS{
		"fleet.yml": {Data: []byte("servers:\n  web-1: {host: 10.0.0.1}\n")},
	}}
	for i := range 20 {
		src.MapFS[fmt.Sprintf("services/s%02d.yml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("service: s%02d\nimage: app:v1\nservers: [web-1]\nproxy: {host: s%02d.test}\n", i, i))}
	}
	p := New(Config{SecretKey: []byte("k")})
	first, err := p.Plan(t.Context(), src, Input{Repo: "r"})
	require.NoError(t, err)
	require.EqualValues(t, 20, src.reads.Load(), "service files the first plan read")
	src.reads.Store(0)
	src.MapFS["services/s03.yml"] = &fstest.MapFile{Data: []byte("service: s03\nimage: app:v2\nservers: [web-1]\nproxy: {host: s03.test}\n")}
	second, err := p.Plan(t.Context(), src, Input{Repo: "r"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, src.reads.Load(), "service files the second plan read: only the changed one")
	require.Len(t, second.Changes, len(first.Changes), "the plans differ in size")
	for _, c := range second.Changes {
		want := "app:v1"
		if c.Service == "s03" {
			want = "app:v2"
		}
		assert.Equal(t, want, c.Desired.Image, "image of %s", c.Target)
	}
}
