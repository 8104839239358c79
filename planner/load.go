package planner

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"

	"gopkg.in/yaml.v3"
)

// loader reads one commit of the config repository into the desired state,
// collecting every error in r.
type loader struct {
	cfg          *Config
	in           *Input
	r            *report
	fleet        *fleet
	ctx          context.Context // Plan's: a render is killed when it ends
	renders      *renderer       // the load's render child, ended before load returns
	templates    map[string]*template.Template
	templateSrc  map[string]string // source of each template, by name: rendered in a child process
	badTemplates map[string]bool
	warnings     []string
	applied      map[Target]*Applied
	secretHashes map[string]string
	warned       map[string]bool
	cache        *parseCache
}

// desiredState is the resolved config: every target's spec.
type desiredState struct {
	services []*desiredService // sorted by name
	hosts    map[string]Host   // every host a desired target runs on
	fleet    *fleet
}

type desiredService struct {
	svc     Service
	file    string
	targets []desiredTarget // sorted by role, host
}

type desiredTarget struct {
	Target
	spec    *Spec // shared between targets with the same spec: read only
	version string
}

func (l *loader) load(ctx context.Context, src fs.FS) (*desiredState, error) {
	l.applied = make(map[Target]*Applied, len(l.in.Applied))
	for i := range l.in.Applied {
		a := &l.in.Applied[i]
		l.applied[a.Target] = a
	}
	l.secretHashes = map[string]string{}
	l.warned = map[string]bool{}
	l.fleet = loadFleet(src, l.r)
	l.ctx = ctx
	l.renders = newRenderer(ctx)
	defer l.renders.close()
	l.templates, l.templateSrc = loadTemplates(src, l.r)
	l.badTemplates = map[string]bool{}
	for _, e := range l.r.errs {
		if strings.HasPrefix(e.File, "templates/") {
			l.badTemplates[e.File] = true
		}
	}
	files, err := serviceFiles(src)
	if err != nil {
		return nil, fmt.Errorf("list service files: %w", err)
	}
	if len(files) == 0 {
		l.r.errs = append(l.r.errs, &ConfigError{File: "services", Msg: "no service files: add services/NAME.yml (a Kamal deploy file, or template: with vars:)"})
	}
	defs, err := l.loadServiceFiles(ctx, src, files)
	if err != nil {
		return nil, err
	}
	return l.resolve(defs), nil
}

// loadServiceFiles parses the service files on all CPUs, reusing the
// parse of a file whose content (and templates) did not change since the
// last plan of the repository. Each file reports into its own report; they
// are merged in file order.
func (l *loader) loadServiceFiles(ctx context.Context, src fs.FS, files []string) ([]*svcDef, error) {
	cached := l.cache.snapshot(l.in.Repo)
	tkey := templatesKey(src)
	results := make([]*fileResult, len(files))
	keys := make([]fileKey, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	if len(l.templates) > 0 {
		// A worker waits while the render child renders its file; more
		// workers keep requests queued for the child and the CPUs busy.
		workers *= 4
	}
	for range min(workers, len(files)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) || ctx.Err() != nil {
					return
				}
				results[i], keys[i] = l.loadServiceFile(src, files[i], cached, tkey)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	used := make(map[fileKey]*fileResult, len(files))
	var defs []*svcDef
	for i, fr := range results {
		used[keys[i]] = fr
		l.r.errs = append(l.r.errs, fr.errs...)
		l.r.notices = append(l.r.notices, fr.note...)
		defs = append(defs, fr.use(l.r)...)
	}
	l.cache.store(l.in.Repo, used)
	return defs, nil
}

// BlobHashFS is an fs.FS that knows a content hash of each file without
// reading it, as git does (watcher's commit trees). The planner then finds
// an unchanged file in its parse cache without reading the file.
type BlobHashFS interface {
	fs.FS
	// BlobHash returns a hash that changes whenever the file's content
	// does, or false when it has none for name.
	BlobHash(name string) (string, bool)
}

func (l *loader) loadServiceFile(src fs.FS, file string, cached map[fileKey]*fileResult, tkey []byte) (*fileResult, fileKey) {
	var r report
	destFile := ""
	if l.in.Destination != "" {
		destFile = destinationFile(file, l.in.Destination, func(f string) bool { _, err := fs.Stat(src, f); return err == nil })
	}
	// The key covers the file (and its destination file) by blob hash when
	// the source knows it, else by content; the templates, since whether the
	// file uses one is unknown before reading it; the destination; and the
	// ERB values.
	h := sha256.New()
	keyPart := func(f string) (data []byte, ok bool) {
		h.Write([]byte(f))
		if bh, isBH := src.(BlobHashFS); isBH {
			if blob, ok := bh.BlobHash(f); ok {
				h.Write([]byte{0, 'b'})
				h.Write([]byte(blob))
				return nil, true
			}
		}
		data, err := fs.ReadFile(src, f)
		if err != nil {
			r.errs = append(r.errs, &ConfigError{File: f, Msg: fmt.Sprintf("cannot read the file: %v", err)})
			return nil, false
		}
		h.Write([]byte{0})
		h.Write(data)
		return data, true
	}
	data, ok := keyPart(file)
	if !ok {
		return &fileResult{errs: r.errs}, fileKey{}
	}
	var destData []byte
	if destFile != "" {
		if destData, ok = keyPart(destFile); !ok {
			return &fileResult{errs: r.errs}, fileKey{}
		}
	}
	h.Write(tkey)
	h.Write([]byte("\x00dest\x00" + l.in.Destination))
	for _, k := range mapKeys(l.in.ERBEnv) {
		h.Write([]byte("\x00erb\x00" + k + "\x00" + l.in.ERBEnv[k]))
	}
	var key fileKey
	h.Sum(key[:0])
	if fr, ok := cached[key]; ok {
		return fr, key
	}
	read := func(f string, data []byte) ([]byte, bool) {
		if data != nil {
			return data, true
		}
		data, err := fs.ReadFile(src, f)
		if err != nil {
			r.errs = append(r.errs, &ConfigError{File: f, Msg: fmt.Sprintf("cannot read the file: %v", err)})
			return nil, false
		}
		return data, true
	}
	if data, ok = read(file, data); !ok {
		return &fileResult{errs: r.errs}, fileKey{}
	}
	if destFile != "" {
		if destData, ok = read(destFile, destData); !ok {
			return &fileResult{errs: r.errs}, fileKey{}
		}
	}
	defs := l.parseServiceFile(file, data, destFile, destData, &r)
	return &fileResult{defs: defs, errs: r.errs, note: r.notices}, key
}

func (l *loader) parseServiceFile(file string, data []byte, destFile string, destData []byte, r *report) []*svcDef {
	d := newDoc(file, r)
	d.destination = l.in.Destination
	root := d.parse(renderERB(d, data, l.in.ERBEnv))
	if root == nil {
		return nil
	}
	if destFile != "" {
		dd := newDoc(destFile, r)
		dd.erbLines = d.erbLines
		over := dd.parse(renderERB(dd, destData, l.in.ERBEnv))
		if over == nil {
			return nil
		}
		d.markFile(over, destFile)
		root = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mergeDestination(d, root, over)}}
	}
	var s *svcDef
	if isTemplated(d.deref(root)) {
		s = l.renderService(d, root)
	} else {
		s = parseService(d, root)
	}
	if s == nil {
		return nil
	}
	out := []*svcDef{s}
	if s.accessories != nil {
		out = append(out, parseAccessories(s)...)
	}
	return out
}

func isTemplated(n *yaml.Node) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "template" {
			return true
		}
	}
	return false
}

func sortWarnings(pl *Plan) {
	slices.Sort(pl.Warnings)
	pl.Warnings = slices.Compact(pl.Warnings)
	slices.Sort(pl.ReleasedHolds)
}

// serviceFiles lists services/*.yml and services/*.yaml, sorted, without
// the destination files (NAME.DEST.yml next to NAME.yml).
func serviceFiles(src fs.FS) ([]string, error) {
	ents, err := fs.ReadDir(src, "services")
	if err != nil {
		if _, statErr := fs.Stat(src, "services"); statErr != nil {
			return nil, nil
		}
		return nil, err
	}
	all := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".yaml")) {
			all["services/"+n] = true
		}
	}
	var out []string
	for f := range all {
		if !isDestinationFile(f, all) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out, nil
}
