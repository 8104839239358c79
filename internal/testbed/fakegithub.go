package testbed

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-github/v66/github"
)

// FakeGitHub stands in for GitHub's REST API at the HTTP boundary: the
// endpoints bosun's reporter calls (commit statuses, issue comments, the
// authenticated user), decoded and answered with go-github's own types.
// Point a client at it with Client(). Every call is made as one user,
// BotLogin: the comments it creates carry that author, and GET /user
// answers with it.
type FakeGitHub struct {
	Server *httptest.Server

	mu          sync.Mutex
	statuses    []PostedStatus
	comments    map[string][]*github.IssueComment // "owner/repo#N" -> comments
	nextID      int64
	calls       []string
	fail        int  // answer the next fail requests with 502
	refuseEdits bool // answer comment edits with 403
	stall       chan struct{}
	stallCode   int // status posts wait for stall to close, then get this

	oauth fakeOAuth // the OAuth web flow (fakeoauth.go)

	branches map[string]string // "owner/repo:branch" -> the commit it was made from
	pulls    []*OpenedPR
}

// OpenedPR is a pull request opened through the fake, with the branch it
// came from and every file written on that branch through the contents API.
type OpenedPR struct {
	Repo        string // "owner/repo"
	Number      int
	URL         string
	Title, Body string
	Head, Base  string // branches
	BaseSHA     string // the commit the head branch was made from
	// Files are the files written on the head branch (path -> content),
	// and Messages their commit messages, in order.
	Files    map[string]string
	Messages []string
}

// BotLogin is the login of the user the fake's API callers act as.
const BotLogin = "bosun-bot"

// PostedStatus is one commit status as posted.
type PostedStatus struct {
	Repo, SHA string
	github.RepoStatus
}

// NewFakeGitHub starts a fake GitHub API, closed at the end of the test.
func NewFakeGitHub(t testing.TB) *FakeGitHub {
	f := &FakeGitHub{comments: map[string][]*github.IssueComment{}, nextID: 1000, branches: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		var st github.RepoStatus
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil || st.State == nil {
			http.Error(w, "bad status body", http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		if stall, code := f.stall, f.stallCode; stall != nil {
			f.calls = append(f.calls, "stalled status "+repo+"@"+r.PathValue("sha")+" "+st.GetContext()+"="+st.GetState())
			f.mu.Unlock()
			select {
			case <-stall:
			case <-r.Context().Done():
			}
			f.mu.Lock()
			http.Error(w, http.StatusText(code), code)
			return
		}
		f.calls = append(f.calls, "status "+repo+"@"+r.PathValue("sha")+" "+st.GetContext()+"="+st.GetState())
		f.statuses = append(f.statuses, PostedStatus{Repo: repo, SHA: r.PathValue("sha"), RepoStatus: st})
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/issues/{n}/comments", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if page < 1 {
			page = 1
		}
		if perPage < 1 {
			perPage = 30 // GitHub's default
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		all := f.comments[key]
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
		key := r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
		var c github.IssueComment
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.Body == nil {
			http.Error(w, "bad comment body", http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.nextID++
		c.ID = github.Int64(f.nextID)
		c.User = &github.User{Login: github.String(BotLogin), Type: github.String("User")}
		f.comments[key] = append(f.comments[key], &c)
		f.calls = append(f.calls, "create comment "+key)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("PATCH /api/v3/repos/{owner}/{repo}/issues/comments/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var in github.IssueComment
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == nil {
			http.Error(w, "bad comment body", http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.refuseEdits {
			f.calls = append(f.calls, fmt.Sprintf("refused edit %d", id))
			http.Error(w, `{"message":"Must have admin rights to Repository."}`, http.StatusForbidden)
			return
		}
		for key, cs := range f.comments {
			for _, c := range cs {
				if c.GetID() == id {
					c.Body = in.Body
					f.calls = append(f.calls, fmt.Sprintf("edit comment %s %d", key, id))
					json.NewEncoder(w).Encode(c)
					return
				}
			}
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("GET /api/v3/user", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := f.oauthUser(r); ok {
			json.NewEncoder(w).Encode(github.User{Login: github.String(u.Login), Type: github.String("User")})
			return
		}
		json.NewEncoder(w).Encode(github.User{Login: github.String(BotLogin), Type: github.String("User")})
	})
	f.oauthRoutes(mux)
	f.proposalRoutes(mux)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.fail > 0 {
			f.fail--
			f.calls = append(f.calls, "failed "+r.Method+" "+r.URL.Path)
			f.mu.Unlock()
			http.Error(w, "unavailable", http.StatusBadGateway)
			return
		}
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Server.Close)
	return f
}

// BaseURL is the API root to configure (GitHub Enterprise style).
func (f *FakeGitHub) BaseURL() string { return f.Server.URL + "/api/v3/" }

// Client is a go-github client pointed at the fake.
func (f *FakeGitHub) Client() *github.Client {
	c, err := github.NewClient(nil).WithEnterpriseURLs(f.Server.URL+"/", f.Server.URL+"/")
	if err != nil {
		panic(err)
	}
	return c
}

// FailNext makes the next n requests fail with 502.
func (f *FakeGitHub) FailNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = n
}

// StallStatuses makes status posts wait until answer is called, and then
// answers them with code (404, 500, …); posts after that work again.
func (f *FakeGitHub) StallStatuses(code int) (answer func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.stall, f.stallCode = ch, code
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.stall = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

// RefuseEdits makes comment edits answer 403 (on refuse) or work again.
func (f *FakeGitHub) RefuseEdits(refuse bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseEdits = refuse
}

// AddComment puts a comment on pull request pr of repo, as the person
// "reviewer" would.
func (f *FakeGitHub) AddComment(repo string, pr int, body string) {
	f.AddCommentBy(repo, pr, "reviewer", body)
}

// AddCommentBy puts a comment by the user login on pull request pr of repo.
func (f *FakeGitHub) AddCommentBy(repo string, pr int, login, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	key := fmt.Sprintf("%s#%d", repo, pr)
	f.comments[key] = append(f.comments[key], &github.IssueComment{ID: github.Int64(f.nextID), Body: github.String(body),
		User: &github.User{Login: github.String(login), Type: github.String("User")}})
}

// Statuses returns the statuses posted so far, in order.
func (f *FakeGitHub) Statuses() []PostedStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PostedStatus(nil), f.statuses...)
}

// Comments returns the bodies of the comments on pull request pr of repo.
func (f *FakeGitHub) Comments(repo string, pr int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.comments[fmt.Sprintf("%s#%d", repo, pr)] {
		out = append(out, c.GetBody())
	}
	return out
}

// Calls returns every call made, in order, one line each.
func (f *FakeGitHub) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// proposalRoutes serve what a pull request opened by bosun needs: a branch
// (POST git/refs), files on it (PUT contents/PATH, refused when the file
// was written on that branch already), and the pull request (POST pulls).
func (f *FakeGitHub) proposalRoutes(mux *http.ServeMux) {
	written := map[string]map[string]string{} // "owner/repo:branch" -> path -> content
	messages := map[string][]string{}
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/git/refs", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Ref, SHA string } // GitHub's body: {"ref": "refs/heads/B", "sha": SHA}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Ref == "" || in.SHA == "" {
			http.Error(w, `{"message":"bad ref"}`, http.StatusUnprocessableEntity)
			return
		}
		branch, ok := strings.CutPrefix(in.Ref, "refs/heads/")
		key := r.PathValue("owner") + "/" + r.PathValue("repo") + ":" + branch
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, exists := f.branches[key]; exists || !ok {
			f.calls = append(f.calls, "refused ref "+key)
			http.Error(w, `{"message":"Reference already exists"}`, http.StatusUnprocessableEntity)
			return
		}
		f.branches[key] = in.SHA
		f.calls = append(f.calls, "create ref "+key)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(github.Reference{Ref: github.String(in.Ref), Object: &github.GitObject{SHA: github.String(in.SHA)}})
	})
	mux.HandleFunc("PUT /api/v3/repos/{owner}/{repo}/contents/{path...}", func(w http.ResponseWriter, r *http.Request) {
		var in github.RepositoryContentFileOptions
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Branch == nil || in.Message == nil {
			http.Error(w, `{"message":"bad contents body"}`, http.StatusUnprocessableEntity)
			return
		}
		key := r.PathValue("owner") + "/" + r.PathValue("repo") + ":" + in.GetBranch()
		p := r.PathValue("path")
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.branches[key]; !ok {
			http.Error(w, `{"message":"Branch not found"}`, http.StatusNotFound)
			return
		}
		if _, ok := written[key][p]; ok {
			http.Error(w, `{"message":"sha wasn't supplied"}`, http.StatusUnprocessableEntity)
			return
		}
		if written[key] == nil {
			written[key] = map[string]string{}
		}
		written[key][p] = string(in.Content)
		messages[key] = append(messages[key], in.GetMessage())
		f.calls = append(f.calls, "write "+key+" "+p)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(github.RepositoryContentResponse{Content: &github.RepositoryContent{Path: github.String(p)}})
	})
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/pulls", func(w http.ResponseWriter, r *http.Request) {
		var in github.NewPullRequest
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Head == nil || in.Base == nil || in.Title == nil {
			http.Error(w, `{"message":"bad pull request"}`, http.StatusUnprocessableEntity)
			return
		}
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		key := repo + ":" + in.GetHead()
		f.mu.Lock()
		defer f.mu.Unlock()
		base, ok := f.branches[key]
		if !ok {
			http.Error(w, `{"message":"Validation Failed: head"}`, http.StatusUnprocessableEntity)
			return
		}
		n := 1
		for _, p := range f.pulls {
			if p.Repo == repo {
				n = max(n, p.Number+1)
			}
		}
		files := map[string]string{}
		for k, v := range written[key] {
			files[k] = v
		}
		pr := &OpenedPR{Repo: repo, Number: n, URL: fmt.Sprintf("%s/%s/pull/%d", f.Server.URL, repo, n), Title: in.GetTitle(), Body: in.GetBody(),
			Head: in.GetHead(), Base: in.GetBase(), BaseSHA: base, Files: files, Messages: append([]string(nil), messages[key]...)}
		f.pulls = append(f.pulls, pr)
		f.calls = append(f.calls, fmt.Sprintf("open pull %s#%d", repo, n))
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(github.PullRequest{Number: github.Int(n), HTMLURL: github.String(pr.URL), Title: in.Title})
	})
}

// PullRequests returns the pull requests opened through the fake, in order.
func (f *FakeGitHub) PullRequests() []OpenedPR {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]OpenedPR, len(f.pulls))
	for i, p := range f.pulls {
		out[i] = *p
	}
	return out
}

// Branches returns the branches made through the fake ("owner/repo:branch").
func (f *FakeGitHub) Branches() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.branches))
	for k := range f.branches {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
