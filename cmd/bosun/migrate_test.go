package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

func TestCLI_migrate(t *testing.T) {
	sqlite := func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "s", "state.db") }
	for name, newDSN := range map[string]func(t *testing.T) string{
		"sqlite":   sqlite,
		"postgres": func(t *testing.T) string { return testbed.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			dsn := newDSN(t)
			steps := []struct {
				args []string
				want string
			}{
				{[]string{"migrate", "--state", dsn}, "applied 0001_init\napplied 0002_dashboard\napplied 0003_pulls_actions\napplied 0004_fleet\n"},
				{[]string{"migrate", "--state", dsn}, "schema up to date (version 0004)"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "reverted 0004_fleet\n"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "reverted 0003_pulls_actions\n"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "reverted 0002_dashboard\n"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "reverted 0001_init\n"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "no migration to revert"},
				{[]string{"migrate", "--state", dsn}, "applied 0001_init\napplied 0002_dashboard\napplied 0003_pulls_actions\napplied 0004_fleet\n"},
			}
			for _, s := range steps {
				code, out, errOut := runCLI(t, nil, s.args...)
				if code != 0 || !strings.Contains(out, s.want) {
					t.Fatalf("bosun %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", strings.Join(s.args, " "), code, out, errOut, s.want)
				}
			}
		})
	}
}

func TestCLI_migrateStateFromEnv(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "env.db")
	code, out, errOut := runCLI(t, map[string]string{"BOSUN_STATE": dsn}, "migrate")
	if code != 0 || !strings.Contains(out, "applied 0001_init") || !strings.Contains(out, "env.db") {
		t.Fatalf("migrate with BOSUN_STATE: exit %d, %q %q", code, out, errOut)
	}
	// The flag wins over the environment.
	other := "sqlite://" + filepath.Join(t.TempDir(), "flag.db")
	if code, out, _ := runCLI(t, map[string]string{"BOSUN_STATE": dsn}, "migrate", "--state", other); code != 0 || !strings.Contains(out, "flag.db") || !strings.Contains(out, "applied") {
		t.Errorf("--state over BOSUN_STATE: exit %d, %q", code, out)
	}
}

func TestCLI_migrateDefaultState(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if code, out, errOut := runCLI(t, nil, "migrate"); code != 0 || !strings.Contains(out, "applied 0001_init") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, map[string]string{"BOSUN_STATE": "sqlite:" + filepath.Join("bosun-data", "state.db")}, "migrate"); code != 0 {
		t.Fatalf("second migrate: %s", errOut)
	}
	if code, out, _ := runCLI(t, nil, "migrate"); code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("default state is not bosun-data/state.db in the working directory: %q", out)
	}
}

func TestCLI_migrateErrors(t *testing.T) {
	for _, args := range [][]string{
		{"migrate", "--state", "mysql://u:secret@h/db"},
		{"migrate", "--state", "sqlite:" + filepath.Join(t.TempDir(), "x.db"), "--down", "-1"},
		{"migrate", "--state", "sqlite:" + filepath.Join(t.TempDir(), "x.db"), "extra"},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != 1 {
			t.Errorf("bosun %s: exit %d, want 1", strings.Join(args, " "), code)
		}
		if strings.Contains(out+errOut, "secret") {
			t.Errorf("bosun %s printed the password: %q", strings.Join(args, " "), out+errOut)
		}
	}
}

func TestCLI_stateFlagHidesPassword(t *testing.T) {
	code, out, _ := runCLI(t, map[string]string{"BOSUN_STATE": "postgres://bosun:hunter2@db/bosun"}, "migrate", "--help")
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "postgres://bosun:[redacted]@db/bosun") {
		t.Errorf("migrate --help with a password in BOSUN_STATE: exit %d\n%s", code, out)
	}
}

// A state file that exists but is empty (truncated by a full disk, a bad
// restore, a `> state.db`) is refused by every command with what to do, and
// left as it was; `bosun migrate` or --init make a new store there. A
// missing file is still created.
func TestCLI_stateRefusesEmptyFile(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "fleet")
	testbed.Commit(t, repo, "change", map[string]string{"fleet.yml": "servers:\n  web-1: {host: 10.0.0.1}\n", "services/shop.yml": "service: shop\nimage: registry.test/shop:v1\nservers: [web-1]\n"})
	empty := func(name string) (string, string) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return path, "sqlite://" + path
	}
	path, dsn := empty("state.db")
	for _, args := range [][]string{
		{"history", "--state", dsn},
		{"apply", "--state", dsn, "--repo", repo, "--dry-run"},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != 1 || !strings.Contains(errOut, "empty (0 bytes)") || !strings.Contains(errOut, "bosun migrate --state "+dsn) {
			t.Errorf("bosun %s on an empty state file: exit %d, stdout %q, stderr %q; want exit 1 saying it is empty and how to make a store", strings.Join(args, " "), code, out, errOut)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
			t.Fatalf("bosun %s changed the refused file: %v", args[0], err)
		}
	}
	serveCfg := filepath.Join(dir, "bosun.yaml")
	os.WriteFile(serveCfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nstate: %s\ndata_dir: %s\nssh: {key: %s}\nwebhook: {secret_env: S}\nrepos: [{name: fleet, url: %s, branch: master}]\n", dsn, filepath.Join(dir, "data"), filepath.Join(dir, "key"), repo)), 0o644)
	if code, _, errOut := runCLI(t, map[string]string{"S": "x"}, "serve", "--config", serveCfg); code != 1 || !strings.Contains(errOut, "empty (0 bytes)") || !strings.Contains(errOut, "--init") {
		t.Errorf("bosun serve on an empty state file: exit %d, stderr %q; want exit 1 naming --init", code, errOut)
	}

	// --init makes the store (and the dry run finds one change: exit 2).
	if code, out, errOut := runCLI(t, nil, "apply", "--state", dsn, "--repo", repo, "--dry-run", "--init"); code != 2 {
		t.Fatalf("apply --init: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "history", "--state", dsn); code != 0 {
		t.Errorf("history after --init: %s", errOut)
	}
	// So does migrate.
	_, dsn2 := empty("other.db")
	if code, out, errOut := runCLI(t, nil, "migrate", "--state", dsn2); code != 0 || !strings.Contains(out, "applied 0001_init") {
		t.Fatalf("migrate on an empty file: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "history", "--state", dsn2); code != 0 {
		t.Errorf("history after migrate: %s", errOut)
	}
	// A missing file is created as before.
	if code, _, errOut := runCLI(t, nil, "history", "--state", "sqlite://"+filepath.Join(dir, "new", "state.db")); code != 0 {
		t.Errorf("history on a missing file: %s", errOut)
	}
}
