package main

import "flag"

// defaultState is where bosun keeps its state when neither --state nor
// $BOSUN_STATE says otherwise: a SQLite file under the working directory.
const defaultState = "sqlite:bosun-data/state.db"

// stateFlag defines --state on fs, defaulting to $BOSUN_STATE and then to
// defaultState. Every command that opens the store uses it, so that they
// agree on where the state is.
func stateFlag(fs *flag.FlagSet, e env) *string {
	def := defaultState
	if v := e.getenv("BOSUN_STATE"); v != "" {
		def = v
	}
	return fs.String("state", def, "state store: sqlite:PATH, sqlite:///ABS/PATH or postgres://… (env BOSUN_STATE; default "+defaultState+")")
}
