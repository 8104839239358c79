package planner

import (
	"strings"
	"testing"
)

func TestRollbackPlan(t *testing.T) {
	specA := Spec{Service: "web", Role: "web", Image: "a"}
	specB := Spec{Service: "web", Role: "web", Image: "b"}
	cur := []Applied{{Target: Target{Service: "web", Role: "web", Host: "h1"}, Version: "vb", Spec: specB}}
	hist := []AppliedVersion{{Role: "web", Version: "vb", Commit: "c2", Spec: specB}, {Role: "web", Version: "va", Commit: "c1", Spec: specA}}
	hosts := map[string]Host{"h1": {Name: "h1"}}
	pl, err := RollbackPlan("r", Service{Name: "web"}, hosts, cur, hist, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Changes) != 1 || pl.Changes[0].Version != "va" || pl.Changes[0].Desired.Image != "a" || pl.Changes[0].Action != ActionUpdate || pl.Commit != "c1" {
		t.Fatalf("plan = %+v", pl.Changes)
	}
	if _, err := RollbackPlan("r", Service{Name: "web"}, hosts, cur, hist, "nope"); err == nil || !strings.Contains(err.Error(), "never ran version nope") {
		t.Errorf("unknown version: err = %v", err)
	}
	pl, err = RollbackPlan("r", Service{Name: "web"}, hosts, cur, hist, "vb")
	if err != nil || len(pl.Changes) != 0 {
		t.Errorf("rollback to the running version: %+v %v", pl, err)
	}
	if _, err := RollbackPlan("r", Service{Name: "web"}, hosts, cur, hist[:1], ""); err == nil || !strings.Contains(err.Error(), "no earlier version") {
		t.Errorf("no earlier version: err = %v", err)
	}
	if _, err := RollbackPlan("r", Service{Name: "web"}, map[string]Host{}, cur, hist, ""); err == nil || !strings.Contains(err.Error(), "no connection details for host h1") {
		t.Errorf("host missing from the inventory: err = %v", err)
	}
}
