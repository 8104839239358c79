package webhook

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

func TestReporter_SetStatus(t *testing.T) {
	fake := testbed.NewFakeGitHub(t)
	r := NewReporter(ReporterConfig{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }}, fake.Client())
	long := "deployed shop, api on web-1, web-2 in 4.2s " + strings.Repeat("and more ", 30)
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc123", Context: ContextDeploy, State: StateSuccess, Description: long}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc123", Context: ContextDeploy, State: StateFailure, Description: "web-1: shop: health: token hunter2 refused\nsecond line"}); err != nil {
		t.Fatal(err)
	}
	statuses := fake.Statuses()
	if len(statuses) != 2 {
		t.Fatalf("posted %d statuses", len(statuses))
	}
	first, second := statuses[0], statuses[1]
	if first.GetState() != "success" || first.GetContext() != "bosun/deploy" || len(first.GetDescription()) > 140 {
		t.Errorf("first status = %v", first)
	}
	if got := second.GetDescription(); got != "web-1: shop: health: token [redacted] refused" {
		t.Errorf("description = %q; want one redacted line", got)
	}
	if c := fake.Calls()[0]; c != "status acme/fleet@abc123 bosun/deploy=success" {
		t.Errorf("call = %q", c)
	}
	if err := r.SetStatus(t.Context(), Status{Repo: "fleet", SHA: "abc"}); err == nil {
		t.Error("a repository without an owner was accepted")
	}
}

func TestReporter_Comment(t *testing.T) {
	fake := testbed.NewFakeGitHub(t)
	r := NewReporter(ReporterConfig{}, fake.Client())
	// Someone else's comments first, more than one page of them.
	for i := range 120 {
		fake.AddComment("acme/fleet", 7, fmt.Sprintf("looks good %d", i))
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
	comments := fake.Comments("acme/fleet", 7)
	for _, c := range comments {
		if strings.HasPrefix(c, Marker("fleet")) {
			ours++
			body = c
		}
	}
	if ours != 1 {
		t.Fatalf("%d plan comments for one repository, want 1 edited in place", ours)
	}
	if !strings.Contains(body, "plan v2") || strings.Contains(body, "plan v1") {
		t.Errorf("comment was not replaced: %q", body)
	}
	if len(comments) != 122 {
		t.Errorf("%d comments, want 120 + one per config repository", len(comments))
	}
	want := []string{"create comment acme/fleet#7", "edit comment acme/fleet#7 1121", "create comment acme/fleet#7"}
	if got := fake.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

// TestReporter_plansNotRedacted: a plan is posted as the planner made it.
// Redacting a value in it would confirm that a value the pull request wrote
// equals a secret.
func TestReporter_plansNotRedacted(t *testing.T) {
	fake := testbed.NewFakeGitHub(t)
	r := NewReporter(ReporterConfig{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }}, fake.Client())
	if err := r.SetStatus(t.Context(), Status{Repo: "acme/fleet", SHA: "abc", Context: ContextPlan, State: StateFailure, Description: `invalid config: image "hunter2 x"`}); err != nil {
		t.Fatal(err)
	}
	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", `image "hunter2 x" contains white space`); err != nil {
		t.Fatal(err)
	}
	if got := fake.Statuses()[0].GetDescription(); got != `invalid config: image "hunter2 x"` {
		t.Errorf("plan status = %q, want it as written", got)
	}
	if got := fake.Comments("acme/fleet", 7)[0]; !strings.Contains(got, `"hunter2 x"`) {
		t.Errorf("plan comment = %q, want it as written", got)
	}
}

func TestReporter_Comment_onlyItsOwn(t *testing.T) {
	fake := testbed.NewFakeGitHub(t)
	r := NewReporter(ReporterConfig{}, fake.Client())
	// Another user writes a comment that starts with bosun's marker.
	forged := Marker("fleet") + "\n**0 to change** (forged)"
	fake.AddCommentBy("acme/fleet", 7, "mallory", forged)

	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "**1 to change**\nplan v1"); err != nil {
		t.Fatal(err)
	}
	comments := fake.Comments("acme/fleet", 7)
	if len(comments) != 2 || comments[0] != forged || !strings.Contains(comments[1], "plan v1") {
		t.Fatalf("comments = %q, want mallory's untouched and bosun's own new one", comments)
	}
	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "**2 to change**\nplan v2"); err != nil {
		t.Fatal(err)
	}
	comments = fake.Comments("acme/fleet", 7)
	if len(comments) != 2 || comments[0] != forged || !strings.Contains(comments[1], "plan v2") {
		t.Fatalf("comments = %q, want bosun's own comment edited", comments)
	}
}

func TestReporter_Comment_editRefused(t *testing.T) {
	fake := testbed.NewFakeGitHub(t)
	r := NewReporter(ReporterConfig{}, fake.Client())
	if err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "plan v1"); err != nil {
		t.Fatal(err)
	}
	fake.RefuseEdits(true)
	err := r.Comment(t.Context(), "acme/fleet", 7, "fleet", "plan v2")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("a 403 on the edit gave %v, want ErrRefused (a permanent answer)", err)
	}
}
