package main

import (
	"context"
	"fmt"

	"github.com/bosunhq/bosun/migrations"
	"github.com/bosunhq/bosun/state"
)

func init() {
	register(&command{name: "migrate", summary: "bring the state database's schema up to date", run: runMigrate})
}

func runMigrate(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("migrate", "bosun migrate [--state DSN] [--down N]",
		`Apply the state store's pending schema migrations and print each one it
applied. Every command that opens the store does this by itself; migrate
does it explicitly, e.g. before starting several daemon replicas, and says
what changed. It also makes a new store in a SQLite file that exists but
is empty or holds no bosun schema, which the other commands refuse (as
they would lose the deployment history and the secret-hash key).

--down N reverts the newest N migrations instead. That deletes the tables
those migrations created, and their data: it is for development and tests.`, e)
	dsn := stateFlag(fs, e)
	down := fs.Int("down", 0, "revert the newest `N` migrations instead of applying (destroys their data)")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 0 {
		return 1, fmt.Errorf("unexpected argument %q; see 'bosun migrate --help'", fs.Arg(0))
	}
	if *down < 0 {
		return 1, fmt.Errorf("--down must be a positive count, got %d", *down)
	}
	// Not state.Open: it would migrate before we could report or revert.
	db, dialect, closeDB, err := state.OpenDB(ctx, *dsn)
	if err != nil {
		return 1, err
	}
	defer closeDB()
	where := state.Redact(*dsn)
	if *down > 0 {
		reverted, err := migrations.Down(ctx, db, dialect, *down)
		if err != nil {
			return 1, fmt.Errorf("revert migrations of %s: %w", where, err)
		}
		for _, m := range reverted {
			fmt.Fprintf(e.stdout, "reverted %s\n", m)
		}
		if len(reverted) == 0 {
			fmt.Fprintf(e.stdout, "%s: no migration to revert\n", where)
		}
		return 0, nil
	}
	ran, err := migrations.Apply(ctx, db, dialect)
	if err != nil {
		return 1, fmt.Errorf("migrate %s: %w", where, err)
	}
	for _, m := range ran {
		fmt.Fprintf(e.stdout, "applied %s\n", m)
	}
	vs, err := migrations.Versions(ctx, db, dialect)
	if err != nil {
		return 1, fmt.Errorf("read schema version of %s: %w", where, err)
	}
	v := 0
	if len(vs) > 0 {
		v = vs[len(vs)-1]
	}
	if len(ran) == 0 {
		fmt.Fprintf(e.stdout, "%s: schema up to date (version %04d)\n", where, v)
	} else {
		fmt.Fprintf(e.stdout, "%s: schema at version %04d\n", where, v)
	}
	return 0, nil
}
