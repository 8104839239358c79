package planner

import (
	"encoding/json"
	"fmt"
	"maps"
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
			c := Change{Target: t.Target, Version: t.version, Desired: t.spec, Dangers: t.spec.Dangers()}
			cur := applied[t.Target]
			switch {
			case cur == nil:
				c.Action = ActionCreate
				// A create lists every setting, so a reviewer sees what
				// the new container gets.
				key := [2]string{"", t.version}
				fields, ok := diffs[key]
				if !ok {
					// service and role are the target's own.
					fields = slices.DeleteFunc(diffSpecs(&Spec{}, t.spec), func(f FieldChange) bool { return f.Field == "service" || f.Field == "role" })
					diffs[key] = fields
				}
				c.Fields = fields
			case cur.Version == t.version:
				c.Action, c.Current = ActionUnchanged, cur
				if fields := connChanges(cur.Conn, ds.hosts[t.Host]); fields != nil {
					// The same container on a host reached otherwise: it is
					// deployed there again, as a new server may be behind it.
					c.Action, c.Fields = ActionUpdate, fields
					if t.spec.Stateful && fields[0].Field == "host.address" {
						pl.Warnings = append(pl.Warnings, fmt.Sprintf("%s: the host's address changed (%s -> %s) and the service is stateful: its data stays on the old server; move it first", t.Target, fields[0].Old, fields[0].New))
					}
				}
			default:
				c.Action, c.Current = ActionUpdate, cur
				key := [2]string{cur.Version, t.version}
				fields, ok := diffs[key]
				if !ok {
					fields = diffSpecs(&cur.Spec, t.spec)
					diffs[key] = fields
				}
				c.Fields = append(connChanges(cur.Conn, ds.hosts[t.Host]), fields...)
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
	for name := range pl.Hosts {
		if srv := ds.fleet.servers[name]; srv != nil && len(srv.tags) > 0 {
			if pl.Tags == nil {
				pl.Tags = map[string][]string{}
			}
			pl.Tags[name] = slices.Clone(srv.tags)
		}
	}
	applyHolds(pl, in.Holds)
	return pl
}

// connChanges lists how the connection to a host changed since a target was
// applied there (nil when it did not, or was not recorded).
func connChanges(old *Host, now Host) []FieldChange {
	if old == nil {
		return nil
	}
	var out []FieldChange
	add := func(f, a, b string) {
		if a != b {
			out = append(out, FieldChange{Field: f, Old: a, New: b})
		}
	}
	add("host.address", old.Address, now.Address)
	add("host.jump", old.Jump, now.Jump)
	add("host.port", strconv.Itoa(old.Port), strconv.Itoa(now.Port))
	add("host.user", old.User, now.User)
	return out
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
// "(set)"/"(changed)" and never a hash or value. Sections that are equal
// are skipped without being flattened: most updates change one field.
func diffSpecs(old, new *Spec) []FieldChange {
	var out []FieldChange
	for _, sec := range specSections {
		if sec.equal(old, new) {
			continue
		}
		a, b := map[string]string{}, map[string]string{}
		sec.flatten(old, a)
		sec.flatten(new, b)
		out = appendDiff(out, a, b)
	}
	slices.SortFunc(out, func(x, y FieldChange) int { return strings.Compare(x.Field, y.Field) })
	return out
}

func appendDiff(out []FieldChange, a, b map[string]string) []FieldChange {
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
	return out
}

// The fields of a custom certificate's secrets in a plan.
const (
	certificatePEMField = "proxy.certificate.certificate_pem"
	privateKeyPEMField  = "proxy.certificate.private_key_pem"
)

func fieldChange(k, ov, nv string, hadOld, hasNew bool) FieldChange {
	if !strings.HasPrefix(k, "secrets.") && k != certificatePEMField && k != privateKeyPEMField {
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

// specSection is one part of a Spec: a cheap equality test and its
// flattening to dotted paths with the JSON names of its fields.
type specSection struct {
	equal   func(a, b *Spec) bool
	flatten func(s *Spec, out map[string]string)
}

// specSections cover every field of a Spec (a test checks it against the
// JSON encoding, so a new field cannot be missed).
var specSections = []specSection{
	{func(a, b *Spec) bool {
		return a.Service == b.Service && a.Role == b.Role && a.Image == b.Image && slices.Equal(a.Cmd, b.Cmd) &&
			slices.Equal(a.Volumes, b.Volumes) && a.Stateful == b.Stateful && a.DeployTimeout == b.DeployTimeout &&
			a.DrainTimeout == b.DrainTimeout && a.StopTimeout == b.StopTimeout && a.ReadinessDelay == b.ReadinessDelay
	}, flattenCore},
	{func(a, b *Spec) bool { return maps.Equal(a.Env, b.Env) }, func(s *Spec, out map[string]string) {
		for k, v := range s.Env {
			out["env."+k] = v
		}
	}},
	{func(a, b *Spec) bool { return maps.Equal(a.Secrets, b.Secrets) }, func(s *Spec, out map[string]string) {
		for k, ref := range s.Secrets {
			out["secrets."+k] = ref.Name + "\x00" + ref.Hash
		}
	}},
	{func(a, b *Spec) bool { return maps.Equal(a.Labels, b.Labels) }, func(s *Spec, out map[string]string) {
		for k, v := range s.Labels {
			out["labels."+k] = v
		}
	}},
	{func(a, b *Spec) bool { return optionsEqual(&a.Options, &b.Options) }, flattenOptions},
	{func(a, b *Spec) bool {
		return a.Logging == nil && b.Logging == nil || a.Logging != nil && b.Logging != nil &&
			a.Logging.Driver == b.Logging.Driver && maps.Equal(a.Logging.Options, b.Logging.Options)
	}, func(s *Spec, out map[string]string) {
		if l := s.Logging; l != nil {
			flatStr(out, "logging.driver", l.Driver)
			for k, v := range l.Options {
				out["logging.options."+k] = v
			}
		}
	}},
	{func(a, b *Spec) bool {
		return a.Proxy == nil && b.Proxy == nil || a.Proxy != nil && b.Proxy != nil && slices.Equal(a.Proxy.Hosts, b.Proxy.Hosts) &&
			a.Proxy.PathPrefix == b.Proxy.PathPrefix && a.Proxy.AppPort == b.Proxy.AppPort && a.Proxy.SSL == b.Proxy.SSL &&
			(a.Proxy.Certificate == nil) == (b.Proxy.Certificate == nil) && (a.Proxy.Certificate == nil || *a.Proxy.Certificate == *b.Proxy.Certificate) &&
			a.Proxy.HealthPath == b.Proxy.HealthPath && a.Proxy.HealthInterval == b.Proxy.HealthInterval &&
			a.Proxy.HealthTimeout == b.Proxy.HealthTimeout && a.Proxy.ResponseTimeout == b.Proxy.ResponseTimeout
	}, flattenProxy},
	{func(a, b *Spec) bool {
		return slices.Equal(a.Health.Cmd, b.Health.Cmd) && a.Health.Interval == b.Health.Interval &&
			a.Health.Timeout == b.Health.Timeout && a.Health.Retries == b.Health.Retries && a.Health.StartPeriod == b.Health.StartPeriod
	}, func(s *Spec, out map[string]string) {
		flatList(out, "health.cmd", s.Health.Cmd)
		flatDur(out, "health.interval", s.Health.Interval, false)
		flatDur(out, "health.timeout", s.Health.Timeout, false)
		flatNum(out, "health.retries", int64(s.Health.Retries))
		flatDur(out, "health.start_period", s.Health.StartPeriod, false)
	}},
}

func optionsEqual(a, b *Options) bool {
	return a.Memory == b.Memory && a.MemoryReservation == b.MemoryReservation && a.CPUs == b.CPUs &&
		a.Restart == b.Restart && slices.Equal(a.AddHosts, b.AddHosts) && slices.Equal(a.CapAdd, b.CapAdd) &&
		slices.Equal(a.CapDrop, b.CapDrop) && slices.Equal(a.Ulimits, b.Ulimits) && slices.Equal(a.Publish, b.Publish) &&
		a.User == b.User && a.Workdir == b.Workdir && a.ShmSize == b.ShmSize && a.PidsLimit == b.PidsLimit &&
		a.ReadOnly == b.ReadOnly && a.Init == b.Init && slices.Equal(a.Tmpfs, b.Tmpfs) && a.StopSignal == b.StopSignal &&
		a.Network == b.Network && slices.Equal(a.NetworkAliases, b.NetworkAliases) && slices.Equal(a.GroupAdd, b.GroupAdd) &&
		a.MemorySwap == b.MemorySwap && slices.Equal(a.Mounts, b.Mounts) && slices.Equal(a.SecurityOpt, b.SecurityOpt) &&
		a.Privileged == b.Privileged && a.PID == b.PID
}

// flattenSpec renders a whole spec as dotted path -> value. Lists are shown
// as JSON arrays; secrets as name NUL hash (never displayed).
func flattenSpec(s *Spec) map[string]string {
	out := make(map[string]string, 32)
	for _, sec := range specSections {
		sec.flatten(s, out)
	}
	return out
}

func flatStr(out map[string]string, k, v string) {
	if v != "" {
		out[k] = v
	}
}

func flatList(out map[string]string, k string, v []string) {
	if len(v) > 0 {
		b, _ := json.Marshal(v)
		out[k] = string(b)
	}
}

func flatNum(out map[string]string, k string, v int64) {
	if v != 0 {
		out[k] = strconv.FormatInt(v, 10)
	}
}

func flatBool(out map[string]string, k string, v bool) {
	if v {
		out[k] = "true"
	}
}

func flatDur(out map[string]string, k string, d Duration, always bool) {
	if d != 0 || always {
		out[k] = d.String()
	}
}

func flattenCore(s *Spec, out map[string]string) {
	flatStr(out, "service", s.Service)
	flatStr(out, "role", s.Role)
	flatStr(out, "image", s.Image)
	flatList(out, "cmd", s.Cmd)
	if len(s.Volumes) > 0 {
		b, _ := json.Marshal(s.Volumes)
		out["volumes"] = string(b)
	}
	flatBool(out, "stateful", s.Stateful)
	flatDur(out, "deploy_timeout", s.DeployTimeout, true)
	flatDur(out, "drain_timeout", s.DrainTimeout, true)
	flatDur(out, "stop_timeout", s.StopTimeout, false)
	flatDur(out, "readiness_delay", s.ReadinessDelay, true)
}

func flattenOptions(s *Spec, out map[string]string) {
	o := &s.Options
	flatStr(out, "options.memory", o.Memory)
	flatStr(out, "options.memory_reservation", o.MemoryReservation)
	flatStr(out, "options.cpus", o.CPUs)
	flatStr(out, "options.restart", o.Restart)
	flatList(out, "options.add_hosts", o.AddHosts)
	flatList(out, "options.cap_add", o.CapAdd)
	flatList(out, "options.cap_drop", o.CapDrop)
	flatList(out, "options.ulimits", o.Ulimits)
	flatList(out, "options.publish", o.Publish)
	flatStr(out, "options.user", o.User)
	flatStr(out, "options.workdir", o.Workdir)
	flatStr(out, "options.shm_size", o.ShmSize)
	flatNum(out, "options.pids_limit", o.PidsLimit)
	flatBool(out, "options.read_only", o.ReadOnly)
	flatBool(out, "options.init", o.Init)
	flatList(out, "options.tmpfs", o.Tmpfs)
	flatStr(out, "options.stop_signal", o.StopSignal)
	flatStr(out, "options.network", o.Network)
	flatList(out, "options.network_aliases", o.NetworkAliases)
	flatList(out, "options.group_add", o.GroupAdd)
	flatStr(out, "options.memory_swap", o.MemorySwap)
	flatList(out, "options.mounts", o.Mounts)
	flatList(out, "options.security_opt", o.SecurityOpt)
	flatBool(out, "options.privileged", o.Privileged)
	flatStr(out, "options.pid", o.PID)
}

func flattenProxy(s *Spec, out map[string]string) {
	p := s.Proxy
	if p == nil {
		return
	}
	flatList(out, "proxy.hosts", p.Hosts)
	flatStr(out, "proxy.path_prefix", p.PathPrefix)
	out["proxy.app_port"] = strconv.Itoa(p.AppPort)
	flatBool(out, "proxy.ssl", p.SSL)
	if c := p.Certificate; c != nil {
		// Shown as secrets are: set, changed or renamed, never a hash.
		out[certificatePEMField] = c.CertificatePEM.Name + "\x00" + c.CertificatePEM.Hash
		out[privateKeyPEMField] = c.PrivateKeyPEM.Name + "\x00" + c.PrivateKeyPEM.Hash
	}
	out["proxy.health_path"] = p.HealthPath
	flatDur(out, "proxy.health_interval", p.HealthInterval, true)
	flatDur(out, "proxy.health_timeout", p.HealthTimeout, true)
	flatDur(out, "proxy.response_timeout", p.ResponseTimeout, true)
}
