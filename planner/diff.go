package planner

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// diffState compares the desired state with the applied one, target by
// target, and applies holds.
func diffState(ds *desiredState, in *Input) *Plan {
	pl := &Plan{Hosts: map[string]Host{}}
	applied := make(map[Target]*Applied, len(in.Applied))
	for i := range in.Applied {
		applied[in.Applied[i].Target] = &in.Applied[i]
	}
	desired := make(map[Target]bool)
	diffs := map[[2]string][]FieldChange{} // specs of one version pair are equal: diff once
	for _, s := range ds.services {
		pl.Services = append(pl.Services, s.svc)
		for _, t := range s.targets {
			desired[t.Target] = true
			c := Change{Target: t.Target, Version: t.version, Desired: t.spec}
			cur := applied[t.Target]
			switch {
			case cur == nil:
				c.Action = ActionCreate
			case cur.Version == t.version:
				c.Action, c.Current = ActionUnchanged, cur
			default:
				c.Action, c.Current = ActionUpdate, cur
				key := [2]string{cur.Version, t.version}
				fields, ok := diffs[key]
				if !ok {
					fields = diffSpecs(&cur.Spec, t.spec)
					diffs[key] = fields
				}
				c.Fields = fields
				c.Disruptive = t.spec.Stateful || cur.Spec.Stateful
			}
			pl.Changes = append(pl.Changes, c)
			pl.Hosts[t.Host] = ds.hosts[t.Host]
		}
	}
	for i := range in.Applied {
		a := &in.Applied[i]
		if desired[a.Target] {
			continue
		}
		pl.Changes = append(pl.Changes, Change{Target: a.Target, Action: ActionRemove, Current: a, Disruptive: a.Spec.Stateful})
		if h, ok := ds.hosts[a.Host]; ok {
			pl.Hosts[a.Host] = h
		} else if srv := ds.fleet.servers[a.Host]; srv != nil {
			pl.Hosts[a.Host] = Host{Name: srv.name, Address: srv.address,
				User: firstNonEmpty(srv.user, ds.fleet.ssh.user, defaultSSHUser),
				Port: firstNonZero(srv.port, ds.fleet.ssh.port, defaultSSHPort), Jump: ds.fleet.ssh.jump}
		} else if strings.ContainsAny(a.Host, ".:") && checkAddress(a.Host) == "" {
			pl.Hosts[a.Host] = Host{Name: a.Host, Address: a.Host, User: firstNonEmpty(ds.fleet.ssh.user, defaultSSHUser),
				Port: firstNonZero(ds.fleet.ssh.port, defaultSSHPort), Jump: ds.fleet.ssh.jump}
		} else {
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("%s: host %s is no longer in fleet.yml, so bosun cannot reach it to remove the container: keep the server in the inventory until its services are gone", a.Target, a.Host))
		}
	}
	slices.SortFunc(pl.Changes, func(a, b Change) int {
		return strings.Compare(a.Service+"\x00"+a.Role+"\x00"+a.Host, b.Service+"\x00"+b.Role+"\x00"+b.Host)
	})
	applyHolds(pl, in.Holds)
	return pl
}

// applyHolds marks the targets of held services as held, unless the
// desired spec of every target is the held version or already runs (the
// revert was merged): then the hold is reported as releasable.
func applyHolds(pl *Plan, holds []Hold) {
	for _, h := range holds {
		var idx []int
		releasable := true
		desired := 0
		for i, c := range pl.Changes {
			if c.Service != h.Service {
				continue
			}
			idx = append(idx, i)
			if c.Action == ActionRemove {
				releasable = false
				continue
			}
			desired++
			if c.Version != h.Version && (c.Current == nil || c.Current.Version != c.Version) {
				releasable = false
			}
		}
		if len(idx) == 0 {
			continue
		}
		if releasable && desired > 0 {
			pl.ReleasedHolds = append(pl.ReleasedHolds, h.Service)
			continue
		}
		for _, i := range idx {
			c := &pl.Changes[i]
			if c.Current != nil && c.Desired != nil && c.Fields == nil && c.Current.Version != c.Version {
				c.Fields = diffSpecs(&c.Current.Spec, c.Desired)
			}
			c.Action, c.Disruptive = ActionHeld, false
		}
	}
}

// diffSpecs lists the fields that differ between two specs, flattened to
// dotted paths (env.RAILS_ENV, proxy.hosts, options.memory). Secrets show
// "(set)"/"(changed)" and never a hash or value.
func diffSpecs(old, new *Spec) []FieldChange {
	a, b := flattenSpec(old), flattenSpec(new)
	var out []FieldChange
	for k, nv := range b {
		if ov, ok := a[k]; !ok || ov != nv {
			out = append(out, fieldChange(k, a[k], nv, ok, true))
		}
	}
	for k, ov := range a {
		if _, ok := b[k]; !ok {
			out = append(out, fieldChange(k, ov, "", true, false))
		}
	}
	slices.SortFunc(out, func(x, y FieldChange) int { return strings.Compare(x.Field, y.Field) })
	return out
}

func fieldChange(k, ov, nv string, hadOld, hasNew bool) FieldChange {
	if !strings.HasPrefix(k, "secrets.") {
		return FieldChange{Field: k, Old: ov, New: nv}
	}
	// ov and nv are "name\x00hash": show only whether it is set or changed.
	fc := FieldChange{Field: k}
	if hadOld {
		fc.Old = "(set)"
	}
	switch {
	case hasNew && hadOld:
		on, _, _ := strings.Cut(ov, "\x00")
		nn, _, _ := strings.Cut(nv, "\x00")
		fc.New = "(changed)"
		if on != nn {
			fc.Old, fc.New = "(secret "+on+")", "(secret "+nn+")"
		}
	case hasNew:
		fc.New = "(set)"
	}
	return fc
}

// flattenSpec renders a spec as dotted path -> value, with the JSON names
// of its fields (a test checks it against the JSON encoding, so a new
// Spec field cannot be missed). Lists are shown as JSON arrays; secrets as
// name NUL hash (never displayed).
func flattenSpec(s *Spec) map[string]string {
	out := make(map[string]string, 16+len(s.Env)+len(s.Secrets)+len(s.Labels))
	str := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	list := func(k string, v []string) {
		if len(v) > 0 {
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			out[k] = strconv.FormatInt(v, 10)
		}
	}
	flag := func(k string, v bool) {
		if v {
			out[k] = "true"
		}
	}
	dur := func(k string, d Duration, always bool) {
		if d != 0 || always {
			out[k] = d.String()
		}
	}
	str("service", s.Service)
	str("role", s.Role)
	str("image", s.Image)
	list("cmd", s.Cmd)
	for k, v := range s.Env {
		out["env."+k] = v
	}
	for k, ref := range s.Secrets {
		out["secrets."+k] = ref.Name + "\x00" + ref.Hash
	}
	if len(s.Volumes) > 0 {
		b, _ := json.Marshal(s.Volumes)
		out["volumes"] = string(b)
	}
	for k, v := range s.Labels {
		out["labels."+k] = v
	}
	o := &s.Options
	str("options.memory", o.Memory)
	str("options.memory_reservation", o.MemoryReservation)
	str("options.cpus", o.CPUs)
	str("options.restart", o.Restart)
	list("options.add_hosts", o.AddHosts)
	list("options.cap_add", o.CapAdd)
	list("options.cap_drop", o.CapDrop)
	list("options.ulimits", o.Ulimits)
	list("options.publish", o.Publish)
	str("options.user", o.User)
	str("options.workdir", o.Workdir)
	str("options.shm_size", o.ShmSize)
	num("options.pids_limit", o.PidsLimit)
	flag("options.read_only", o.ReadOnly)
	flag("options.init", o.Init)
	list("options.tmpfs", o.Tmpfs)
	str("options.stop_signal", o.StopSignal)
	if l := s.Logging; l != nil {
		str("logging.driver", l.Driver)
		for k, v := range l.Options {
			out["logging.options."+k] = v
		}
	}
	if p := s.Proxy; p != nil {
		list("proxy.hosts", p.Hosts)
		str("proxy.path_prefix", p.PathPrefix)
		out["proxy.app_port"] = strconv.Itoa(p.AppPort)
		flag("proxy.ssl", p.SSL)
		out["proxy.health_path"] = p.HealthPath
		dur("proxy.health_interval", p.HealthInterval, true)
		dur("proxy.health_timeout", p.HealthTimeout, true)
		dur("proxy.response_timeout", p.ResponseTimeout, true)
	}
	list("health.cmd", s.Health.Cmd)
	dur("health.interval", s.Health.Interval, false)
	dur("health.timeout", s.Health.Timeout, false)
	num("health.retries", int64(s.Health.Retries))
	flag("stateful", s.Stateful)
	dur("deploy_timeout", s.DeployTimeout, true)
	dur("drain_timeout", s.DrainTimeout, true)
	dur("stop_timeout", s.StopTimeout, false)
	dur("readiness_delay", s.ReadinessDelay, true)
	return out
}
