package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const stateVersion = 1

// stateFile is what StateDir/routes.json holds.
type stateFile struct {
	Version int          `json:"version"`
	Routes  []savedRoute `json:"routes"`
}

type savedRoute struct {
	DeployRequest           // without its custom certificate, which is in CertFile
	Since         time.Time `json:"since"`
	// CertFile names the file under StateDir/tls (mode 0600) that holds the
	// route's custom certificate and key.
	CertFile string `json:"cert_file,omitempty"`
}

func statePath(dir string) string { return filepath.Join(dir, "routes.json") }
func certDir(dir string) string   { return filepath.Join(dir, "certs") }

// save writes tab's routes to the state file, atomically. Callers hold s.mu.
func (s *Server) save(tab *table) error {
	if s.cfg.StateDir == "" {
		return nil
	}
	f := stateFile{Version: stateVersion, Routes: []savedRoute{}}
	certFiles := map[string]bool{}
	for _, svc := range tab.services {
		r := savedRoute{DeployRequest: svc.req.public(), Since: svc.since}
		if svc.req.TLSCertificate != "" {
			// Written before the routes that name it.
			name, err := writeCert(s.cfg.StateDir, svc.req)
			if err != nil {
				return fmt.Errorf("save proxy state: %w", err)
			}
			r.CertFile, certFiles[name] = name, true
		}
		f.Routes = append(f.Routes, r)
	}
	sortRoutes(f.Routes)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(statePath(s.cfg.StateDir), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save proxy state: %w", err)
	}
	pruneCerts(s.cfg.StateDir, certFiles)
	return nil
}

func sortRoutes(r []savedRoute) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j].Service < r[j-1].Service; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}

// restore loads the state file, if any, and serves its routes at once.
func (s *Server) restore() error {
	if s.cfg.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("make state dir: %w", err)
	}
	data, err := os.ReadFile(statePath(s.cfg.StateDir))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read proxy state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("read proxy state %s: %w", statePath(s.cfg.StateDir), err)
	}
	if f.Version != stateVersion {
		return fmt.Errorf("read proxy state %s: version %d, want %d", statePath(s.cfg.StateDir), f.Version, stateVersion)
	}
	services := map[string]*service{}
	for _, r := range f.Routes {
		req := r.DeployRequest.withDefaults()
		if r.CertFile != "" {
			var err error
			if req.TLSCertificate, req.TLSKey, err = readCert(s.cfg.StateDir, r.CertFile); err != nil {
				return fmt.Errorf("read proxy state: route %q: its certificate: %w", req.Service, err)
			}
		}
		// An expired certificate is served still: the proxy comes back as
		// it was, and the next deploy says what is wrong.
		err := req.validate(false)
		var svc *service
		if err == nil {
			svc, err = s.newService(req, r.Since, false)
		}
		if err != nil {
			return fmt.Errorf("read proxy state: route %q: %w", req.Service, err)
		}
		t := newTarget(s, req)
		t.setHealth(true, "") // it was healthy when saved; the monitor will tell
		svc.target = t
		services[req.Service] = svc
	}
	tab, err := buildTable(services)
	if err != nil {
		return fmt.Errorf("read proxy state: %w", err)
	}
	s.table.Store(tab)
	for _, svc := range services {
		go svc.target.monitor()
	}
	s.log.InfoContext(context.Background(), "routes restored", "routes", len(services))
	return nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it, and renames it over path, so a crash leaves the old file or the
// new one, never a torn one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
