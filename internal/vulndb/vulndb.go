// Package vulndb builds the local Go vulnerability database that `make lint`
// hands to govulncheck (-db file://DIR). vuln.go.dev is not reachable from
// bosun's machines; the Go module proxy is, and it serves the database's
// source, the golang.org/x/vulndb module, whose data/osv folder holds one
// OSV entry per vulnerability. Build turns that folder into the v1 layout
// govulncheck reads (https://go.dev/security/vuln/database#api):
//
//	index/db.json       {"modified": newest entry's modified time}
//	index/modules.json  [{"path": module, "vulns": [{"id", "modified"}]}]
//	ID/<id>.json        the OSV entry, byte for byte
//
// The modules index leaves out each vulnerability's "fixed" version. That
// field only lets govulncheck skip reading an entry; without it govulncheck
// reads every entry of a module it finds and decides from the entry's own
// ranges, so the answer is the same.
//
// Ensure caches one built database per vulndb version, so a warm `make
// lint` neither downloads nor builds.
package vulndb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Module is the module path of the database's source.
const Module = "golang.org/x/vulndb"

// entry is the part of an OSV entry the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type dbMeta struct {
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

// validID is what a vulnerability ID must look like to become a file name.
var validID = regexp.MustCompile(`^[A-Z]+-[0-9]{4}-[0-9]+$`)

// Build writes the v1 database for the OSV entries <id>.json in osvDir to
// out, which must not exist yet.
func Build(osvDir, out string) error {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no OSV entries in %s", osvDir)
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return err
	}
	var db dbMeta
	modules := map[string]*moduleMeta{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("read OSV entry %s: %w", f, err)
		}
		if !validID.MatchString(e.ID) || filepath.Base(f) != e.ID+".json" {
			return fmt.Errorf("OSV entry %s: id %q does not match its file name", f, e.ID)
		}
		if e.Modified.After(db.Modified) {
			db.Modified = e.Modified
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			path := a.Package.Name
			if path == "" || seen[path] {
				continue
			}
			seen[path] = true
			m := modules[path]
			if m == nil {
				m = &moduleMeta{Path: path}
				modules[path] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return err
		}
	}
	index := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		index = append(index, m)
	}
	sort.Slice(index, func(i, j int) bool { return index[i].Path < index[j].Path })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), index); err != nil {
		return err
	}
	return writeJSON(filepath.Join(out, "index", "db.json"), db)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Ensure returns the folder of the v1 database built from vulndb version
// (a pseudo-version such as v0.0.0-20261105234957-e22db6528018) under
// cacheDir, downloading the module through the Go module proxy (`go mod
// download`, checked against go.sum's database like any module) and
// building it when the folder is not there yet.
func Ensure(ctx context.Context, version, cacheDir string) (string, error) {
	if !strings.HasPrefix(version, "v") || strings.ContainsAny(version, `/\`) {
		return "", fmt.Errorf("vulndb version %q: want a module version such as v0.0.0-20261105234957-e22db6528018", version)
	}
	dir := filepath.Join(cacheDir, version)
	if _, err := os.Stat(filepath.Join(dir, "index", "modules.json")); err == nil {
		return dir, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	src, err := download(ctx, version)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, version+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := Build(filepath.Join(src, "data", "osv"), filepath.Join(tmp, "db")); err != nil {
		return "", fmt.Errorf("build vulnerability database from %s@%s: %w", Module, version, err)
	}
	// Another lint may have finished the same version meanwhile; either
	// copy is the same.
	if err := os.Rename(filepath.Join(tmp, "db"), dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "index", "modules.json")); statErr == nil {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}

// download fetches Module@version into the module cache and returns its
// folder. It runs outside any module so it never touches go.mod or go.sum.
func download(ctx context.Context, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", Module+"@"+version)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GO111MODULE=on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(stdout.Bytes(), &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("download %s@%s: %s", Module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("download %s@%s: %w: %s", Module, version, err, strings.TrimSpace(stderr.String()))
	}
	if info.Dir == "" {
		return "", fmt.Errorf("download %s@%s: go mod download reported no folder", Module, version)
	}
	return info.Dir, nil
}

// CacheDir is where Ensure keeps databases by default: bosun/vulndb in the
// user's cache folder ($XDG_CACHE_HOME, else ~/.cache, on Linux).
func CacheDir() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "bosun", "vulndb"), nil
}
