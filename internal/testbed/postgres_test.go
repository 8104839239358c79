package testbed

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPostgres_SchemaPerTest(t *testing.T) {
	a, b := Postgres(t), Postgres(t)
	require.NotEqual(t, a, b, "two calls returned one DSN")
	ctx := t.Context()
	connA, err := pgx.Connect(ctx, a)
	require.NoError(t, err, "connect to the first schema")
	defer connA.Close(context.Background())
	connB, err := pgx.Connect(ctx, b)
	require.NoError(t, err, "connect to the second schema")
	defer connB.Close(context.Background())

	// An unqualified table lands in the test's own schema only.
	_, err = connA.Exec(ctx, "CREATE TABLE only_in_a (x int)")
	require.NoError(t, err, "create table in the first schema")
	var schemaA string
	err = connA.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'only_in_a'").Scan(&schemaA)
	require.NoError(t, err, "find the table")
	assert.Regexp(t, `^bosun_`, schemaA, "the table's schema")
	assert.Contains(t, a, schemaA, "the table's schema is not the one the DSN names")
	_, err = connB.Exec(ctx, "SELECT * FROM only_in_a")
	assert.Error(t, err, "the second schema sees the first schema's table")
}

func TestPostgres_DroppedAtCleanup(t *testing.T) {
	var dsn string
	t.Run("inner", func(t *testing.T) { dsn = Postgres(t) })
	if t.Skipped() || dsn == "" {
		return
	}
	base, err := pgEnsure()
	require.NoError(t, err)
	conn, err := pgx.Connect(t.Context(), base)
	require.NoError(t, err, "connect")
	defer conn.Close(context.Background())
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	schema := cfg.RuntimeParams["search_path"]
	require.NotEmpty(t, schema, "the test's DSN names no schema")
	var n int
	err = conn.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n)
	require.NoError(t, err)
	assert.Zero(t, n, "schema %q still exists after its test ended", schema)
}

func TestPgWithSearchPath(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h:5/db?sslmode=disable": "postgres://u@h:5/db?search_path=s1&sslmode=disable",
		"host=/tmp dbname=x":                  "postgres:///?dbname=x&host=%2Ftmp&search_path=s1",
		"host=h  password='a b\\'c' user=u":   "postgres:///?host=h&password=a+b%27c&search_path=s1&user=u",
	} {
		got, err := pgWithSearchPath(in, "s1")
		if assert.NoError(t, err, "pgWithSearchPath(%q)", in) {
			_, perr := pgx.ParseConfig(got)
			assert.NoError(t, perr, "pgx cannot parse %q", got)
		}
		assert.Equal(t, want, got, "pgWithSearchPath(%q)", in)
	}
}

func TestPgWithSearchPath_Malformed(t *testing.T) {
	for _, in := range []string{"host", "host='x", "=x"} {
		got, err := pgWithSearchPath(in, "s1")
		assert.Error(t, err, "pgWithSearchPath(%q) = %q, want an error", in, got)
	}
}
