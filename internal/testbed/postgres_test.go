package testbed

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgres_SchemaPerTest(t *testing.T) {
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls returned one DSN: %s", a)
	}
	ctx := t.Context()
	connA, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("connect to the first schema: %v", err)
	}
	defer connA.Close(context.Background())
	connB, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatalf("connect to the second schema: %v", err)
	}
	defer connB.Close(context.Background())

	// An unqualified table lands in the test's own schema only.
	if _, err := connA.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("create table in the first schema: %v", err)
	}
	var schemaA string
	if err := connA.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'only_in_a'").Scan(&schemaA); err != nil {
		t.Fatalf("find the table: %v", err)
	}
	if !strings.HasPrefix(schemaA, "bosun_") || !strings.Contains(a, schemaA) {
		t.Errorf("table is in schema %q; want the one named by %s", schemaA, a)
	}
	if _, err := connB.Exec(ctx, "SELECT * FROM only_in_a"); err == nil {
		t.Errorf("the second schema sees the first schema's table")
	}
}

func TestPostgres_DroppedAtCleanup(t *testing.T) {
	var dsn string
	t.Run("inner", func(t *testing.T) { dsn = Postgres(t) })
	if t.Skipped() || dsn == "" {
		return
	}
	base, err := pgEnsure()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := cfg.RuntimeParams["search_path"]
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if schema == "" || n != 0 {
		t.Errorf("schema %q still exists after its test ended (count %d)", schema, n)
	}
}

func TestPgWithSearchPath(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h:5/db?sslmode=disable": "postgres://u@h:5/db?search_path=s1&sslmode=disable",
		"host=/tmp dbname=x":                  "postgres:///?dbname=x&host=%2Ftmp&search_path=s1",
		"host=h  password='a b\\'c' user=u":   "postgres:///?host=h&password=a+b%27c&search_path=s1&user=u",
	} {
		got, err := pgWithSearchPath(in, "s1")
		if err == nil {
			if _, perr := pgx.ParseConfig(got); perr != nil {
				t.Errorf("pgx cannot parse %q: %v", got, perr)
			}
		}
		if err != nil || got != want {
			t.Errorf("pgWithSearchPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPgWithSearchPath_Malformed(t *testing.T) {
	for _, in := range []string{"host", "host='x", "=x"} {
		if got, err := pgWithSearchPath(in, "s1"); err == nil {
			t.Errorf("pgWithSearchPath(%q) = %q, want an error", in, got)
		}
	}
}
