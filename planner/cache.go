package planner

import (
	"crypto/sha256"
	"io/fs"
	"slices"
	"sync"
)

// parseCache keeps, per repository, the parsed service files of the last
// plan, keyed by path and content (and, for a file that may use a
// template, the content of every template). Parsing is most of the cost of
// a plan and the daemon re-plans a repository on every push, where most
// files did not change. Entries not used by a plan are dropped by it.
type parseCache struct {
	mu    sync.Mutex
	repos map[string]map[fileKey]*fileResult
}

type fileKey [sha256.Size]byte

// fileResult is what parsing one service file gave. It is never modified
// after it is stored; users copy the svcDefs (see use).
type fileResult struct {
	defs []*svcDef
	errs []*ConfigError
	note []*ConfigError
}

func (c *parseCache) snapshot(repo string) map[fileKey]*fileResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.repos[repo]
}

func (c *parseCache) store(repo string, m map[fileKey]*fileResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.repos == nil {
		c.repos = map[string]map[fileKey]*fileResult{}
	}
	c.repos[repo] = m
}

// templatesKey hashes every template file, so that a template change
// re-parses the files that may use one.
func templatesKey(fsys fs.FS) []byte {
	files, _ := fs.Glob(fsys, "templates/*.yml.tmpl")
	slices.Sort(files)
	h := sha256.New()
	for _, f := range files {
		data, _ := fs.ReadFile(fsys, f)
		h.Write([]byte(f))
		h.Write([]byte{0})
		h.Write(data)
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// use returns copies of the cached svcDefs that report into r, so that
// concurrent plans never share mutable state.
func (fr *fileResult) use(r *report) []*svcDef {
	out := make([]*svcDef, len(fr.defs))
	docs := map[*doc]*doc{}
	for i, s := range fr.defs {
		c := *s
		d, ok := docs[s.d]
		if !ok {
			dc := *s.d
			dc.r = r
			d = &dc
			docs[s.d] = d
		}
		c.d = d
		out[i] = &c
	}
	return out
}
