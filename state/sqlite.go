package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// OpenSQLite opens (creating it, and its folder, when missing) the SQLite
// database at path and applies the migrations. A new file is readable by its
// owner only: it holds the secret-hash key.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	db, err := openSQLiteDB(ctx, path)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Apply(ctx, db, migrations.SQLite); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite state %s: %w", path, err)
	}
	return &SQLite{sqlStore: sqlStore{db: db, dialect: migrations.SQLite, now: time.Now}, path: path}, nil
}

// openSQLiteDB opens the file with the store's settings, unmigrated.
func openSQLiteDB(ctx context.Context, path string) (*sql.DB, error) {
	if strings.ContainsAny(path, "?#") || path == "" {
		return nil, fmt.Errorf("open sqlite state %q: the path may not be empty or contain ? or #", path)
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
