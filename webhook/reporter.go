package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/go-github/v66/github"

	"github.com/bosunhq/bosun/internal/commitsha"
)

// State is a commit status state.
type State string

const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure" // the commit is wrong (invalid config, failed rollout)
	StateError   State = "error"   // bosun could not finish (host, network or forge trouble)
)

// Status contexts bosun posts.
const (
	ContextPlan   = "bosun/plan"
	ContextDeploy = "bosun/deploy"
)

// Status is one commit status.
type Status struct {
	Repo        string // "owner/name"
	SHA         string
	Context     string // ContextPlan or ContextDeploy
	State       State
	Description string // one line; cut to GitHub's 140 characters
	TargetURL   string
}

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Redact is applied to bosun/deploy descriptions before they leave the
	// process; it should remove secret values and credentials that server
	// output may echo. nil leaves text as it is. Plan comments and bosun/plan
	// descriptions are not passed through it: they are made from a pull
	// request's files by the planner, which never holds a secret value in
	// its output, and replacing a value in them would tell the pull
	// request's author that a value they wrote equals a secret.
	Redact func(string) string
	// Self returns the login bosun posts as; only comments by that user are
	// taken as bosun's own. nil asks the forge for the token's user (GET
	// /user); a GitHub App passes AppTransport.BotLogin.
	Self   func(context.Context) (string, error)
	Logger *slog.Logger // nil means slog.Default()
}

// Reporter posts commit statuses and plan comments through go-github. Point
// its client at GitHub Enterprise with Client.WithEnterpriseURLs.
type Reporter struct {
	gh     *github.Client
	redact func(string) string
	self   func(context.Context) (string, error)
	log    *slog.Logger

	mu    sync.Mutex
	login string // bosun's own login, once known
}

// NewReporter returns a Reporter using client for every call.
func NewReporter(cfg ReporterConfig, client *github.Client) *Reporter {
	redact := cfg.Redact
	if redact == nil {
		redact = func(s string) string { return s }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Reporter{gh: client, redact: redact, self: cfg.Self, log: log.With("component", "reporter")}
	if r.self == nil {
		r.self = func(ctx context.Context) (string, error) {
			u, _, err := client.Users.Get(ctx, "")
			if err != nil {
				return "", err
			}
			return u.GetLogin(), nil
		}
	}
	return r
}

// selfLogin is the login bosun posts as, asked once.
func (r *Reporter) selfLogin(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.login != "" {
		return r.login, nil
	}
	login, err := r.self(ctx)
	if err != nil {
		return "", fmt.Errorf("ask the forge who bosun is: %w", refused(err))
	}
	if login == "" {
		return "", errors.New("ask the forge who bosun is: no login in the answer")
	}
	r.login = login
	return login, nil
}

// SetStatus posts one commit status.
func (r *Reporter) SetStatus(ctx context.Context, s Status) error {
	owner, name, err := splitRepo(s.Repo)
	if err != nil {
		return err
	}
	desc := s.Description
	if s.Context != ContextPlan {
		desc = r.redact(desc)
	}
	desc = truncate(oneLine(desc), 140)
	st := &github.RepoStatus{State: github.String(string(s.State)), Context: github.String(s.Context), Description: github.String(desc)}
	if s.TargetURL != "" {
		st.TargetURL = github.String(s.TargetURL)
	}
	if _, _, err := r.gh.Repositories.CreateStatus(ctx, owner, name, s.SHA, st); err != nil {
		return fmt.Errorf("post status %s=%s on %s@%s: %w", s.Context, s.State, s.Repo, commitsha.Short(s.SHA), err)
	}
	r.log.InfoContext(ctx, "status posted", "repo", s.Repo, "sha", s.SHA, "context", s.Context, "state", string(s.State))
	return nil
}

// Marker is the hidden tag that identifies bosun's plan comment for a config
// repository on a pull request; key is the repository's name in bosun, so
// one pull request can carry one comment per config repository.
func Marker(key string) string { return "<!-- bosun:plan " + key + " -->" }

// Comment creates or edits bosun's one plan comment on pull request pr: the
// comment carrying Marker(key) and written by bosun's own user (see
// ReporterConfig.Self) is found among the pull request's comments and edited
// in place; if there is none, a new one is made. A comment by anyone else is
// never edited, marker or not. body is the comment text without the marker.
// A refused call returns an error wrapping ErrRefused.
func (r *Reporter) Comment(ctx context.Context, repo string, pr int, key, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	marker := Marker(key)
	text := marker + "\n" + body // a plan: never redacted (see ReporterConfig.Redact)
	if len(text) > 65000 {       // GitHub refuses comments over 65,536 characters
		text = truncate(text, 64900) + "\n\n_(plan cut to fit a comment; run `bosun plan` for all of it)_\n"
	}
	self, err := r.selfLogin(ctx)
	if err != nil {
		return err
	}
	id, err := r.findComment(ctx, owner, name, pr, marker, self)
	if err != nil {
		return err
	}
	c := &github.IssueComment{Body: github.String(text)}
	if id != 0 {
		if _, _, err := r.gh.Issues.EditComment(ctx, owner, name, id, c); err != nil {
			return fmt.Errorf("edit plan comment on %s#%d: %w", repo, pr, refused(err))
		}
		r.log.InfoContext(ctx, "plan comment edited", "repo", repo, "pr", pr)
		return nil
	}
	if _, _, err := r.gh.Issues.CreateComment(ctx, owner, name, pr, c); err != nil {
		return fmt.Errorf("create plan comment on %s#%d: %w", repo, pr, refused(err))
	}
	r.log.InfoContext(ctx, "plan comment created", "repo", repo, "pr", pr)
	return nil
}

func (r *Reporter) findComment(ctx context.Context, owner, name string, pr int, marker, self string) (int64, error) {
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := r.gh.Issues.ListComments(ctx, owner, name, pr, opt)
		if err != nil {
			return 0, fmt.Errorf("list comments of %s/%s#%d: %w", owner, name, pr, refused(err))
		}
		for _, c := range cs {
			if strings.EqualFold(c.GetUser().GetLogin(), self) && strings.HasPrefix(c.GetBody(), marker) {
				return c.GetID(), nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return 0, nil
		}
		opt.Page = resp.NextPage
	}
}

func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", errors.New("forge repository " + fmt.Sprintf("%q", repo) + " is not owner/name")
	}
	return owner, name, nil
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ErrRefused marks a forge answer that retrying will not change: the call
// was refused (403 other than a rate limit, 404, 422), for example a
// comment bosun may no longer edit. Errors from Reporter wrap it then.
var ErrRefused = errors.New("refused by the forge")

// refused wraps err with ErrRefused when the forge's answer is final.
func refused(err error) error {
	var rl *github.RateLimitError
	var arl *github.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &arl) {
		return err
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity:
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	return err
}
