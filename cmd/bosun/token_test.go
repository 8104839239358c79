package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/state"
)

func TestCLI_token(t *testing.T) {
	dsn := "sqlite:///" + filepath.Join(t.TempDir(), "state.db")
	env := map[string]string{"BOSUN_STATE": dsn, "USER": "alice"}
	code, tok, errOut := runCLI(t, env, "token", "create", "--role", "viewer", "ci")
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.HasPrefix(tok, "bosun_") || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, tok, errOut)
	}
	if code, _, errOut := runCLI(t, env, "token", "create", "--role", "viewer", "ci"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("a second token ci: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "token", "create", "--role", "root", "x"); code != 1 || !strings.Contains(errOut, "viewer, deployer or admin") {
		t.Errorf("--role root: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCLI(t, env, "token", "create", "--role", "deployer", "bot"); code != 0 {
		t.Fatalf("token create bot: exit %d", code)
	}
	code, out, _ := runCLI(t, env, "token", "list")
	if code != 0 || !strings.Contains(out, "bot   deployer") || !strings.Contains(out, "ci    viewer    alice") || strings.Contains(out, tok) {
		t.Errorf("token list: exit %d:\n%s", code, out)
	}

	// The store holds the token's hash, not the token.
	st, err := state.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.TokenByHash(t.Context(), dashboard.HashToken(tok))
	st.Close()
	if err != nil || got.Name != "ci" || bytes.Contains(got.Hash, []byte(tok)) {
		t.Errorf("stored token = %+v, %v", got, err)
	}

	if code, out, _ := runCLI(t, env, "token", "revoke", "ci"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token revoke: exit %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, env, "token", "revoke", "ci"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("revoking twice: exit %d %q", code, errOut)
	}
	if _, out, _ := runCLI(t, env, "token", "list"); strings.Contains(out, "ci ") {
		t.Errorf("ci still listed after revoke:\n%s", out)
	}
}
