package planner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// resolve checks the parsed services against the inventory and each other,
// and builds every target's spec.
func (l *loader) resolve(defs []*svcDef) *desiredState {
	ds := &desiredState{hosts: map[string]Host{}, fleet: l.fleet}
	byName := map[string]*svcDef{}
	var named []*svcDef
	for _, s := range defs {
		if s.name == "" {
			continue
		}
		if prev, dup := byName[s.name]; dup {
			s.d.errf(s.nameNode, "service %q is already defined in %s: give each service its own name", s.name, prev.d.file)
			continue
		}
		byName[s.name] = s
		named = append(named, s)
	}
	slices.SortFunc(named, func(a, b *svcDef) int { return strings.Compare(a.name, b.name) })
	hostOwner := map[string]string{} // host name -> service that set its details
	claims := map[string]proxyClaim{}
	for _, s := range named {
		dsvc := l.resolveService(s, ds, hostOwner, claims)
		if dsvc != nil {
			ds.services = append(ds.services, dsvc)
		}
	}
	return ds
}

type proxyClaim struct {
	service, role string
	d             *doc // where the claim is, formatted only for an error
	node          *yaml.Node
}

func (l *loader) resolveService(s *svcDef, ds *desiredState, hostOwner map[string]string, claims map[string]proxyClaim) *desiredService {
	d := s.d
	var primary *roleDef
	for _, r := range s.roles {
		if r.name == s.primaryRole {
			primary = r
		}
	}
	if primary == nil && len(s.roles) > 0 {
		at := s.primaryNode
		if at == nil {
			at = s.roles[0].node
		}
		names := make([]string, len(s.roles))
		for i, r := range s.roles {
			names[i] = r.name
		}
		d.errf(at, "primary role %q is not among the roles (%s): set primary_role: to one of them", s.primaryRole, strings.Join(names, ", "))
		return nil
	}
	if len(s.roles) == 0 {
		return nil
	}
	image := s.image
	if image != "" && s.registry != nil && s.registry.Server != "" && imageDomain(image) == "" && !isDockerHub(s.registry.Server) {
		image = s.registry.Server + "/" + image
		if msg := checkImage(image); msg != "" {
			d.errf(s.imageNode, "image with registry.server: %s", msg)
			return nil
		}
	}
	if image != "" && !s.imageVersioned {
		d.notef(s.imageNode, "image %s has no tag or digest: Docker pulls :latest, and a new push to it is not a config change bosun can see; pin a tag (e.g. %s:1.2.3)", image, image)
	}
	out := &desiredService{file: d.file, svc: Service{
		Name: s.name, PrimaryRole: s.primaryRole, Roles: s.roleNames(), BootWait: s.bootWait,
		Canary: s.canary, Standby: s.standby, RetainContainers: s.retain, Registry: l.registryFor(s, image),
		LocalRegistryPort: l.localRegistryFor(s, image),
	}}

	allHosts := map[string]bool{}
	statefulHosts := map[string]bool{}
	var statefulAt *yaml.Node
	for _, r := range s.roles {
		hosts := l.resolveHosts(s, r)
		if len(hosts) == 0 {
			if len(r.hosts) == 0 && s.allowEmptyRoles && r.name != s.primaryRole {
				continue // allow_empty_roles: a role without hosts runs nowhere
			}
			if len(r.hosts) == 0 && d.budget >= 0 { // an exhausted budget is reported already
				d.errf(r.node, "role %s has no hosts: add at least one (an inventory name, an address, or tag:NAME)", r.name)
			}
			continue
		}
		base, proxied := l.roleSpec(s, r, image)
		if base == nil {
			continue
		}
		var cert *certDef // proxy.ssl's custom certificate, whose hashes are per target
		if proxied {
			l.claimProxy(s, r, base.Proxy, hosts, claims)
			cert = s.proxy.merge(r.proxy).cert
		}
		cache := map[string]desiredTarget{}
		for _, h := range hosts {
			if !l.registerHost(s, h, ds, hostOwner) {
				continue
			}
			allHosts[h.name] = true
			if base.Stateful {
				statefulHosts[h.name] = true
				if statefulAt == nil && len(s.volNodes) > 0 {
					statefulAt = s.volNodes[0]
				}
			}
			t := Target{Service: s.name, Role: r.name, Host: h.name}
			tags := applicableTags(s.env.tags, h.tags)
			key := strings.Join(tags, ",")
			if dt, ok := cache[key]; ok {
				dt.Target = t
				out.targets = append(out.targets, dt)
				continue
			}
			spec := *base
			spec.Env, spec.Secrets = maps.Clone(base.Env), nil
			secrets := slices.Clone(r.envSecrets(s))
			for _, tag := range tags {
				te := s.env.tags[tag]
				for k, v := range te.clear {
					spec.Env[k] = v
				}
				secrets = append(secrets, te.secrets...)
			}
			fromApplied := l.fillSecrets(s, t, &spec, secrets)
			if spec.Proxy != nil && cert != nil {
				fromApplied = l.fillCertificate(s, t, &spec, cert) || fromApplied
			}
			if len(spec.Env) == 0 {
				spec.Env = nil
			}
			dt := desiredTarget{Target: t, spec: &spec, version: spec.Version()}
			if !fromApplied {
				cache[key] = dt
			}
			out.targets = append(out.targets, dt)
		}
	}
	if s.bootLimit != "" {
		out.svc.BootLimit = bootLimit(s.bootLimit, len(allHosts))
	}
	if len(statefulHosts) > 1 {
		// As Kamal allows: each host keeps its own data. Each is replaced
		// stop-then-start, one host after another unless boot.limit says.
		at := statefulAt
		if at == nil {
			at = s.nameNode
		}
		if s.bootLimit == "" {
			out.svc.BootLimit = 1
		}
		l.warnings = append(l.warnings, d.at(at, fmt.Sprintf("service %s is stateful (a writable volume and no proxy) on %d hosts (%s): each host has its own data, not a copy; an update stops and starts it on each host in turn (boot.limit %d)",
			s.name, len(statefulHosts), strings.Join(sortedKeys(statefulHosts), ", "), out.svc.BootLimit)).Error())
	}
	slices.SortFunc(out.targets, func(a, b desiredTarget) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string { return mapKeys(m) }

func bootLimit(v string, hosts int) int {
	if num, ok := strings.CutSuffix(v, "%"); ok {
		var pct int
		fmt.Sscan(num, &pct)
		return max(1, hosts*pct/100)
	}
	var n int
	fmt.Sscan(v, &n)
	return n
}

func isDockerHub(server string) bool {
	switch server {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "hub.docker.com":
		return true
	}
	return false
}

// registryFor is the login for image: the service's own registry when it
// has credentials, else fleet.yml's default registry when the image lives
// there, else none.
func (l *loader) registryFor(s *svcDef, image string) *Registry {
	hasCreds := func(r *Registry) bool { return r != nil && r.PasswordSecret != "" }
	if s.registry != nil {
		if hasCreds(s.registry) {
			r := *s.registry
			return &r
		}
		return nil
	}
	def := l.fleet.registry
	if !hasCreds(def) {
		return nil
	}
	dom := imageDomain(image)
	if dom == def.Server || strings.HasPrefix(image, def.Server+"/") && def.Server != "" || dom == "" && (def.Server == "" || isDockerHub(def.Server)) {
		r := *def
		return &r
	}
	return nil
}

// localRegistryFor is the port of Kamal's local registry (localhost:PORT)
// when image lives there and the service's registry (its own, else
// fleet.yml's default) names it; else 0. An image written as
// localhost:PORT/... without such a registry is pulled from the server's
// own loopback, as Kamal does.
func (l *loader) localRegistryFor(s *svcDef, image string) int {
	reg := s.registry
	if reg == nil {
		reg = l.fleet.registry
	}
	if reg == nil {
		return 0
	}
	port := localRegistryPort(reg.Server)
	if port == 0 || imageDomain(image) != reg.Server {
		return 0
	}
	return port
}

func (r *roleDef) envSecrets(s *svcDef) []secretDef {
	out := slices.Clone(s.env.secrets)
	return append(out, r.env.secrets...)
}

func applicableTags(envTags map[string]*envDef, hostTags []string) []string {
	var out []string
	for _, t := range hostTags {
		if envTags[t] != nil {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// roleSpec builds the spec of one role without its secrets.
func (l *loader) roleSpec(s *svcDef, r *roleDef, image string) (*Spec, bool) {
	d := s.d
	proxied := r.name == s.primaryRole
	if r.proxyOn != nil {
		proxied = *r.proxyOn
	}
	// Specs get their own slices: parsed files are cached and shared.
	spec := &Spec{
		Service: s.name, Role: r.name, Image: image, Cmd: slices.Clone(r.cmd),
		Env:     map[string]string{},
		Volumes: slices.Clone(s.volumes), Options: r.options.clone(), Health: s.health,
		DeployTimeout: s.deploy, DrainTimeout: s.drain, ReadinessDelay: s.readiness,
	}
	spec.Health.Cmd = slices.Clone(s.health.Cmd)
	maps.Copy(spec.Env, s.env.clear)
	maps.Copy(spec.Env, r.env.clear)
	if len(s.labels)+len(r.labels) > 0 {
		spec.Labels = map[string]string{}
		maps.Copy(spec.Labels, s.labels)
		maps.Copy(spec.Labels, r.labels)
	}
	spec.Logging = mergeLogging(s.logging, r.logging)
	if spec.Options.Restart == "" {
		spec.Options.Restart = defaultRestart
	}
	if proxied {
		p := s.proxy.merge(r.proxy)
		spec.Proxy = &Proxy{
			Hosts: slices.Compact(slices.Sorted(slices.Values(p.hosts))), AppPort: defaultAppPort,
			HealthPath: defaultHealthPath, HealthInterval: Duration(defaultHealthInterval),
			HealthTimeout: Duration(defaultHealthTimeout), ResponseTimeout: Duration(defaultResponseTimeout),
		}
		setIf(&spec.Proxy.PathPrefix, p.pathPrefix)
		setIf(&spec.Proxy.SSL, p.ssl)
		setIf(&spec.Proxy.AppPort, p.appPort)
		setIf(&spec.Proxy.HealthPath, p.healthPath)
		setIf(&spec.Proxy.HealthInterval, p.healthInterval)
		setIf(&spec.Proxy.HealthTimeout, p.healthTimeout)
		setIf(&spec.Proxy.ResponseTimeout, p.responseTimeout)
		if spec.Proxy.SSL && len(spec.Proxy.Hosts) == 0 {
			at := p.node
			if at == nil {
				at = r.node
			}
			d.errf(at, "role %s: ssl needs a host name for its certificate: add proxy.host", r.name)
			return nil, false
		}
		if len(spec.Proxy.Hosts) == 0 {
			spec.Proxy.Hosts = nil
		}
	}
	for _, v := range spec.Volumes {
		if !v.ReadOnly && !proxied {
			spec.Stateful = true
		}
	}
	spec.StopTimeout = r.stop
	if spec.StopTimeout == 0 {
		spec.StopTimeout = s.stop
	}
	if spec.StopTimeout == 0 {
		spec.StopTimeout = Duration(defaultProxyStopTimeout)
		if !proxied {
			spec.StopTimeout = s.drain
		}
	}
	if len(spec.Cmd) == 0 {
		spec.Cmd = nil
	}
	if h := r.health; h.set {
		// options health-* over the service's healthcheck, as docker run's
		// flags over the image's HEALTHCHECK.
		if h.cmd != nil {
			spec.Health.Cmd = slices.Clone(h.cmd)
		}
		setIf(&spec.Health.Interval, nonZero(h.interval))
		setIf(&spec.Health.Timeout, nonZero(h.timeout))
		setIf(&spec.Health.StartPeriod, nonZero(h.startPeriod))
		setIf(&spec.Health.Retries, nonZero(h.retries))
		if len(spec.Health.Cmd) == 0 {
			d.errf(h.node, "role %s: health options need health-cmd (e.g. health-cmd: \"pg_isready -U app\")", r.name)
			return nil, false
		}
		if spec.Health.Interval == 0 {
			spec.Health.Interval = Duration(defaultHealthCmdInterval)
		}
		if spec.Health.Timeout == 0 {
			spec.Health.Timeout = Duration(defaultHealthCmdTimeout)
		}
		if spec.Health.Retries == 0 {
			spec.Health.Retries = defaultHealthCmdRetries
		}
	}
	if proxied && (spec.Options.Network == "host" || spec.Options.Network == "none") {
		d.errf(r.node, "role %s: options.network %s leaves bosun's network, so the proxy cannot reach it: remove network, or set proxy: false", r.name, spec.Options.Network)
		return nil, false
	}
	for _, dg := range spec.Dangers() {
		if !slices.Contains(s.allowDangerous, dg.Kind) {
			at := r.node
			if n := r.health.keys[dg.option]; n != nil {
				at = d.deref(n)
			}
			d.errf(at, "role %s: %s is dangerous: %s. To run it anyway, add %q to x-bosun.allow_dangerous of this service; every plan will mark it", r.name, dg.Setting, dg.Why, dg.Kind)
		}
	}
	return spec, proxied
}

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func mergeLogging(root, role *Logging) *Logging {
	if root == nil && role == nil {
		return &Logging{Options: map[string]string{"max-size": defaultLogMaxSize}}
	}
	out := &Logging{}
	for _, l := range []*Logging{root, role} {
		if l == nil {
			continue
		}
		if l.Driver != "" {
			out.Driver = l.Driver
		}
		if len(l.Options) > 0 && out.Options == nil {
			out.Options = map[string]string{}
		}
		maps.Copy(out.Options, l.Options)
	}
	return out
}

// fillSecrets sets spec.Secrets from the secret source. It reports whether
// any hash was taken from the applied state (a secret not available), which
// makes the spec specific to this target.
func (l *loader) fillSecrets(s *svcDef, t Target, spec *Spec, secrets []secretDef) bool {
	if len(secrets) == 0 {
		return false
	}
	fromApplied := false
	spec.Secrets = make(map[string]SecretRef, len(secrets))
	for _, sd := range secrets {
		if _, clash := spec.Env[sd.env]; clash {
			s.d.errf(sd.node, "%s is both a clear and a secret variable: keep one", sd.env)
			continue
		}
		var applied SecretRef
		if a := l.applied[t]; a != nil {
			applied = a.Spec.Secrets[sd.env]
		}
		ref, fa, ok := l.secretRef(s, sd.name, sd.node, applied)
		if !ok {
			continue
		}
		fromApplied = fromApplied || fa
		spec.Secrets[sd.env] = ref
	}
	if len(spec.Secrets) == 0 {
		spec.Secrets = nil
	}
	return fromApplied
}

// secretRef is the reference to secret name with the keyed hash of its
// value. A secret the source cannot resolve is an error when the plan is
// for apply (ok false); otherwise it keeps applied's hash when applied
// names the same secret (fromApplied), and the plan warns once.
func (l *loader) secretRef(s *svcDef, name string, node *yaml.Node, applied SecretRef) (ref SecretRef, fromApplied, ok bool) {
	hash, found := l.secretHashes[name]
	if !found && l.cfg.Secrets != nil {
		if v, has := l.cfg.Secrets.LookupSecret(name); has {
			hash = hashSecret(l.cfg.SecretKey, v)
			l.secretHashes[name] = hash
			found = true
		}
	}
	if !found {
		if l.cfg.RequireSecrets {
			s.d.errf(node, "secret %s is not set: provide it in bosun's environment or a secrets file", name)
			return SecretRef{}, false, false
		}
		fromApplied = true
		if applied.Name == name {
			hash = applied.Hash
		}
		key := s.name + "\x00" + name
		if !l.warned[key] {
			l.warned[key] = true
			e := s.d.at(node, fmt.Sprintf("secret %s of service %s is not available to this plan: a change of its value cannot be seen", name, s.name))
			l.warnings = append(l.warnings, e.Error())
		}
	}
	return SecretRef{Name: name, Hash: hash}, fromApplied, true
}

// fillCertificate sets the hashes of a custom TLS certificate's secrets
// (proxy.ssl.certificate_pem and private_key_pem) on spec, whose Proxy it
// replaces by a copy (the base spec's is shared). It reports whether a hash
// was taken from the applied state.
func (l *loader) fillCertificate(s *svcDef, t Target, spec *Spec, c *certDef) bool {
	var applied *ProxyCertificate
	if a := l.applied[t]; a != nil && a.Spec.Proxy != nil {
		applied = a.Spec.Proxy.Certificate
	}
	if applied == nil {
		applied = &ProxyCertificate{}
	}
	cert, fa1, ok1 := l.secretRef(s, c.cert, c.certNode, applied.CertificatePEM)
	key, fa2, ok2 := l.secretRef(s, c.key, c.keyNode, applied.PrivateKeyPEM)
	p := *spec.Proxy
	if ok1 && ok2 {
		p.Certificate = &ProxyCertificate{CertificatePEM: cert, PrivateKeyPEM: key}
	}
	spec.Proxy = &p
	return fa1 || fa2
}

// resolvedHost is one host a role runs on.
type resolvedHost struct {
	name string
	host Host
	tags []string
	node *yaml.Node
}

// resolveHosts turns a role's host references into hosts: inventory names,
// tag:NAME selectors, or raw addresses. Duplicates are dropped.
func (l *loader) resolveHosts(s *svcDef, r *roleDef) []resolvedHost {
	d := s.d
	var out []resolvedHost
	seen := map[string]int{}
	add := func(h resolvedHost) {
		if i, ok := seen[h.name]; ok {
			out[i].tags = append(out[i].tags, h.tags...)
			return
		}
		seen[h.name] = len(out)
		out = append(out, h)
	}
	for _, ref := range r.hosts {
		if tag, ok := strings.CutPrefix(ref.value, "tag:"); ok {
			var matched int
			for _, name := range l.fleet.names {
				srv := l.fleet.servers[name]
				if slices.Contains(srv.tags, tag) {
					matched++
					add(l.inventoryHost(s, srv, ref))
				}
			}
			if matched == 0 && !l.fleet.unusable {
				d.errf(ref.node, "role %s: no server in fleet.yml has tag %q%s: tag a server or fix the selector", r.name, tag, didYouMean(tag, l.allTags()))
			}
			continue
		}
		if srv := l.fleet.servers[ref.value]; srv != nil {
			add(l.inventoryHost(s, srv, ref))
			continue
		}
		if strings.ContainsAny(ref.value, ".:") && checkAddress(ref.value) == "" {
			h := Host{Name: ref.value, Address: ref.value, User: firstNonEmpty(s.ssh.user, l.fleet.ssh.user, defaultSSHUser),
				Port: firstNonZero(s.ssh.port, l.fleet.ssh.port, defaultSSHPort), Jump: firstNonEmpty(s.ssh.jump, l.fleet.ssh.jump)}
			add(resolvedHost{name: ref.value, host: h, tags: ref.tags, node: ref.node})
			continue
		}
		if l.fleet.unusable || l.fleet.broken[ref.value] {
			continue // fleet.yml's own error says what to fix
		}
		d.errf(ref.node, "role %s: unknown host %q%s: add it to fleet.yml servers, or write its IP address or full DNS name, or tag:NAME", r.name, ref.value, didYouMean(ref.value, l.fleet.names))
	}
	return out
}

func (l *loader) allTags() []string {
	set := map[string]bool{}
	for _, s := range l.fleet.servers {
		for _, t := range s.tags {
			set[t] = true
		}
	}
	return mapKeys(set)
}

func (l *loader) inventoryHost(s *svcDef, srv *server, ref hostRef) resolvedHost {
	h := Host{Name: srv.name, Address: srv.address,
		User: firstNonEmpty(srv.user, s.ssh.user, l.fleet.ssh.user, defaultSSHUser),
		Port: firstNonZero(srv.port, s.ssh.port, l.fleet.ssh.port, defaultSSHPort),
		Jump: firstNonEmpty(s.ssh.jump, l.fleet.ssh.jump)}
	tags := append(slices.Clone(srv.tags), ref.tags...)
	return resolvedHost{name: srv.name, host: h, tags: tags, node: ref.node}
}

// registerHost records a host's connection details; two services that
// reach one host differently are an error.
func (l *loader) registerHost(s *svcDef, h resolvedHost, ds *desiredState, owner map[string]string) bool {
	prev, ok := ds.hosts[h.name]
	if !ok {
		ds.hosts[h.name] = h.host
		owner[h.name] = s.name
		return true
	}
	if prev == h.host || owner[h.name] == s.name {
		return true
	}
	at := s.sshNode
	if at == nil {
		at = h.node
	}
	s.d.errf(at, "host %s is reached as %s@%s:%d%s by service %s but as %s@%s:%d%s here: make the ssh settings agree (set them on the server in fleet.yml)",
		h.name, prev.User, prev.Address, prev.Port, jumpSuffix(prev.Jump), owner[h.name], h.host.User, h.host.Address, h.host.Port, jumpSuffix(h.host.Jump))
	return false
}

func jumpSuffix(j string) string {
	if j == "" {
		return ""
	}
	return " via " + j
}

// claimProxy records which role routes each proxy host and path; a second
// claim is an error. The catch-all route (no host) is claimed per server.
func (l *loader) claimProxy(s *svcDef, r *roleDef, p *Proxy, hosts []resolvedHost, claims map[string]proxyClaim) {
	me := proxyClaim{service: s.name, role: r.name}
	check := func(key string, what func() string, node *yaml.Node) {
		prev, ok := claims[key]
		if !ok {
			claims[key] = proxyClaim{service: me.service, role: me.role, d: s.d, node: node}
			return
		}
		if prev.service == me.service && prev.role == me.role {
			return
		}
		at := strings.TrimSuffix(prev.d.at(prev.node, "").Error(), ": ")
		s.d.errf(node, "%s is already routed to %s/%s (%s): give each service its own proxy host or path_prefix", what(), prev.service, prev.role, at)
	}
	node := r.node
	if len(p.Hosts) == 0 {
		for _, h := range hosts {
			check("\x00"+h.name+"\x00"+p.PathPrefix, func() string {
				return fmt.Sprintf("the catch-all route%s on %s", pathSuffix(p.PathPrefix), h.name)
			}, node)
		}
		return
	}
	for _, h := range p.Hosts {
		check(h+"\x00"+p.PathPrefix, func() string { return fmt.Sprintf("proxy host %s%s", h, pathSuffix(p.PathPrefix)) }, node)
	}
}

func pathSuffix(p string) string {
	if p == "" {
		return ""
	}
	return " path " + p
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstNonZero(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}
