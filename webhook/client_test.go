package webhook

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestNewGitHubReporter_token(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	r, err := NewGitHubReporter(GitHubConfig{BaseURL: srv.URL + "/api/v3/", Token: "t0ken"}, ReporterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc123", Context: ContextDeploy, State: StateSuccess, Description: "ok"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "POST /api/v3/repos/acme/fleet/statuses/abc123 token t0ken" {
		t.Errorf("requests = %q, want one status POST with the token", got)
	}
}

func TestNewGitHubReporter_errors(t *testing.T) {
	if _, err := NewGitHubReporter(GitHubConfig{}, ReporterConfig{}); err == nil {
		t.Error("no token and no App was accepted")
	}
	if _, err := NewGitHubReporter(GitHubConfig{AppID: 1, InstallationID: 2}, ReporterConfig{}); err == nil {
		t.Error("an App without a key was accepted")
	}
}
