package webhook

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/google/go-github/v66/github"

	"github.com/bosunhq/bosun/internal/commitsha"
)

// Proposal is a change to propose as a pull request: files to write on a
// new branch made from BaseSHA, and the pull request to open for it.
type Proposal struct {
	Repo    string // "owner/name"
	Base    string // the branch the pull request targets
	BaseSHA string // the commit the new branch starts from (what was validated)
	Branch  string // the new branch
	// Files maps each path (from the repository's root) to its content.
	Files       map[string][]byte
	Message     string // the commit message
	Title, Body string // the pull request's
}

// ProposedPR is the pull request a proposal opened.
type ProposedPR struct {
	Number int
	URL    string // its page on the forge
}

// Propose commits p.Files on the new branch p.Branch (which must not
// exist) from p.BaseSHA through the contents API, one commit a file, and
// opens a pull request from it into p.Base. Nothing is merged or deployed.
// A refused call (a branch that exists, a file that exists, no write
// access) wraps ErrRefused; the branch may then exist without a pull
// request.
func (r *Reporter) Propose(ctx context.Context, p Proposal) (ProposedPR, error) {
	owner, name, err := splitRepo(p.Repo)
	if err != nil {
		return ProposedPR{}, err
	}
	if p.Branch == "" || p.Base == "" || p.BaseSHA == "" || len(p.Files) == 0 {
		return ProposedPR{}, fmt.Errorf("propose on %s: branch, base, base commit and files are required", p.Repo)
	}
	ref := &github.Reference{Ref: github.String("refs/heads/" + p.Branch), Object: &github.GitObject{SHA: github.String(p.BaseSHA)}}
	if _, _, err := r.gh.Git.CreateRef(ctx, owner, name, ref); err != nil {
		return ProposedPR{}, fmt.Errorf("create branch %s of %s at %s: %w", p.Branch, p.Repo, commitsha.Short(p.BaseSHA), refused(err))
	}
	paths := make([]string, 0, len(p.Files))
	for f := range p.Files {
		paths = append(paths, f)
	}
	sort.Strings(paths)
	for _, f := range paths {
		if f != path.Clean(f) || strings.HasPrefix(f, "/") || strings.HasPrefix(f, "../") {
			return ProposedPR{}, fmt.Errorf("propose on %s: path %q is not clean and relative", p.Repo, f)
		}
		opts := &github.RepositoryContentFileOptions{Message: github.String(p.Message), Content: p.Files[f], Branch: github.String(p.Branch)}
		if _, _, err := r.gh.Repositories.CreateFile(ctx, owner, name, f, opts); err != nil {
			return ProposedPR{}, fmt.Errorf("write %s on branch %s of %s: %w", f, p.Branch, p.Repo, refused(err))
		}
	}
	pr, _, err := r.gh.PullRequests.Create(ctx, owner, name, &github.NewPullRequest{
		Title: github.String(p.Title), Head: github.String(p.Branch), Base: github.String(p.Base), Body: github.String(p.Body)})
	if err != nil {
		return ProposedPR{}, fmt.Errorf("open a pull request from %s into %s of %s: %w", p.Branch, p.Base, p.Repo, refused(err))
	}
	r.log.InfoContext(ctx, "pull request opened", "repo", p.Repo, "pr", pr.GetNumber(), "branch", p.Branch)
	return ProposedPR{Number: pr.GetNumber(), URL: pr.GetHTMLURL()}, nil
}
