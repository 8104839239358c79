package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
)

// Propose makes the branch from the given commit, writes the files on it
// and opens the pull request; a branch that exists is refused for good.
func TestReporter_Propose(t *testing.T) {
	gh := testbed.NewFakeGitHub(t)
	rep := NewReporter(ReporterConfig{}, gh.Client())
	p := Proposal{Repo: "acme/fleet", Base: "main", BaseSHA: "0123456789abcdef0123456789abcdef01234567", Branch: "bosun/new-service-api",
		Files: map[string][]byte{"deploy/services/api.yml": []byte("service: api\n")}, Message: "Add service api", Title: "Add service api", Body: "Opened by github:alice"}
	got, err := rep.Propose(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	prs := gh.PullRequests()
	if len(prs) != 1 {
		t.Fatalf("pull requests on the fake: %+v", prs)
	}
	pr := prs[0]
	if got.Number != pr.Number || got.URL != pr.URL || !strings.HasSuffix(got.URL, "/acme/fleet/pull/1") {
		t.Errorf("Propose = %+v, the fake opened %+v", got, pr)
	}
	if pr.Head != p.Branch || pr.Base != "main" || pr.BaseSHA != p.BaseSHA || pr.Title != p.Title || pr.Body != p.Body ||
		len(pr.Files) != 1 || pr.Files["deploy/services/api.yml"] != "service: api\n" || len(pr.Messages) != 1 || pr.Messages[0] != p.Message {
		t.Errorf("opened %+v", pr)
	}
	if _, err := rep.Propose(t.Context(), p); !errors.Is(err, ErrRefused) {
		t.Errorf("a second proposal on the same branch: %v, want ErrRefused", err)
	}
	if len(gh.PullRequests()) != 1 {
		t.Errorf("the refused proposal opened a pull request")
	}
}
