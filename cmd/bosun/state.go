package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/bosunhq/bosun/state"
)

// stateFlag defines --state on fs, defaulting to $BOSUN_STATE and then to
// state.DefaultDSN. Every command that opens the store uses it, so that they
// agree on where the state is. --help shows the default with any password
// masked.
func stateFlag(fs *flag.FlagSet, e env) *string {
	dsn := state.DefaultDSN
	if v := e.getenv("BOSUN_STATE"); v != "" {
		dsn = v
	}
	fs.Var(dsnValue{&dsn}, "state", "state store `DSN`: sqlite:PATH, sqlite:///ABS/PATH or postgres://… (env BOSUN_STATE)")
	return &dsn
}

// dsnValue is a string flag that prints its value with passwords masked.
type dsnValue struct{ p *string }

func (v dsnValue) String() string {
	if v.p == nil {
		return ""
	}
	return state.Redact(*v.p)
}

func (v dsnValue) Set(s string) error { *v.p = s; return nil }

// openStore opens the store at dsn. A SQLite file that exists but is no
// bosun store is refused, saying how to make one there on purpose; init
// (the --init flag) makes it.
func openStore(ctx context.Context, dsn string, init bool) (state.Store, error) {
	st, err := state.OpenWith(ctx, dsn, state.OpenOpts{Init: init})
	if errors.Is(err, state.ErrNotAStore) && !strings.Contains(err.Error(), "not a SQLite database") {
		return nil, fmt.Errorf("%w\nRestore the file from a backup, or make a new, empty store there (deployment history and the secret-hash key start afresh) with `bosun migrate --state %s` (or --init on apply and serve)", err, state.Redact(dsn))
	}
	return st, err
}

// initFlag defines --init, which makes a new store where the state file
// exists but holds no store.
func initFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("init", false, "make a new, empty store when the state file exists but is empty or holds no bosun schema (otherwise refused)")
}
