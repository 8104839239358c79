package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-github/v66/github"
)

// fakeGitHub serves the endpoints the Reporter calls, checking each request
// with go-github's own types, and keeps what was posted.
type fakeGitHub struct {
	mu       sync.Mutex
	statuses []github.RepoStatus
	comments map[int][]*github.IssueComment // per pull request
	nextID   int64
	calls    []string
}

func newFakeGitHub(t *testing.T) (*fakeGitHub, *github.Client) {
	f := &fakeGitHub{comments: map[int][]*github.IssueComment{}, nextID: 1000}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		var st github.RepoStatus
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, "status "+r.PathValue("owner")+"/"+r.PathValue("repo")+"@"+r.PathValue("sha"))
		f.statuses = append(f.statuses, st)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/issues/{n}/comments", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if page == 0 {
			page = 1
		}
		if perPage == 0 {
			perPage = 30
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		all := f.comments[n]
		lo, hi := min((page-1)*perPage, len(all)), min(page*perPage, len(all))
		if hi < len(all) {
			next := *r.URL
			q := next.Query()
			q.Set("page", strconv.Itoa(page+1))
			next.RawQuery = q.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, next.String()))
		}
		json.NewEncoder(w).Encode(all[lo:hi])
	})
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/issues/{n}/comments", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		var c github.IssueComment
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.nextID++
		c.ID = github.Int64(f.nextID)
		f.comments[n] = append(f.comments[n], &c)
		f.calls = append(f.calls, fmt.Sprintf("create comment #%d", n))
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("PATCH /api/v3/repos/{owner}/{repo}/issues/comments/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var in github.IssueComment
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, cs := range f.comments {
			for _, c := range cs {
				if c.GetID() == id {
					c.Body = in.Body
					f.calls = append(f.calls, fmt.Sprintf("edit comment %d", id))
					json.NewEncoder(w).Encode(c)
					return
				}
			}
		}
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := github.NewClient(nil).WithEnterpriseURLs(srv.URL+"/", srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	return f, client
}

func TestReporter_SetStatus(t *testing.T) {
	fake, client := newFakeGitHub(t)
	r := NewReporter(ReporterConfig{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }}, client)
	long := "deployed shop, api on web-1, web-2 in 4.2s " + strings.Repeat("and more ", 30)
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc123", Context: ContextDeploy, State: StateSuccess, Description: long}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc123", Context: ContextDeploy, State: StateFailure, Description: "web-1: shop: health: token hunter2 refused\nsecond line"}); err != nil {
		t.Fatal(err)
	}
	if len(fake.statuses) != 2 {
		t.Fatalf("posted %d statuses", len(fake.statuses))
	}
	first, second := fake.statuses[0], fake.statuses[1]
	if first.GetState() != "success" || first.GetContext() != "bosun/deploy" || len(first.GetDescription()) > 140 {
		t.Errorf("first status = %v", first)
	}
	if got := second.GetDescription(); got != "web-1: shop: health: token [redacted] refused" {
		t.Errorf("description = %q; want one redacted line", got)
	}
	if fake.calls[0] != "status acme/fleet@abc123" {
		t.Errorf("call = %q", fake.calls[0])
	}
	if err := r.SetStatus(t.Context(), Status{Repo: "fleet", SHA: "abc"}); err == nil {
		t.Error("a repository without an owner was accepted")
	}
}

func TestReporter_Comment(t *testing.T) {
	fake, client := newFakeGitHub(t)
	r := NewReporter(ReporterConfig{}, client)
	// Someone else's comments first, more than one page of them.
	for i := range 120 {
		fake.comments[7] = append(fake.comments[7], &github.IssueComment{ID: github.Int64(int64(i + 1)), Body: github.String(fmt.Sprintf("looks good %d", i))})
	}

	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "**1 to change**\nplan v1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "**2 to change**\nplan v2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Comment(t.Context(), "acme/fleet", 7, "other-repo", "plan of another config repo"); err != nil {
		t.Fatal(err)
	}
	ours := 0
	var body string
	for _, c := range fake.comments[7] {
		if strings.HasPrefix(c.GetBody(), Marker("fleet")) {
			ours++
			body = c.GetBody()
		}
	}
	if ours != 1 {
		t.Fatalf("%d plan comments for one repository, want 1 edited in place", ours)
	}
	if !strings.Contains(body, "plan v2") || strings.Contains(body, "plan v1") {
		t.Errorf("comment was not replaced: %q", body)
	}
	if len(fake.comments[7]) != 122 {
		t.Errorf("%d comments, want 120 + one per config repository", len(fake.comments[7]))
	}
	want := []string{"create comment #7", "edit comment 1001", "create comment #7"}
	if fmt.Sprint(fake.calls) != fmt.Sprint(want) {
		t.Errorf("calls = %q, want %q", fake.calls, want)
	}
}
