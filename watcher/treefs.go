package watcher

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeFS is the tree of one commit as a read-only fs.FS. Paths are
// slash-separated and relative to the tree's root, as fs.FS requires. It
// is safe for concurrent use (the planner reads files in parallel): go-git's
// trees cache lookups in plain maps and its storage is not safe for
// concurrent reads, so every access to them holds mu.
type treeFS struct {
	mu    sync.Mutex
	store storer.EncodedObjectStorer
	root  *object.Tree
	dirs  map[string]*object.Tree // decoded folders by path; go-git's own cache misses folders one level down
	mtime time.Time               // the commit's time, reported for every entry
}

// BlobHash returns the git blob hash of a file: the planner's cache key for
// files it parsed before (planner.BlobHashFS).
func (t *treeFS) BlobHash(name string) (string, bool) {
	e, dir, err := t.lookup("stat", name)
	if err != nil || dir != nil || e == nil {
		return "", false
	}
	return e.Hash.String(), true
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

func (t *treeFS) lookup(op, name string) (*object.TreeEntry, *object.Tree, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !fs.ValidPath(name) {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, t.root, nil
	}
	dir, base := path.Split(name)
	parent, err := t.dir(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	e, err := parent.FindEntry(base)
	if err != nil {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if e.Mode == filemode.Dir {
		sub, err := t.dir(name)
		if err != nil {
			return nil, nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		return e, sub, nil
	}
	return e, nil, nil
}

// dir returns the decoded tree of the folder at p ("" for the root),
// decoding each folder once. Callers hold t.mu.
func (t *treeFS) dir(p string) (*object.Tree, error) {
	if p == "" || p == "." {
		return t.root, nil
	}
	if d, ok := t.dirs[p]; ok {
		return d, nil
	}
	parentPath, base := path.Split(p)
	parent, err := t.dir(strings.TrimSuffix(parentPath, "/"))
	if err != nil {
		return nil, err
	}
	e, err := parent.FindEntry(base)
	if err != nil {
		return nil, err
	}
	if e.Mode != filemode.Dir {
		return nil, fmt.Errorf("%s is not a folder", p)
	}
	d, err := object.GetTree(t.store, e.Hash)
	if err != nil {
		return nil, err
	}
	if t.dirs == nil {
		t.dirs = map[string]*object.Tree{}
	}
	t.dirs[p] = d
	return d, nil
}

func (t *treeFS) Open(name string) (fs.File, error) {
	e, dir, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		return &treeDir{fs: t, name: name, tree: dir}, nil
	}
	data, err := t.readEntry(name, e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &treeFile{info: t.info(path.Base(name), e, int64(len(data))), r: strings.NewReader(string(data))}, nil
}

func (t *treeFS) ReadFile(name string) ([]byte, error) {
	e, dir, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := t.readEntry(name, e)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	_, dir, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return t.entries(dir), nil
}

func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	e, dir, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if dir != nil || e == nil {
		return t.info(path.Base(name), e, 0), nil
	}
	t.mu.Lock()
	size, err := t.store.EncodedObjectSize(e.Hash)
	t.mu.Unlock()
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return t.info(path.Base(name), e, size), nil
}

func (t *treeFS) entries(dir *object.Tree) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(dir.Entries))
	for i := range dir.Entries {
		e := &dir.Entries[i]
		if e.Mode == filemode.Submodule {
			continue // a submodule's tree is not in this repository
		}
		out = append(out, dirEntry{fs: t, e: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

func (t *treeFS) readEntry(name string, e *object.TreeEntry) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Mode == filemode.Submodule {
		return nil, fmt.Errorf("%s is a submodule", name)
	}
	blob, err := object.GetBlob(t.store, e.Hash)
	if err != nil {
		return nil, err
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (t *treeFS) info(name string, e *object.TreeEntry, size int64) fs.FileInfo {
	mode := fs.FileMode(0o444)
	if e == nil || e.Mode == filemode.Dir {
		mode = fs.ModeDir | 0o555
	} else if e.Mode == filemode.Symlink {
		mode = fs.ModeSymlink | 0o444
	} else if e.Mode == filemode.Executable {
		mode = 0o555
	}
	if name == "" {
		name = "."
	}
	return fileInfo{name: name, size: size, mode: mode, mtime: t.mtime}
}

// dirEntry is one entry of a directory listing; its size is read only when
// Info is called, so listing a folder of many files reads no blob.
type dirEntry struct {
	fs *treeFS
	e  *object.TreeEntry
}

func (d dirEntry) Name() string      { return d.e.Name }
func (d dirEntry) IsDir() bool       { return d.e.Mode == filemode.Dir }
func (d dirEntry) Type() fs.FileMode { return d.fs.info(d.e.Name, d.e, 0).Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) {
	if d.IsDir() {
		return d.fs.info(d.e.Name, d.e, 0), nil
	}
	d.fs.mu.Lock()
	o, err := d.fs.store.EncodedObject(plumbing.BlobObject, d.e.Hash)
	d.fs.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return d.fs.info(d.e.Name, d.e, o.Size()), nil
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

type treeFile struct {
	info fs.FileInfo
	r    *strings.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	fs      *treeFS
	name    string
	tree    *object.Tree
	entries []fs.DirEntry
	read    bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.fs.info(path.Base(d.name), nil, 0), nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *treeDir) Close() error { return nil }

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.entries, d.read = d.fs.entries(d.tree), true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}
