// Package state is bosun's store: what was applied where (per repository,
// service, role and host), every spec ever applied (for rollback), the
// deployments and their step-by-step events, holds, leases (locks) shared by
// daemon replicas, received webhook deliveries, API tokens, the last plan of
// each open pull request, the actions people took (with their actor), and
// the key that hashes secret values.
//
// One interface, Store, has two implementations: SQLite (modernc.org/sqlite,
// pure Go, the embedded default; see SQLite) and PostgreSQL (pgx, for
// production and several replicas; see Postgres). Open picks one from a DSN
// and applies the schema migrations of package migrations. The same
// conformance suite runs against both.
//
// The store never deletes history: deployments, their events, the spec
// versions and the actions stay (a closed pull request's plan goes). It never stores a secret value: specs arrive as JSON that
// carries only keyed hashes of secrets, and the one key it keeps (SecretKey)
// is what makes those hashes. It never imports the planner: specs travel as
// JSON bytes.
//
// Open creates a missing SQLite file as a new store but refuses an existing
// one that is not a store (ErrNotAStore): an emptied file must not silently
// become a new store without its history and key. OpenOpts.Init asks for that.
//
// Every method takes a context and stops when it is cancelled. Errors callers
// branch on: ErrNotAStore (Open), ErrNotFound (no such row) and ErrNotHeld (a
// lock that the caller does not hold).
package state
