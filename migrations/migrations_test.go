package migrations

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver
	_ "modernc.org/sqlite"             // "sqlite" driver
)

func TestMain(m *testing.M) { os.Exit(testbed.PostgresMain(m)) }

// wantTables are the tables of the newest schema, besides schema_migrations.
var wantTables = []string{"actions", "api_tokens", "applied", "applied_generations", "deployment_events", "deployments", "holds", "locks", "meta", "pull_requests", "spec_versions", "webhook_deliveries"}

type dialectCase struct {
	d Dialect
	// open returns a new handle on one fresh database per call of newDB.
	newDB func(t *testing.T) func(t *testing.T) *sql.DB
}

func dialects() []dialectCase {
	return []dialectCase{
		{SQLite, func(t *testing.T) func(t *testing.T) *sql.DB {
			path := filepath.Join(t.TempDir(), "m.db")
			return func(t *testing.T) *sql.DB {
				db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1&_txlock=immediate")
				if err != nil {
					t.Fatal(err)
				}
				db.SetMaxOpenConns(1)
				t.Cleanup(func() { db.Close() })
				// Connect now: the first connection switches the file to WAL,
				// which SQLite does not wait for (the state store retries;
				// this test is about Apply).
				if err := db.PingContext(t.Context()); err != nil {
					t.Fatal(err)
				}
				return db
			}
		}},
		{Postgres, func(t *testing.T) func(t *testing.T) *sql.DB {
			dsn := testbed.Postgres(t)
			return func(t *testing.T) *sql.DB {
				db, err := sql.Open("pgx", dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		}},
	}
}

func tables(t *testing.T, db *sql.DB, d Dialect) []string {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if d == Postgres {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	}
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != "schema_migrations" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func names(ms []Migration) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.String())
	}
	return strings.Join(s, ",")
}

func TestApply_UpDownUp(t *testing.T) {
	for _, c := range dialects() {
		t.Run(string(c.d), func(t *testing.T) {
			t.Parallel()
			db := c.newDB(t)(t)
			ctx := t.Context()
			all, err := All(c.d)
			if err != nil {
				t.Fatal(err)
			}
			ran, err := Apply(ctx, db, c.d)
			if err != nil {
				t.Fatalf("first Apply: %v", err)
			}
			if names(ran) != names(all) || len(all) == 0 {
				t.Fatalf("first Apply ran %q, want every migration %q", names(ran), names(all))
			}
			if got := tables(t, db, c.d); fmt.Sprint(got) != fmt.Sprint(wantTables) {
				t.Fatalf("tables after up: %v, want %v", got, wantTables)
			}
			if ran, err := Apply(ctx, db, c.d); err != nil || len(ran) != 0 {
				t.Fatalf("second Apply ran %q, %v; want nothing", names(ran), err)
			}
			if vs, err := Versions(ctx, db, c.d); err != nil || len(vs) != len(all) || vs[len(vs)-1] != len(all) {
				t.Fatalf("Versions = %v %v", vs, err)
			}

			reverted, err := Down(ctx, db, c.d, len(all)+5)
			if err != nil {
				t.Fatalf("Down: %v", err)
			}
			if len(reverted) != len(all) || reverted[0].Version != len(all) {
				t.Fatalf("Down reverted %q, want all, newest first", names(reverted))
			}
			if got := tables(t, db, c.d); len(got) != 0 {
				t.Fatalf("tables after down: %v, want none", got)
			}
			if vs, _ := Versions(ctx, db, c.d); len(vs) != 0 {
				t.Fatalf("Versions after down = %v", vs)
			}
			if r, err := Down(ctx, db, c.d, 1); err != nil || len(r) != 0 {
				t.Fatalf("Down on an empty schema = %q %v, want nothing", names(r), err)
			}
			if _, err := Down(ctx, db, c.d, 0); err == nil {
				t.Errorf("Down(0) succeeded")
			}

			if ran, err := Apply(ctx, db, c.d); err != nil || names(ran) != names(all) {
				t.Fatalf("Apply after down ran %q, %v", names(ran), err)
			}
			if got := tables(t, db, c.d); fmt.Sprint(got) != fmt.Sprint(wantTables) {
				t.Fatalf("tables after up again: %v", got)
			}
		})
	}
}

func TestApply_RefusesNewerSchema(t *testing.T) {
	for _, c := range dialects() {
		t.Run(string(c.d), func(t *testing.T) {
			t.Parallel()
			db := c.newDB(t)(t)
			if _, err := Apply(t.Context(), db, c.d); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
				t.Fatal(err)
			}
			_, err := Apply(t.Context(), db, c.d)
			if err == nil || !strings.Contains(err.Error(), "newer") {
				t.Errorf("Apply on a newer schema = %v, want an error saying it is newer", err)
			}
		})
	}
}

// Two processes starting at once on one fresh database: both succeed, and
// the migrations run once.
func TestApply_Concurrent(t *testing.T) {
	for _, c := range dialects() {
		t.Run(string(c.d), func(t *testing.T) {
			t.Parallel()
			open := c.newDB(t)
			dbs := []*sql.DB{open(t), open(t), open(t)}
			var wg sync.WaitGroup
			ran := make([][]Migration, len(dbs))
			errs := make([]error, len(dbs))
			start := make(chan struct{})
			for i, db := range dbs {
				wg.Go(func() {
					<-start
					ran[i], errs[i] = Apply(t.Context(), db, c.d)
				})
			}
			close(start)
			wg.Wait()
			total := 0
			for i := range dbs {
				if errs[i] != nil {
					t.Fatalf("Apply %d: %v", i, errs[i])
				}
				total += len(ran[i])
			}
			all, _ := All(c.d)
			if total != len(all) {
				t.Errorf("concurrent Apply ran %d migrations in all, want %d (each once)", total, len(all))
			}
		})
	}
}

func TestAll(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := All(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || ms[0].String() != "0001_init" {
			t.Errorf("All(%s) = %q, want 0001_init first", d, names(ms))
		}
	}
	// Both dialects have the same versions.
	a, _ := All(SQLite)
	b, _ := All(Postgres)
	if names(a) != names(b) {
		t.Errorf("sqlite migrations %q differ from postgres %q", names(a), names(b))
	}
	if _, err := All("mysql"); err == nil {
		t.Errorf("All(mysql) succeeded")
	}
}
