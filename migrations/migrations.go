package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Dialect names a SQL dialect that has its own set of migrations.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

func (d Dialect) String() string { return string(d) }

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Migration is one schema version: the SQL that brings a database from the
// previous version to this one (Up) and back (Down).
type Migration struct {
	Version int    // 1, 2, …: the NNNN of the file name
	Name    string // the rest of the file name, e.g. "init"
	Up      string
	Down    string
}

// String is the migration's file stem, e.g. "0001_init".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// All returns the migrations of dialect d, oldest first. Each version has an
// up and a down file; a gap in the numbering is an error.
func All(d Dialect) ([]Migration, error) {
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("unknown dialect %q", d)
	}
	entries, err := fs.ReadDir(files, string(d))
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", d, err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s/%s: name is not NNNN_name.up.sql or NNNN_name.down.sql", d, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(files, path.Join(string(d), e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", d, e.Name(), err)
		}
		mg := byVersion[v]
		if mg == nil {
			mg = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mg
		} else if mg.Name != m[2] {
			return nil, fmt.Errorf("migration %s/%04d has two names: %s and %s", d, v, mg.Name, m[2])
		}
		if m[3] == "up" {
			mg.Up = string(body)
		} else {
			mg.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s migrations: expected version %04d, found %s", d, i+1, m)
		}
		if strings.TrimSpace(m.Up) == "" || strings.TrimSpace(m.Down) == "" {
			return nil, fmt.Errorf("%s migration %s: needs both an up and a down file", d, m)
		}
	}
	return out, nil
}

// Apply brings the database up to the newest migration of dialect d. It runs
// every pending migration, oldest first, in one transaction, records each in
// schema_migrations, and returns the ones it ran (none when the schema is
// current). A database whose schema is newer than this binary knows is an
// error, and nothing is changed.
//
// On SQLite, db should begin transactions with BEGIN IMMEDIATE (the state
// store opens it with _txlock=immediate) so that two processes migrating one
// file at once queue on the write lock instead of failing.
func Apply(ctx context.Context, db *sql.DB, d Dialect) ([]Migration, error) {
	all, err := All(d)
	if err != nil {
		return nil, err
	}
	var ran []Migration
	err = inTx(ctx, db, d, func(tx *sql.Tx, done map[int]bool) error {
		for v := range done {
			if v > len(all) {
				return fmt.Errorf("database schema is at version %04d, newer than this bosun knows (%04d): upgrade bosun", v, len(all))
			}
		}
		for _, m := range all {
			if done[m.Version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.Up); err != nil {
				return fmt.Errorf("apply migration %s/%s: %w", d, m, err)
			}
			if _, err := tx.ExecContext(ctx, Rebind(d, "INSERT INTO schema_migrations (version, name) VALUES (?, ?)"), m.Version, m.Name); err != nil {
				return fmt.Errorf("record migration %s/%s: %w", d, m, err)
			}
			ran = append(ran, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ran, nil
}

// Down reverts the newest n applied migrations (all of them when n exceeds
// the number applied), newest first, in one transaction, and returns the ones
// it reverted. n must be positive.
func Down(ctx context.Context, db *sql.DB, d Dialect, n int) ([]Migration, error) {
	if n <= 0 {
		return nil, fmt.Errorf("revert migrations: count must be positive, got %d", n)
	}
	all, err := All(d)
	if err != nil {
		return nil, err
	}
	var reverted []Migration
	err = inTx(ctx, db, d, func(tx *sql.Tx, done map[int]bool) error {
		top := 0
		for v := range done {
			top = max(top, v)
		}
		for v := top; v >= 1 && len(reverted) < n; v-- {
			if !done[v] {
				continue
			}
			if v > len(all) {
				return fmt.Errorf("revert migration %04d: this bosun does not know it (it knows up to %04d)", v, len(all))
			}
			m := all[v-1]
			if _, err := tx.ExecContext(ctx, m.Down); err != nil {
				return fmt.Errorf("revert migration %s/%s: %w", d, m, err)
			}
			if _, err := tx.ExecContext(ctx, Rebind(d, "DELETE FROM schema_migrations WHERE version = ?"), m.Version); err != nil {
				return fmt.Errorf("unrecord migration %s/%s: %w", d, m, err)
			}
			reverted = append(reverted, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return reverted, nil
}

// Versions returns the versions recorded as applied, oldest first (none on a
// database that was never migrated).
func Versions(ctx context.Context, db *sql.DB, d Dialect) ([]int, error) {
	var vs []int
	err := inTx(ctx, db, d, func(_ *sql.Tx, done map[int]bool) error {
		for v := range done {
			vs = append(vs, v)
		}
		return nil
	})
	sort.Ints(vs)
	return vs, err
}

// inTx runs fn in a transaction that holds the migration lock and sees the
// set of applied versions; it commits when fn returns nil.
func inTx(ctx context.Context, db *sql.DB, d Dialect, fn func(tx *sql.Tx, done map[int]bool) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var create string
	switch d {
	case Postgres:
		// Replicas starting at once queue here; the key is per schema so that
		// tests migrating their own schemas do not wait for each other.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('bosun.migrations.' || coalesce(current_schema(), '')))"); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		create = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`
	case SQLite:
		create = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`
	default:
		return fmt.Errorf("unknown dialect %q", d)
	}
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if err := fn(tx, done); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return nil
}

// Rebind turns the ? placeholders of q into PostgreSQL's $1, $2, … when
// d is Postgres; SQLite's queries are returned as they are.
func Rebind(d Dialect, q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
