package planner_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/planner"
)

func TestLoadSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.env")
	b := filepath.Join(dir, "b.env")
	require.NoError(t, os.WriteFile(a, []byte(`# comment
export PLAIN=value one   # trailing comment
SINGLE='lit $eral \n'
DOUBLE="line\nnext \"q\""
OVERRIDDEN=from-a
EMPTY=
`), 0o600))
	require.NoError(t, os.WriteFile(b, []byte("OVERRIDDEN=from-b\n"), 0o600))
	env := map[string]string{"FROM_ENV": "e", "PLAIN": "env-loses"}
	src, err := planner.LoadSecrets(func(k string) string { return env[k] }, planner.SecretSources{Files: []string{a, b}, AllEnv: true})
	require.NoError(t, err)
	for name, want := range map[string]string{
		"PLAIN": "value one", "SINGLE": `lit $eral \n`, "DOUBLE": "line\nnext \"q\"",
		"OVERRIDDEN": "from-b", "FROM_ENV": "e", "EMPTY": "",
	} {
		got, ok := src.LookupSecret(name)
		require.True(t, ok, name)
		require.Equal(t, want, got, name)
	}
	_, ok := src.LookupSecret("NOPE")
	require.False(t, ok)

	t.Run("bad line names the line, not the value", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.env")
		require.NoError(t, os.WriteFile(bad, []byte("OK=1\nnot a line s3cr3t\n"), 0o600))
		_, err := planner.LoadSecrets(nil, planner.SecretSources{Files: []string{bad}})
		require.ErrorContains(t, err, "bad.env:2:")
		require.NotContains(t, err.Error(), "s3cr3t")
	})
	t.Run("unclosed quote", func(t *testing.T) {
		bad := filepath.Join(dir, "q.env")
		require.NoError(t, os.WriteFile(bad, []byte("K=\"s3cr3t\n"), 0o600))
		_, err := planner.LoadSecrets(nil, planner.SecretSources{Files: []string{bad}})
		require.ErrorContains(t, err, "q.env:1: K: unclosed double quote")
		require.NotContains(t, err.Error(), "s3cr3t")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := planner.LoadSecrets(nil, planner.SecretSources{Files: []string{filepath.Join(dir, "none.env")}})
		require.ErrorContains(t, err, "read secrets file")
	})
}

// TestPlanner_Secrets checks the hashing and RequireSecrets semantics.
// TestLoadSecrets_onlyConfiguredEnvironment: without AllEnv, only the
// variables named in Env or starting with EnvPrefix are secrets; the rest
// of the environment (the daemon's own credentials) never resolves.
func TestLoadSecrets_onlyConfiguredEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BOSUN_WEBHOOK_SECRET": "hook", "GITHUB_TOKEN": "ghp", "SHOP_KEY": "k1", "APP_DB": "k2", "APPLE": "k3"}
	src, err := planner.LoadSecrets(func(k string) string { return env[k] }, planner.SecretSources{Env: []string{"SHOP_KEY"}, EnvPrefix: "APP_"})
	require.NoError(t, err)
	for name, want := range map[string]bool{"SHOP_KEY": true, "APP_DB": true, "APPLE": false, "BOSUN_WEBHOOK_SECRET": false, "GITHUB_TOKEN": false} {
		_, ok := src.LookupSecret(name)
		require.Equal(t, want, ok, name)
	}
}

func TestSecrets_Redact(t *testing.T) {
	t.Parallel()
	src, err := planner.LoadSecrets(func(k string) string { return map[string]string{"A": "s3cr3t-value", "B": "abc"}[k] }, planner.SecretSources{Env: []string{"A", "B"}})
	require.NoError(t, err)
	require.Equal(t, "s3cr3t-value", src.Redact("s3cr3t-value"), "a value never looked up is not known")
	src.LookupSecret("A")
	src.LookupSecret("B")
	require.Equal(t, "token [redacted] refused; abc", src.Redact("token s3cr3t-value refused; abc"), "short values are not redacted")
	src.Hide("ghp_forge-token")
	src.Hide("xyz")
	require.Equal(t, "[redacted] and [redacted]; xyz", src.Redact("ghp_forge-token and s3cr3t-value; xyz"), "a hidden value is redacted like a looked-up one; short ones are not")
	_, ok := src.LookupSecret("ghp_forge-token")
	require.False(t, ok, "hiding a value does not make it a secret a service can look up")
}

func TestPlanner_Secrets(t *testing.T) {
	t.Parallel()
	repo := map[string]string{"services/app.yml": "service: app\nimage: a/b:1\nservers: [web-1]\nenv: {secret: [KEY]}\n"}
	fsys := mapFS(repo)
	plan := func(cfg planner.Config, applied []planner.Applied) (*planner.Plan, error) {
		return planner.New(cfg).Plan(t.Context(), fsys, planner.Input{Repo: "r", Commit: "c", Applied: applied})
	}
	first, err := plan(planner.Config{Secrets: mapSecrets{"KEY": "s3cr3t-1"}, SecretKey: []byte("k1")}, nil)
	require.NoError(t, err)
	ref := first.Changes[0].Desired.Secrets["KEY"]
	require.Equal(t, "KEY", ref.Name)
	require.Regexp(t, `^hmac-sha256:[0-9a-f]{64}$`, ref.Hash)

	t.Run("the key changes the hash", func(t *testing.T) {
		other, err := plan(planner.Config{Secrets: mapSecrets{"KEY": "s3cr3t-1"}, SecretKey: []byte("k2")}, nil)
		require.NoError(t, err)
		require.NotEqual(t, ref.Hash, other.Changes[0].Desired.Secrets["KEY"].Hash)
	})
	applied := []planner.Applied{{Target: first.Changes[0].Target, Version: first.Changes[0].Version, Spec: *first.Changes[0].Desired}}
	t.Run("same value unchanged", func(t *testing.T) {
		again, err := plan(planner.Config{Secrets: mapSecrets{"KEY": "s3cr3t-1"}, SecretKey: []byte("k1")}, applied)
		require.NoError(t, err)
		require.Equal(t, planner.ActionUnchanged, again.Changes[0].Action)
	})
	t.Run("changed value is an update shown as (changed)", func(t *testing.T) {
		again, err := plan(planner.Config{Secrets: mapSecrets{"KEY": "s3cr3t-2"}, SecretKey: []byte("k1")}, applied)
		require.NoError(t, err)
		c := again.Changes[0]
		require.Equal(t, planner.ActionUpdate, c.Action)
		require.Equal(t, []planner.FieldChange{{Field: "secrets.KEY", Old: "(set)", New: "(changed)"}}, c.Fields)
		var sb strings.Builder
		_, err = again.WriteTo(&sb)
		require.NoError(t, err)
		require.NotContains(t, sb.String(), "s3cr3t")
		require.NotContains(t, sb.String(), "hmac")
	})
	t.Run("missing secret while planning keeps the applied hash and warns", func(t *testing.T) {
		again, err := plan(planner.Config{SecretKey: []byte("k1")}, applied)
		require.NoError(t, err)
		require.Equal(t, planner.ActionUnchanged, again.Changes[0].Action)
		require.Len(t, again.Warnings, 1)
		require.Contains(t, again.Warnings[0], "services/app.yml:4:16: secret KEY of service app is not available")
	})
	t.Run("missing secret when applying is an error", func(t *testing.T) {
		_, err := plan(planner.Config{SecretKey: []byte("k1"), RequireSecrets: true}, applied)
		require.EqualError(t, err, "services/app.yml:4:16: secret KEY is not set: provide it in bosun's environment or a secrets file")
	})
}

func TestReadSecret(t *testing.T) {
	env := map[string]string{"S": "  value \n"}
	if v, err := planner.ReadSecret(func(k string) string { return env[k] }, "S", ""); err != nil || v != "value" {
		t.Errorf("env: %q, %v", v, err)
	}
	if _, err := planner.ReadSecret(func(string) string { return "" }, "MISSING", ""); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("missing env: %v", err)
	}
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := planner.ReadSecret(nil, "", p); err != nil || v != "from-file" {
		t.Errorf("file: %q, %v", v, err)
	}
	if err := os.WriteFile(p, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := planner.ReadSecret(nil, "", p); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := planner.ReadSecret(nil, "", ""); err == nil {
		t.Error("no env and no file accepted")
	}
}

// TestPlanner_customCertificate: proxy.ssl's certificate_pem and
// private_key_pem name secrets; the spec keeps their names and keyed
// hashes, a renewed certificate is an update shown as (changed), and no
// plan form holds a PEM or hash.
func TestPlanner_customCertificate(t *testing.T) {
	t.Parallel()
	fsys := mapFS(map[string]string{"services/app.yml": "service: app\nimage: a/b:1\nservers: [web-1]\n" +
		"proxy: {host: app.example.com, ssl: {certificate_pem: CERT_PEM, private_key_pem: KEY_PEM}}\n"})
	plan := func(cfg planner.Config, applied []planner.Applied) (*planner.Plan, error) {
		cfg.SecretKey = []byte("k1")
		return planner.New(cfg).Plan(t.Context(), fsys, planner.Input{Repo: "r", Commit: "c", Applied: applied})
	}
	const cert1, key1, cert2 = "-----BEGIN CERTIFICATE-----one", "-----BEGIN PRIVATE KEY-----one", "-----BEGIN CERTIFICATE-----two"
	first, err := plan(planner.Config{Secrets: mapSecrets{"CERT_PEM": cert1, "KEY_PEM": key1}}, nil)
	require.NoError(t, err)
	c := first.Changes[0].Desired.Proxy.Certificate
	require.NotNil(t, c)
	require.Equal(t, "CERT_PEM", c.CertificatePEM.Name)
	require.Regexp(t, `^hmac-sha256:[0-9a-f]{64}$`, c.CertificatePEM.Hash)
	require.Regexp(t, `^hmac-sha256:[0-9a-f]{64}$`, c.PrivateKeyPEM.Hash)
	applied := []planner.Applied{{Target: first.Changes[0].Target, Version: first.Changes[0].Version, Spec: *first.Changes[0].Desired}}

	same, err := plan(planner.Config{Secrets: mapSecrets{"CERT_PEM": cert1, "KEY_PEM": key1}}, applied)
	require.NoError(t, err)
	require.Equal(t, planner.ActionUnchanged, same.Changes[0].Action)

	renewed, err := plan(planner.Config{Secrets: mapSecrets{"CERT_PEM": cert2, "KEY_PEM": key1}}, applied)
	require.NoError(t, err)
	require.Equal(t, planner.ActionUpdate, renewed.Changes[0].Action)
	require.Equal(t, []planner.FieldChange{{Field: "proxy.certificate.certificate_pem", Old: "(set)", New: "(changed)"}}, renewed.Changes[0].Fields)
	var text, md strings.Builder
	_, err = renewed.WriteTo(&text)
	require.NoError(t, err)
	require.NoError(t, renewed.WriteMarkdown(&md))
	js, err := renewed.MarshalJSON()
	require.NoError(t, err)
	for _, out := range []string{text.String(), md.String(), string(js)} {
		require.NotContains(t, out, "BEGIN")
		require.NotContains(t, out, "hmac")
	}

	_, err = plan(planner.Config{Secrets: mapSecrets{"CERT_PEM": cert1}, RequireSecrets: true}, applied)
	require.ErrorContains(t, err, "services/app.yml:4:82: secret KEY_PEM is not set")
}
