package dashboard

import (
	"net/http"
	"time"

	"github.com/bosunhq/bosun/state"
)

// The pull requests page: the open pull requests of each repository with
// their last plan, as the daemon stores it when it posts the plan comment
// (state.PullRequest), and dropped when the pull request closes.

// PullRequest is an open pull request and its last plan, as the API shows
// it.
type PullRequest struct {
	Repo      string    `json:"repo"`
	Number    int       `json:"number"`
	HeadSHA   string    `json:"head_sha"`
	Title     string    `json:"title"`
	Author    string    `json:"author"`
	URL       string    `json:"url,omitempty"`
	Markdown  string    `json:"markdown"`
	Status    string    `json:"status"`
	Summary   string    `json:"summary"`
	UpdatedAt time.Time `json:"updated_at"`
}

func apiPullRequest(p state.PullRequest) PullRequest {
	return PullRequest{Repo: p.Repo, Number: p.Number, HeadSHA: p.HeadSHA, Title: p.Title, Author: p.Author, URL: p.URL,
		Markdown: p.Markdown, Status: p.Status, Summary: p.Summary, UpdatedAt: p.UpdatedAt}
}

// apiPulls is GET /api/v1/pulls (filter repo) and
// GET /api/v1/repos/{repo}/pulls.
func (s *Server) apiPulls(w http.ResponseWriter, r *http.Request) {
	repo := r.URL.Query().Get("repo")
	if v := r.PathValue("repo"); v != "" {
		repo = v
	}
	prs, err := s.opts.Store.ListPullRequests(r.Context(), repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]PullRequest, 0, len(prs))
	for _, p := range prs {
		out = append(out, apiPullRequest(p))
	}
	s.json(w, http.StatusOK, map[string]any{"pulls": out})
}

// pullsPage is GET /pulls: every open pull request with its plan.
func (s *Server) pullsPage(w http.ResponseWriter, r *http.Request) {
	repo := r.URL.Query().Get("repo")
	prs, err := s.opts.Store.ListPullRequests(r.Context(), repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var repos []string
	if s.opts.Daemon != nil {
		repos = s.opts.Daemon.Repos()
	}
	s.page(w, r, http.StatusOK, "pulls", map[string]any{"Pulls": prs, "Repo": repo, "Repos": repos, "Now": time.Now()})
}
