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
