// Package migrations owns the SQL schema of bosun's state store, for both
// dialects it supports (SQLite and PostgreSQL), as versioned files embedded in
// the binary: sqlite/NNNN_name.up.sql and .down.sql, and the same under
// postgres/.
//
// Apply runs every pending up-migration in one transaction and records each
// in the schema_migrations table; concurrent callers on one database are
// serialised (an advisory lock on PostgreSQL, the single writer on SQLite), so
// several daemon replicas may start at once. Down reverts the newest
// migrations; it exists for tests and for an operator who must step back.
//
// The package never opens a database itself and never touches a table that
// its migrations did not create: callers hand it a *sql.DB.
package migrations
