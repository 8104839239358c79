package daemon

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-github/v66/github"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

func pullRequest(repo, action string, pr int, head string) *github.PullRequestEvent {
	return &github.PullRequestEvent{
		Action: github.String(action), Number: github.Int(pr),
		Repo: &github.Repository{FullName: github.String(repo)},
		PullRequest: &github.PullRequest{Number: github.Int(pr),
			Base: &github.PullRequestBranch{Ref: github.String("master")},
			Head: &github.PullRequestBranch{Ref: github.String("change"), SHA: github.String(head)}},
	}
}

// TestDaemon_planCommentRefused: when the forge refuses the edit of bosun's
// plan comment (403), the plan's status is still posted and the job ends
// instead of being retried with the status never posted.
func TestDaemon_planCommentRefused(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	gh := testbed.NewFakeGitHub(t)
	rep := webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, newApplier(), 10*time.Second, rep)
	td.heads = heads
	td.waitApplied(t, time.Minute)
	head := heads["repo-00"]

	planStatuses := func(head string) int {
		n := 0
		for _, s := range gh.Statuses() {
			if s.SHA == head && s.GetContext() == webhook.ContextPlan {
				n++
			}
		}
		return n
	}
	waitPlanStatuses := func(head string, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for planStatuses(head) < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("no bosun/plan status after %s; forge calls: %q", what, gh.Calls())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code := td.deliver(t, "pull_request", "pr-1", pullRequest("acme/repo-00", "opened", 3, head), true); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitPlanStatuses(head, "the first delivery")

	// A new head on the pull request; the forge now refuses the edit.
	gh.RefuseEdits(true)
	head = commitRepo(t, filepath.Join(dir, "src", "repo-00"), "app:v2")
	if code := td.deliver(t, "pull_request", "pr-2", pullRequest("acme/repo-00", "synchronize", 3, head), true); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitPlanStatuses(head, "an edit the forge refused")
	var last *testbed.PostedStatus
	for _, s := range gh.Statuses() {
		if s.SHA == head && s.GetContext() == webhook.ContextPlan {
			last = &s
		}
	}
	if last.GetState() != string(webhook.StateError) {
		t.Errorf("bosun/plan after a refused comment = %s %q, want error (the plan comment is stale)", last.GetState(), last.GetDescription())
	}
	// The job ends (cancelled), not scheduled for a retry.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var unfinished int
		if err := td.store.(*state.SQLite).DB().QueryRowContext(t.Context(),
			"SELECT count(*) FROM river_job WHERE kind = 'bosun_plan_pr' AND state NOT IN ('completed', 'cancelled', 'discarded')").Scan(&unfinished); err != nil {
			t.Fatal(err)
		}
		if unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d plan jobs still unfinished (to be retried) after the forge refused the comment", unfinished)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemon_pullRequestStored: each plan of a pull request is kept in the
// store for the dashboard, with the same Markdown as the comment and the
// status posted; a new head replaces it, and the closed event drops it.
func TestDaemon_pullRequestStored(t *testing.T) {
	dir := t.TempDir()
	repos, heads := makeRepos(t, dir, 1)
	gh := testbed.NewFakeGitHub(t)
	rep := webhook.NewReporter(webhook.ReporterConfig{}, gh.Client())
	td := launchDaemonWith(t, "sqlite:///"+filepath.Join(dir, "state.db"), repos, newApplier(), 10*time.Second, rep)
	td.heads = heads
	td.waitApplied(t, time.Minute)

	event := func(action, head string) *github.PullRequestEvent {
		ev := pullRequest("acme/repo-00", action, 3, head)
		ev.PullRequest.Title = github.String("Bump the app")
		ev.PullRequest.User = &github.User{Login: github.String("ada")}
		ev.PullRequest.HTMLURL = github.String("https://github.example/acme/repo-00/pull/3")
		return ev
	}
	waitStored := func(head string) state.PullRequest {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			prs, err := td.store.ListPullRequests(t.Context(), "repo-00")
			if err != nil {
				t.Fatal(err)
			}
			if len(prs) == 1 && prs[0].HeadSHA == head {
				return prs[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("pull request with head %s not stored; stored: %+v; forge calls: %q", head, prs, gh.Calls())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	head := commitRepo(t, filepath.Join(dir, "src", "repo-00"), "app:v2")
	if code := td.deliver(t, "pull_request", "pr-1", event("opened", head), true); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	pr := waitStored(head)
	comments := gh.Comments("acme/repo-00", 3)
	if len(comments) != 1 || comments[0] != webhook.Marker("repo-00")+"\n"+pr.Markdown {
		t.Errorf("stored Markdown %q is not the comment %q", pr.Markdown, comments)
	}
	var posted *testbed.PostedStatus
	for deadline := time.Now().Add(30 * time.Second); posted == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, s := range gh.Statuses() { // posted right after the plan is stored
			if s.SHA == head && s.GetContext() == webhook.ContextPlan {
				posted = &s
			}
		}
	}
	if posted == nil || pr.Status != posted.GetState() || pr.Summary != posted.GetDescription() || pr.Status != "success" {
		t.Errorf("stored status %s %q, want the posted bosun/plan %+v (success)", pr.Status, pr.Summary, posted)
	}
	if pr.Title != "Bump the app" || pr.Author != "ada" || pr.URL != "https://github.example/acme/repo-00/pull/3" || pr.UpdatedAt.IsZero() {
		t.Errorf("stored pull request = %+v", pr)
	}

	head2 := commitRepo(t, filepath.Join(dir, "src", "repo-00"), "app:v3")
	if code := td.deliver(t, "pull_request", "pr-2", event("synchronize", head2), true); code != http.StatusAccepted {
		t.Fatalf("pull_request: %d", code)
	}
	waitStored(head2)

	if code := td.deliver(t, "pull_request", "pr-3", event("closed", head2), true); code != http.StatusAccepted {
		t.Fatalf("pull_request closed: %d", code)
	}
	if prs, err := td.store.ListPullRequests(t.Context(), ""); err != nil || len(prs) != 0 {
		t.Errorf("after closed: %+v %v, want none", prs, err)
	}
}
