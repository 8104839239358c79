package main

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/state"
)

// bosun history --server reads a dashboard's API with $BOSUN_TOKEN and
// prints what the store would.
func TestCLI_historyRemote(t *testing.T) {
	dsn := "sqlite:///" + filepath.Join(t.TempDir(), "state.db")
	st, err := state.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	id, err := st.CreateDeployment(ctx, state.Deployment{Repo: "fleet", Service: "shop", Commit: "0123456789abcdef", Trigger: "sync by github:alice"})
	if err != nil {
		t.Fatal(err)
	}
	st.AddEvent(ctx, state.Event{DeploymentID: id, Host: "web@server-1", Step: "pull", Status: "ok", Actor: "github:alice"})
	st.FinishDeployment(ctx, id, state.StatusFailed, "server-1: health: timeout")
	other, _ := st.CreateDeployment(ctx, state.Deployment{Repo: "other", Service: "api", Trigger: "push"})
	st.FinishDeployment(ctx, other, state.StatusDeployed, "")
	key, _ := st.SecretKey(ctx)
	dash, err := dashboard.New(dashboard.Options{SecretKey: key, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dash)
	defer srv.Close()
	tok, err := dashboard.CreateToken(ctx, st, "cli", dashboard.Viewer, "test")
	if err != nil {
		t.Fatal(err)
	}

	local, localOut, _ := runCLI(t, nil, "history", "--state", dsn, "--events", "--repo-name", "fleet")
	code, out, errOut := runCLI(t, map[string]string{"BOSUN_TOKEN": tok}, "history", "--server", srv.URL, "--events", "--repo-name", "fleet")
	if code != 0 || local != 0 {
		t.Fatalf("history --server: exit %d %q %q", code, out, errOut)
	}
	if out != localOut || !strings.Contains(out, "sync by github:alice") || !strings.Contains(out, "(by github:alice)") || !strings.Contains(out, "error: server-1: health: timeout") || strings.Contains(out, "other") {
		t.Errorf("history --server printed:\n%s\nthe store gives:\n%s", out, localOut)
	}
	if code, _, errOut := runCLI(t, nil, "history", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "BOSUN_TOKEN") {
		t.Errorf("without BOSUN_TOKEN: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, map[string]string{"BOSUN_TOKEN": "bosun_wrong"}, "history", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("with a wrong token: exit %d %q", code, errOut)
	}
}
