package state

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSQLite_Conformance(t *testing.T) {
	testStore(t, func(t *testing.T) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "state.db")
	})
}

func TestSQLitePath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dsn, want := range map[string]string{
		"sqlite:///var/lib/bosun/state.db": "/var/lib/bosun/state.db",
		"sqlite:/var/lib/bosun/state.db":   "/var/lib/bosun/state.db",
		"sqlite:bosun-data/state.db":       filepath.Join(wd, "bosun-data/state.db"),
		"sqlite:./x/../state.db":           filepath.Join(wd, "state.db"),
	} {
		got, err := SQLitePath(dsn)
		if err != nil || got != want {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q", dsn, got, err, want)
		}
	}
	for _, dsn := range []string{"sqlite:", "sqlite://host/x.db", "sqlite:x.db?mode=ro", "sqlite:///", "postgres://x"} {
		if got, err := SQLitePath(dsn); err == nil {
			t.Errorf("SQLitePath(%q) = %q, want an error", dsn, got)
		}
	}
}

func TestOpen_UnknownDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://u:secret@h/db", "state.db", "host=x password=secret"} {
		_, err := Open(t.Context(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error shows the password: %v", dsn, err)
		}
	}
}

func TestSQLite_Open(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := Open(t.Context(), "sqlite:nested/folder/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lite, ok := s.(*SQLite)
	if !ok {
		t.Fatalf("Open(sqlite:…) = %T, want *SQLite", s)
	}
	if want := filepath.Join(dir, "nested/folder/state.db"); lite.Path() != want {
		t.Errorf("Path() = %q, want %q (relative to the working directory)", lite.Path(), want)
	}
	fi, err := os.Stat(lite.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600: it holds the secret-hash key", fi.Mode().Perm())
	}
	db := lite.DB()
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if n := db.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("pool allows %d connections, want 1", n)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://bosun:hunter2@db:5432/bosun?sslmode=require": "postgres://bosun:[redacted]@db:5432/bosun?sslmode=require",
		"postgres://db/bosun?password=hunter2&x=1":               "postgres://db/bosun?password=[redacted]&x=1",
		"host=db password=hunter2 user=u":                        "host=db password=[redacted] user=u",
		"sqlite:state.db":                                        "sqlite:state.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasPassword(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://bosun:hunter2@db:5432/bosun":    true,
		"postgres://db/bosun?x=1&password=hunter2":  true,
		"host=db PASSWORD=hunter2 user=u":           true,
		"postgres://bosun@db/bosun?sslmode=require": false,
		"host=db user=u":                            false,
		"sqlite:state.db":                           false,
	} {
		if got := HasPassword(in); got != want {
			t.Errorf("HasPassword(%q) = %v, want %v", Redact(in), got, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Processes starting together on a new file (a daemon and a CLI command,
// say) all open it: one switches it to WAL and migrates, the others wait.
func TestSQLite_ConcurrentFirstOpen(t *testing.T) {
	for round := range 20 {
		dsn := "sqlite://" + filepath.Join(t.TempDir(), "state.db")
		const n = 6
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				s, err := Open(t.Context(), dsn)
				if err == nil {
					_, err = s.SecretKey(t.Context())
					s.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: open %d of %d at once: %v", round, i, n, err)
			}
		}
	}
}

// An existing file that is not a bosun store (empty, another program's
// SQLite database, not SQLite at all) is refused and left as it was: making
// a new store there would lose the deployment history and the secret-hash
// key without a word. Only Init makes a store there, and never over a file
// that is not SQLite.
func TestSQLite_OpenRefusesForeignFile(t *testing.T) {
	foreignSQLite := func(t *testing.T, path string) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		make     func(t *testing.T, path string)
		why      string // in the refusal
		initable bool
	}{
		{"empty file", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }, "empty (0 bytes)", true},
		{"sqlite without bosun schema", foreignSQLite, "no bosun schema (tables: notes)", true},
		{"not sqlite", func(t *testing.T, path string) { os.WriteFile(path, []byte("servers:\n  web-1: {}\n"), 0o600) }, "not a SQLite database", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tc.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), "sqlite://"+path)
			if err == nil {
				s.Close()
				t.Fatal("Open made a store over an existing file that is not one")
			}
			if !errors.Is(err, ErrNotAStore) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Open: %v; want ErrNotAStore naming %s and %q", err, path, tc.why)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("the refused file was changed (%d bytes before, %d after)", len(before), len(after))
			}

			s, err = OpenWith(t.Context(), "sqlite://"+path, OpenOpts{Init: true})
			if !tc.initable {
				if err == nil {
					s.Close()
					t.Fatal("Init made a store over a file that is not SQLite")
				}
				if !errors.Is(err, ErrNotAStore) {
					t.Errorf("Init: %v, want ErrNotAStore", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			key, err := s.SecretKey(t.Context())
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			// Now it is a store: a plain Open takes it, with the same key.
			s, err = Open(t.Context(), "sqlite://"+path)
			if err != nil {
				t.Fatalf("Open after Init: %v", err)
			}
			defer s.Close()
			if again, _ := s.SecretKey(t.Context()); !bytes.Equal(key, again) {
				t.Error("the secret-hash key changed between opens")
			}
		})
	}
}

// A missing file is created as a store, and a store that was closed opens
// again with its history and key.
func TestSQLite_OpenCreatesMissingFile(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "new", "state.db")
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := s.SecretKey(t.Context())
	id, err := s.CreateDeployment(t.Context(), Deployment{Repo: "fleet", Commit: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if again, _ := s.SecretKey(t.Context()); !bytes.Equal(key, again) {
		t.Error("the secret-hash key changed on reopen")
	}
	if _, err := s.GetDeployment(t.Context(), id); err != nil {
		t.Errorf("deployment %d lost on reopen: %v", id, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(s.(*SQLite).Path()))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("creating the store left %s behind", e.Name())
		}
	}
}
