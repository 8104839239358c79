package planner

import (
	"fmt"
	"sort"

	"github.com/bosunhq/bosun/internal/commitsha"
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

// RollbackFrom is RollbackPlan for service as desired (the plan of the
// tracked branch's head against the applied state) knows it: its config
// and hosts, and what runs on each of its targets now.
func RollbackFrom(desired *Plan, service string, history []AppliedVersion, to string) (*Plan, error) {
	var svc *Service
	for i := range desired.Services {
		if desired.Services[i].Name == service {
			svc = &desired.Services[i]
		}
	}
	if svc == nil {
		return nil, fmt.Errorf("service %q is not in the config at %s", service, commitsha.Short(desired.Commit))
	}
	var current []Applied
	for _, ch := range desired.Changes {
		if ch.Service == service && ch.Current != nil {
			current = append(current, *ch.Current)
		}
	}
	return RollbackPlan(desired.Repo, *svc, desired.Hosts, current, history, to)
}

// HeldVersion is the version a rollback plan puts service on (the primary
// role's, when roles differ): the version to hold it at.
func (pl *Plan) HeldVersion(service string) string {
	for _, s := range pl.Services {
		if s.Name != service {
			continue
		}
		for _, ch := range pl.Changes {
			if ch.Service == service && ch.Role == s.PrimaryRole && ch.Version != "" {
				return ch.Version
			}
		}
	}
	for _, ch := range pl.Changes {
		if ch.Service == service && ch.Version != "" {
			return ch.Version
		}
	}
	return ""
}
