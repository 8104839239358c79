package main

import (
	"log/slog"
	"testing"

	"github.com/bosunhq/bosun/daemon"
	"github.com/bosunhq/bosun/metrics"
	"github.com/bosunhq/bosun/planner"
)

// TestNewReporter_hidesTheToken: once the forge reporter is built from a
// token, that token is redacted wherever the daemon's secrets redact (the
// deploy statuses, the executor's errors), although no service looks it up.
func TestNewReporter_hidesTheToken(t *testing.T) {
	const token = "ghp_forge-token-123"
	getenv := func(k string) string { return map[string]string{"GH_TOKEN": token}[k] }
	secrets, err := planner.LoadSecrets(getenv, planner.SecretSources{})
	if err != nil {
		t.Fatal(err)
	}
	if got := secrets.Redact("push with " + token); got != "push with "+token {
		t.Fatalf("before the reporter: Redact = %q, want the text unchanged", got)
	}
	rep, err := newReporter(daemon.ForgeConfig{Kind: "github", BaseURL: "https://api.github.com/", TokenEnv: "GH_TOKEN"}, getenv, secrets, metrics.New(), slog.New(slog.DiscardHandler))
	if err != nil || rep == nil {
		t.Fatalf("newReporter = %v, %v", rep, err)
	}
	if got, want := secrets.Redact("push with "+token), "push with "+planner.RedactedText; got != want {
		t.Errorf("after the reporter: Redact = %q, want %q", got, want)
	}
	if rep, err := newReporter(daemon.ForgeConfig{Kind: "none"}, getenv, secrets, metrics.New(), slog.New(slog.DiscardHandler)); rep != nil || err != nil {
		t.Errorf("forge none: reporter %v, %v; want none", rep, err)
	}
}
