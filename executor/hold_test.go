package executor

import (
	"slices"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// TestApply_ReleasesHolds checks the one hold-release rule, which both
// bosun apply and the daemon get from Apply: a hold the plan marks
// releasable ends once its service is rolled out (or had nothing to do),
// and stays when the rollout failed.
func TestApply_ReleasesHolds(t *testing.T) {
	en := newBedEnv(t, 1)
	specV1 := webSpec(en.bed.PushApp(t, "web", "v1", testbed.AppOK))
	specV2 := webSpec(en.bed.PushApp(t, "web", "v2", testbed.AppOK))
	bad := webSpec(en.bed.PushApp(t, "web", "v3", testbed.AppUnhealthy))
	bad.DeployTimeout = planner.Duration(3 * time.Second)
	pol := planner.Service{}
	en.mustApply(en.plan(specV1, pol))

	hold := func(svc, version string) {
		t.Helper()
		if err := en.store.PutHold(t.Context(), state.Hold{Repo: testRepo, Service: svc, Version: version, Reason: "test", CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	held := func() []string {
		t.Helper()
		hs, err := en.store.ListHolds(t.Context(), testRepo)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hs {
			out = append(out, h.Service)
		}
		slices.Sort(out)
		return out
	}
	releasing := func(pl *planner.Plan) *planner.Plan {
		pl.ReleasedHolds = []string{"web"}
		return pl
	}
	hold("web", specV2.Version())
	hold("other", "abc")

	res, err := en.apply(releasing(en.plan(bad, pol)))
	if err == nil {
		t.Fatal("the unhealthy version applied")
	}
	if got := held(); !slices.Equal(got, []string{"other", "web"}) || len(res.ReleasedHolds) != 0 {
		t.Fatalf("after a failed rollout holds = %v, released %v; want both holds kept", got, res.ReleasedHolds)
	}

	res = en.mustApply(releasing(en.plan(specV2, pol)))
	if got := held(); !slices.Equal(got, []string{"other"}) || !slices.Equal(res.ReleasedHolds, []string{"web"}) {
		t.Fatalf("after a rollout holds = %v, released %v; want web's released, other's kept", got, res.ReleasedHolds)
	}

	hold("web", specV2.Version())
	pl := releasing(en.plan(specV2, pol))
	if pl.Changes[0].Action != planner.ActionUnchanged {
		t.Fatalf("re-plan of v2 is %s, want unchanged", pl.Changes[0].Action)
	}
	res = en.mustApply(pl)
	if got := held(); !slices.Equal(got, []string{"other"}) || !slices.Equal(res.ReleasedHolds, []string{"web"}) {
		t.Fatalf("after an apply with nothing to do holds = %v, released %v; want web's released", got, res.ReleasedHolds)
	}
}
