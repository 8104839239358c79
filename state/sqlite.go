package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bosunhq/bosun/migrations"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the store in one SQLite file (modernc.org/sqlite, pure Go).
//
// Its database/sql pool has one connection: every statement of the process
// runs on it in turn, so writers never contend inside the process, and a
// transaction sees no interleaved writes. Other processes on the same file
// (a CLI command beside the daemon) wait for the write lock up to the busy
// timeout; transactions begin IMMEDIATE so that they queue for the lock at
// BEGIN instead of failing when they first write. The journal is WAL, and
// foreign keys are enforced.
type SQLite struct {
	sqlStore
	path string
}

var _ Store = (*SQLite)(nil)

// sqliteParams are the connection settings, applied to every connection.
const sqliteParams = "?_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1&_synchronous=NORMAL&_txlock=immediate"

// OpenSQLite opens the SQLite store at path and applies the migrations.
// A missing file (and its folder) is created as a new store, readable by its
// owner only: it holds the secret-hash key. An existing file that is not a
// bosun store is refused with ErrNotAStore (see OpenOpts.Init).
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	return openSQLite(ctx, path, OpenOpts{})
}

func openSQLite(ctx context.Context, path string, opts OpenOpts) (*SQLite, error) {
	if err := checkSQLitePath(path); err != nil {
		return nil, err
	}
	switch _, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := createSQLite(ctx, path); err != nil {
			return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	default:
		if err := checkSQLiteStore(ctx, path, opts.Init); err != nil {
			return nil, err
		}
	}
	db, err := openSQLiteDB(ctx, path)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Apply(ctx, db, migrations.SQLite); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	return &SQLite{sqlStore: sqlStore{db: db, dialect: migrations.SQLite}, path: path}, nil
}

func checkSQLitePath(path string) error {
	if strings.ContainsAny(path, "?#") || path == "" {
		return fmt.Errorf("open sqlite state %q: the path may not be empty or contain ? or #", path)
	}
	return nil
}

// createSQLite makes a new, migrated store at path, which does not exist.
// It builds the store in a temporary file beside path and links it into
// place, so that a file at path is always a whole store: a crash while
// creating leaves no empty file that the next start would refuse, and a
// process opening path at the same moment sees either nothing or the
// finished store. When another process links its store first, that one is
// kept.
func createSQLite(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create folder: %w", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := fmt.Sprintf("%s.new-%x", path, rnd)
	defer func() {
		for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
			os.Remove(p)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := openSQLiteDB(ctx, tmp)
	if err != nil {
		return err
	}
	_, err = migrations.Apply(ctx, db, migrations.SQLite)
	// Closing the last connection checkpoints the WAL into the file.
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// sqliteHeader starts every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// checkSQLiteStore refuses, with ErrNotAStore, an existing file at path that
// is not a bosun store: empty, not SQLite, or SQLite without bosun's
// schema. With init, an empty file or a SQLite database without the schema
// is accepted (the migrations make a store in it); a file that is not
// SQLite never is. It reads the file without changing it.
func checkSQLiteStore(ctx context.Context, path string, init bool) error {
	refuse := func(why string) error {
		return fmt.Errorf("open sqlite state %s: %w: the file %s", path, ErrNotAStore, why)
	}
	head := make([]byte, len(sqliteHeader))
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	n, _ := io.ReadFull(f, head)
	f.Close()
	if n == 0 {
		// A database in WAL mode may live in its -wal file until a
		// checkpoint; that one is read below.
		if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
			if init {
				return nil
			}
			return refuse("is empty (0 bytes)")
		}
	} else if string(head[:n]) != sqliteHeader {
		return refuse("is not a SQLite database; move it away, or name another --state")
	}
	// Read-only: no journal mode or anything else is set on the file.
	db, err := sql.Open("sqlite", path+"?_query_only=1&_busy_timeout=10000")
	if err != nil {
		return fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		return fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("open sqlite state %s: %w", path, err)
		}
		if name == "schema_migrations" {
			return nil
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	if init {
		return nil
	}
	if len(tables) == 0 {
		return refuse("is an empty SQLite database")
	}
	if len(tables) > 5 {
		tables = append(tables[:5], "…")
	}
	return refuse("has no bosun schema (tables: " + strings.Join(tables, ", ") + ")")
}

// openSQLiteDB opens the file with the store's settings, unmigrated,
// creating it when missing.
func openSQLiteDB(ctx context.Context, path string) (*sql.DB, error) {
	if err := checkSQLitePath(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite state %s: create folder: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	f.Close()
	db, err := sql.Open("sqlite", path+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := pingSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	return db, nil
}

// pingSQLite makes the pool's connection. Processes opening a new file at
// the same moment can find it locked while one of them switches it to WAL,
// a step for which SQLite does not wait: try again for up to ten seconds.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// DB returns the store's database/sql pool (one connection), e.g. for
// River's riversqlite driver. The store owns it: do not close it.
func (s *SQLite) DB() *sql.DB { return s.db }

// Path returns the absolute path of the database file.
func (s *SQLite) Path() string { return s.path }
