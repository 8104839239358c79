package main

import (
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
				{[]string{"migrate", "--state", dsn}, "applied 0001_init\n"},
				{[]string{"migrate", "--state", dsn}, "schema up to date (version 0001)"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "reverted 0001_init\n"},
				{[]string{"migrate", "--state", dsn, "--down", "1"}, "no migration to revert"},
				{[]string{"migrate", "--state", dsn}, "applied 0001_init\n"},
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
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "postgres://bosun:xxxxx@db/bosun") {
		t.Errorf("migrate --help with a password in BOSUN_STATE: exit %d\n%s", code, out)
	}
}
