package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/bosunhq/bosun/planner"
)

func init() {
	register(&command{name: "validate", summary: "check a config repository folder; print every error as file:line:col", run: runValidate})
}

func runValidate(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("validate", "bosun validate [DIR]", `
Check the config repository in DIR (default: the current folder): fleet.yml,
services/*.yml and templates/*.yml.tmpl. Prints nothing and exits 0 when the
config is valid; otherwise prints every error as "file:line:col: message" and
exits 1. Keys that bosun accepts but ignores (Kamal's build-only keys) are
reported as notices on stderr. Secrets are not resolved.`, e)
	dest := fs.String("destination", "", "Kamal `destination`: merge services/NAME.DEST.yml over services/NAME.yml (as kamal -d DEST)")
	var erbEnv stringList
	fs.Var(&erbEnv, "erb-env", "environment variable `NAME` that ERB lookups (<%= ENV[\"NAME\"] %>) in service files may read (repeatable; no other is visible)")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 1 {
		return 1, fmt.Errorf("too many arguments: want at most one folder, got %d", fs.NArg())
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if st, err := os.Stat(dir); err != nil {
		return 1, err
	} else if !st.IsDir() {
		return 1, fmt.Errorf("%s is not a folder", dir)
	}
	root, err := os.OpenRoot(dir) // symlinks may not leave the folder
	if err != nil {
		return 1, err
	}
	defer root.Close()
	p := planner.New(planner.Config{SecretKey: []byte("validate")})
	plan, err := p.Plan(ctx, root.FS(), planner.Input{Repo: dir, Destination: *dest, ERBEnv: planner.ERBEnvFrom(e.getenv, erbEnv)})
	var cerrs planner.ConfigErrors
	if errors.As(err, &cerrs) {
		for _, ce := range cerrs {
			fmt.Fprintln(e.stdout, ce.Error())
		}
		return 1, nil
	}
	if err != nil {
		return 1, err
	}
	for _, n := range plan.Notices {
		fmt.Fprintln(e.stderr, n)
	}
	return 0, nil
}
