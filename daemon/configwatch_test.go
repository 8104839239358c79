package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/bosunhq/bosun/internal/testutil"
	"github.com/bosunhq/bosun/state"
)

// TestDaemon_configDSNPasswordsRedacted edits the running daemon's config
// file to state DSNs that hold a password, in each form PostgreSQL takes:
// key/value (password=…), a URL's user info, and a URL's password
// parameter. Each change is refused, and the daemon's log says why without
// the password (state.Redact is the one redactor).
func TestDaemon_configDSNPasswordsRedacted(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(t.Context(), "sqlite:///"+filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs testutil.SyncBuffer
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data") // not ./bosun-data in the package
	d, err := New(cfg, Deps{Store: st, Applier: newApplier(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		NewQueue: func(context.Context, *river.Workers) (Queue, error) { return nil, errors.New("not started") }})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bosun.yml")
	rest := "webhook: {secret_env: S}\nrepos: [{name: fleet, url: /srv/fleet}]\ndata_dir: " + cfg.DataDir + "\n"
	if err := os.WriteFile(path, []byte(rest), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.WatchConfig(ctx, path) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond) // the watch is set up

	const secret = "hunter2"
	for i, tc := range []struct{ dsn, want string }{
		{"host=db user=bosun password=" + secret + " dbname=bosun", "password=[redacted]"},
		{"postgres://bosun:" + secret + "@db/bosun", "the DSN holds a password"},
		{"postgres://bosun@db/bosun?sslmode=disable&password=" + secret, "the DSN holds a password"},
	} {
		if err := os.WriteFile(path, []byte("state: '"+tc.dsn+"'\n"+rest), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the change to state "+state.Redact(tc.dsn)+" to be refused", func() bool {
			return strings.Count(logs.String(), "config change refused") == i+1
		})
		line := logs.String()
		line = line[strings.LastIndex(line, "config change refused"):]
		if !strings.Contains(line, tc.want) {
			t.Errorf("state %s: refused with %q, want it to say %q", state.Redact(tc.dsn), line, tc.want)
		}
	}
	if got := logs.String(); strings.Contains(got, secret) {
		t.Errorf("a DSN password reached the daemon's log:\n%s", got)
	}
}
