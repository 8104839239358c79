package main

import (
	"flag"

	"github.com/bosunhq/bosun/state"
)

// defaultState is where bosun keeps its state when neither --state nor
// $BOSUN_STATE says otherwise: a SQLite file under the working directory.
const defaultState = "sqlite:bosun-data/state.db"

// stateFlag defines --state on fs, defaulting to $BOSUN_STATE and then to
// defaultState. Every command that opens the store uses it, so that they
// agree on where the state is. --help shows the default with any password
// masked.
func stateFlag(fs *flag.FlagSet, e env) *string {
	dsn := defaultState
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
