package planner

import (
	"fmt"
	"sort"
)

// AppliedVersion is one spec a role of a service once ran: an entry of the
// service's version history in the state store, decoded (see
// executor.LoadHistory).
type AppliedVersion struct {
	Role, Version, Commit string
	Spec                  Spec
}

// RollbackPlan builds the plan that puts a service back on an earlier
// applied spec, for `bosun rollback SERVICE [--to VERSION]`. current is the
// service's applied state (one entry per role and host), history its
// versions newest first. With to empty, each role goes back to the newest
// version other than the one it runs; otherwise to version to, which every
// role of the service must have run. Hosts whose retained container of that
// version still exists restart it without a pull; apply the plan like any
// other. The caller puts the hold.
func RollbackPlan(repo string, svc Service, hosts map[string]Host, current []Applied, history []AppliedVersion, to string) (*Plan, error) {
	plan := &Plan{Repo: repo, Services: []Service{svc}, Hosts: map[string]Host{}}
	byRole := map[string][]AppliedVersion{}
	for _, v := range history {
		byRole[v.Role] = append(byRole[v.Role], v)
	}
	for _, cur := range current {
		if cur.Service != svc.Name {
			continue
		}
		var pick *AppliedVersion
		for i, v := range byRole[cur.Role] {
			if (to != "" && v.Version == to) || (to == "" && v.Version != cur.Version) {
				pick = &byRole[cur.Role][i]
				break
			}
		}
		if pick == nil {
			if to != "" {
				return nil, fmt.Errorf("rollback %s: role %s never ran version %s", svc.Name, cur.Role, to)
			}
			return nil, fmt.Errorf("rollback %s: role %s has no earlier version", svc.Name, cur.Role)
		}
		if pick.Version == cur.Version {
			continue // already there
		}
		h, ok := hosts[cur.Host]
		if !ok {
			return nil, fmt.Errorf("rollback %s: no connection details for host %s", svc.Name, cur.Host)
		}
		plan.Hosts[cur.Host] = h
		c := cur
		spec := pick.Spec
		plan.Changes = append(plan.Changes, Change{
			Target: c.Target, Action: ActionUpdate, Version: pick.Version,
			Desired: &spec, Current: &c, Disruptive: spec.Stateful,
		})
		plan.Commit = pick.Commit
	}
	sort.Slice(plan.Changes, func(i, j int) bool {
		a, b := plan.Changes[i].Target, plan.Changes[j].Target
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Host < b.Host
	})
	return plan, nil
}
