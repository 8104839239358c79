package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// svcDef is one service as its file says it, checked key by key but not yet
// resolved against the inventory.
type svcDef struct {
	d         *doc
	name      string
	nameNode  *yaml.Node
	image     string
	imageNode *yaml.Node
	// imageVersioned: the image names a tag or digest.
	imageVersioned  bool
	registry        *Registry // the file's own registry block
	primaryRole     string
	primaryNode     *yaml.Node
	roles           []*roleDef // in file order
	env             envDef
	volumes         []Volume
	volNodes        []*yaml.Node
	labels          map[string]string
	logging         *Logging
	proxy           proxyDef // root proxy block
	health          Health
	bootLimit       string // "" | "3" | "25%"
	bootWait        Duration
	retain          int
	readiness       Duration
	deploy          Duration
	drain           Duration
	stop            Duration
	ssh             sshSettings
	sshNode         *yaml.Node
	canary          *Canary
	standby         Standby
	allowDangerous  []string // x-bosun.allow_dangerous
	allowEmptyRoles bool
	template        string // templates/NAME.yml.tmpl when rendered
	accessory       bool
	accessories     *yaml.Node
}

type roleDef struct {
	name    string
	node    *yaml.Node
	hosts   []hostRef
	cmd     []string
	env     envDef
	options Options
	health  optHealth // options health-*
	labels  map[string]string
	logging *Logging
	proxy   proxyDef
	proxyOn *bool // role proxy: true/false/map (map means true); nil: default
	stop    Duration
}

type hostRef struct {
	value string
	tags  []string
	node  *yaml.Node
}

type envDef struct {
	clear   map[string]string
	secrets []secretDef
	tags    map[string]*envDef // root only
}

type secretDef struct {
	env, name string // container variable, secret name
	node      *yaml.Node
}

// certDef is a custom TLS certificate, Kamal 2's proxy.ssl map: the names
// of the secrets holding the PEM certificate (chain) and private key.
type certDef struct {
	cert, key         string
	certNode, keyNode *yaml.Node
}

// proxyDef holds the proxy keys as written; nil pointers are unset, so that
// a role's block can be merged over the root's.
type proxyDef struct {
	set             bool
	node            *yaml.Node
	hosts           []string
	hostNodes       []*yaml.Node
	pathPrefix      *string
	ssl             *bool
	cert            *certDef // ssl: {certificate_pem, private_key_pem}
	appPort         *int
	healthPath      *string
	healthInterval  *Duration
	healthTimeout   *Duration
	responseTimeout *Duration
}

var serviceKeys = []string{
	"service", "image", "servers", "registry", "env", "proxy", "volumes", "labels",
	"logging", "healthcheck", "boot", "retain_containers", "readiness_delay",
	"deploy_timeout", "drain_timeout", "stop_timeout", "primary_role", "accessories",
	"ssh", "x-bosun", "require_destination", "allow_empty_roles", "traefik",
}

const buildOnly = "a Kamal build or CLI setting; bosun deploys images that are already built"

var serviceIgnored = map[string]string{
	"builder":           buildOnly,
	"hooks_path":        "bosun runs no local hooks",
	"hooks_output":      "bosun runs no local hooks",
	"aliases":           "a Kamal CLI setting",
	"asset_path":        "bosun does not bridge assets between versions",
	"error_pages_path":  "bosun's proxy serves its own error pages",
	"secrets_path":      "bosun reads secrets from its environment and secrets files",
	"minimum_version":   "a Kamal CLI setting",
	"sshkit":            "bosun manages its own SSH connections",
	"output":            "bosun logs through its daemon",
	"run_directory":     "bosun keeps no files on servers",
	"allow_empty_roles": "bosun requires hosts for every role",
}

var roleKeys = []string{"hosts", "cmd", "env", "options", "labels", "logging", "proxy", "stop_timeout"}

var roleIgnored = map[string]string{"asset_path": "bosun does not bridge assets between versions"}

var proxyKeys = []string{"host", "hosts", "ssl", "app_port", "healthcheck", "response_timeout", "path_prefix", "path_prefixes"}

var proxyIgnored = map[string]string{
	"ssl_redirect":      "bosun's proxy always redirects HTTP to HTTPS for ssl hosts",
	"forward_headers":   "bosun's proxy sets X-Forwarded-* itself",
	"buffering":         "bosun's proxy does not buffer",
	"logging":           "bosun's proxy logs through its own logger",
	"run":               "bosun runs its own proxy container",
	"strip_path_prefix": "bosun's proxy forwards the path unchanged",
}

// parseService reads a (rendered) service file.
func parseService(d *doc, root *yaml.Node) *svcDef {
	s := &svcDef{d: d}
	fs, ok := d.fields(root, "service file", keys{known: serviceKeys, ignored: serviceIgnored, allowX: true})
	if !ok {
		return nil
	}
	if n, ok := fs["service"]; ok {
		s.nameNode = d.deref(n)
		if v, ok := d.str(n, "service"); ok {
			if msg := checkName(v); msg != "" {
				d.errf(s.nameNode, "service: %s", msg)
			}
			// Keep an invalid name too, so that the rest of the file is
			// still checked; the commit is invalid and yields no plan.
			s.name = v
		}
	} else {
		d.errf(d.deref(root), "service is missing: add service: NAME (lowercase letters, digits, '-', '_')")
	}
	if n, ok := fs["image"]; ok {
		s.imageNode = d.deref(n)
		if v, ok := d.str(n, "image"); ok {
			if msg := checkImage(v); msg != "" {
				d.errf(s.imageNode, "image: %s", msg)
			} else {
				s.image, s.imageVersioned = v, imageHasVersion(v)
			}
		}
	}
	if n, ok := fs["registry"]; ok {
		s.registry = d.registry(n, "registry")
	}
	if _, ok := fs["image"]; !ok {
		if s.registry != nil && localRegistryPort(s.registry.Server) > 0 && s.name != "" {
			// Kamal's local registry: the image is named after the service.
			s.image, s.imageNode = s.name, d.deref(fs["registry"])
		} else {
			d.errf(d.deref(root), "image is missing: add image: with the reference to deploy (e.g. ghcr.io/acme/app:1.2.3)")
		}
	}
	if n, ok := fs["traefik"]; ok {
		d.kamal1f(d.deref(n), "traefik is Kamal 1's proxy: Kamal 2 and bosun run their own proxy. Remove traefik (and traefik.* labels) and route with proxy: {host: …, app_port: …, ssl: true}")
	}
	if n, ok := fs["allow_empty_roles"]; ok {
		s.allowEmptyRoles, _ = d.boolean(n, "allow_empty_roles")
	}
	if n, ok := fs["require_destination"]; ok {
		if b, ok := d.boolean(n, "require_destination"); ok && b && d.destination == "" {
			d.errf(d.deref(n), "this file needs a destination (require_destination: true): plan it with --destination NAME, or set destination: in the daemon config's repo entry")
		}
	}
	s.primaryRole = "web"
	if n, ok := fs["primary_role"]; ok {
		s.primaryNode = d.deref(n)
		if v, ok := d.str(n, "primary_role"); ok {
			s.primaryRole = v
		}
	}
	if n, ok := fs["env"]; ok {
		s.env = d.env(n, "env", true)
	}
	if n, ok := fs["volumes"]; ok {
		s.volumes, s.volNodes = d.volumes(n, "volumes")
	}
	if n, ok := fs["labels"]; ok {
		s.labels = d.labels(n, "labels")
	}
	if n, ok := fs["logging"]; ok {
		s.logging = d.logging(n, "logging")
	}
	if n, ok := fs["proxy"]; ok {
		s.proxy = d.proxy(n, "proxy")
	}
	if n, ok := fs["healthcheck"]; ok {
		s.health = d.health(n, "healthcheck")
	}
	if n, ok := fs["boot"]; ok {
		bf, _ := d.fields(n, "boot", keys{known: []string{"limit", "wait"}, ignored: map[string]string{"parallel_roles": "bosun boots the roles of a host one after another"}})
		if v, ok := bf["limit"]; ok {
			s.bootLimit = d.bootLimit(v)
		}
		if v, ok := bf["wait"]; ok {
			s.bootWait, _ = d.duration(v, "boot.wait", true)
		}
	}
	s.retain = DefaultRetainContainers
	if n, ok := fs["retain_containers"]; ok {
		if v, ok := d.integer(n, "retain_containers"); ok {
			if v < 1 {
				d.errf(d.deref(n), "retain_containers must be at least 1 (the rollback window), not %d", v)
			} else {
				s.retain = v
			}
		}
	}
	s.readiness, s.deploy, s.drain = Duration(defaultReadinessDelay), Duration(DefaultDeployTimeout), Duration(DefaultDrainTimeout)
	for key, dst := range map[string]*Duration{"readiness_delay": &s.readiness, "deploy_timeout": &s.deploy, "drain_timeout": &s.drain, "stop_timeout": &s.stop} {
		if n, ok := fs[key]; ok {
			if v, ok := d.duration(n, key, false); ok {
				*dst = v
			}
		}
	}
	if n, ok := fs["ssh"]; ok {
		s.sshNode = d.deref(n)
		s.ssh = d.ssh(n, "ssh")
	}
	s.standby = StandbyStopped
	if n, ok := fs["x-bosun"]; ok {
		s.canary, s.standby, s.allowDangerous = d.xBosun(n)
	}
	if n, ok := fs["servers"]; ok {
		s.roles = d.servers(n)
	} else if _, ok := fs["accessories"]; !ok {
		d.errf(d.deref(root), "servers is missing: add servers: with the hosts to run on (a list, or roles with hosts)")
	}
	if n, ok := fs["accessories"]; ok {
		s.accessories = n
	}
	return s
}

func (d *doc) xBosun(n *yaml.Node) (*Canary, Standby, []string) {
	xf, ok := d.fields(n, "x-bosun", keys{known: []string{"canary", "standby", "allow_dangerous"}})
	if !ok {
		return nil, StandbyStopped, nil
	}
	var allow []string
	if an, ok := xf["allow_dangerous"]; ok {
		allow = d.allowDangerous(an)
	}
	standby := StandbyStopped
	if sn, ok := xf["standby"]; ok {
		if v, ok := d.str(sn, "x-bosun.standby"); ok {
			switch Standby(v) {
			case StandbyStopped, StandbyPaused:
				standby = Standby(v)
			default:
				d.errf(d.deref(sn), "x-bosun.standby must be stopped or paused, not %q", v)
			}
		}
	}
	cn, ok := xf["canary"]
	if !ok || isNull(d.deref(cn)) {
		return nil, standby, allow
	}
	cf, ok := d.fields(cn, "x-bosun.canary", keys{known: []string{"hosts", "watch"}})
	if !ok {
		return nil, standby, allow
	}
	c := &Canary{Hosts: 1, Watch: Duration(defaultCanaryWatch)}
	if v, ok := cf["hosts"]; ok {
		if h, ok := d.integer(v, "x-bosun.canary.hosts"); ok {
			if h < 1 {
				d.errf(d.deref(v), "x-bosun.canary.hosts must be at least 1, not %d", h)
			}
			c.Hosts = h
		}
	}
	if v, ok := cf["watch"]; ok {
		c.Watch, _ = d.duration(v, "x-bosun.canary.watch", false)
	}
	return c, standby, allow
}

func (d *doc) bootLimit(n *yaml.Node) string {
	v, ok := d.str(n, "boot.limit")
	if !ok {
		return ""
	}
	num, pct := strings.CutSuffix(v, "%")
	i, err := strconv.Atoi(num)
	if err != nil || i < 1 || pct && i > 100 {
		d.errf(d.deref(n), "boot.limit must be a number of hosts (e.g. 2) or a percentage of them (e.g. \"25%%\"), not %q", v)
		return ""
	}
	return v
}

// servers reads servers: a list of hosts (role web) or a map of roles.
func (d *doc) servers(n *yaml.Node) []*roleDef {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.SequenceNode {
		return []*roleDef{{name: "web", node: n, hosts: d.hosts(n, "servers")}}
	}
	ps, ok := d.pairs(n, "servers")
	if !ok {
		return nil
	}
	var roles []*roleDef
	for _, p := range ps {
		r := &roleDef{name: p.key.Value, node: p.key}
		what := "servers." + r.name
		if msg := checkName(r.name); msg != "" {
			d.errf(p.key, "role name: %s", msg)
			continue
		}
		v := d.deref(p.val)
		if v != nil && v.Kind == yaml.SequenceNode {
			r.hosts = d.hosts(v, what)
			roles = append(roles, r)
			continue
		}
		fs, ok := d.fields(v, what, keys{known: roleKeys, ignored: roleIgnored})
		if !ok {
			continue
		}
		if h, ok := fs["hosts"]; ok {
			r.hosts = d.hosts(h, what+".hosts")
		}
		if c, ok := fs["cmd"]; ok {
			r.cmd = d.cmd(c, what+".cmd")
		}
		if e, ok := fs["env"]; ok {
			r.env = d.env(e, what+".env", false)
		}
		if o, ok := fs["options"]; ok {
			r.options, r.health = d.options(o, what+".options")
		}
		if l, ok := fs["labels"]; ok {
			r.labels = d.labels(l, what+".labels")
		}
		if l, ok := fs["logging"]; ok {
			r.logging = d.logging(l, what+".logging")
		}
		if st, ok := fs["stop_timeout"]; ok {
			r.stop, _ = d.duration(st, what+".stop_timeout", false)
		}
		if pn, ok := fs["proxy"]; ok {
			pv := d.deref(pn)
			if pv != nil && pv.Kind == yaml.ScalarNode && !isNull(pv) {
				if b, ok := d.boolean(pv, what+".proxy"); ok {
					r.proxyOn = &b
				}
			} else if !isNull(pv) {
				on := true
				r.proxyOn = &on
				r.proxy = d.proxy(pv, what+".proxy")
			}
		}
		roles = append(roles, r)
	}
	return roles
}

// hosts reads a host list: "host" items or Kamal's tagged {host: tag} /
// {host: [tags]} items.
func (d *doc) hosts(n *yaml.Node, what string) []hostRef {
	items, _ := d.list(n, what, false)
	var out []hostRef
	for _, it := range items {
		if it != nil && it.Kind == yaml.MappingNode {
			ps, _ := d.pairs(it, what+" item")
			for _, p := range ps {
				tags, nodes, _ := d.strList(p.val, what+"."+p.key.Value+" tags", true)
				for i, t := range tags {
					if msg := checkName(t); msg != "" {
						d.errf(nodes[i], "%s: tag %s", what, msg)
					}
				}
				out = append(out, hostRef{value: p.key.Value, tags: tags, node: p.key})
			}
			continue
		}
		if v, ok := d.str(it, what+" item"); ok {
			out = append(out, hostRef{value: v, node: it})
		}
	}
	return out
}

// cmd reads a command: a string split like a shell would (quotes, no
// expansion), or a list of arguments.
func (d *doc) cmd(n *yaml.Node, what string) []string {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.SequenceNode {
		args, _, _ := d.strList(n, what, false)
		return args
	}
	s, ok := d.str(n, what)
	if !ok {
		return nil
	}
	args, err := splitWords(s)
	if err != nil {
		d.errf(n, "%s: %v", what, err)
		return nil
	}
	if len(args) == 0 {
		d.errf(n, "%s is empty: remove it to run the image's own command", what)
	}
	return args
}

// splitWords splits s into words as a POSIX shell would, honouring single
// and double quotes and backslashes, without any expansion.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed single quote in %q: close it or write the command as a list", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed double quote in %q: close it or write the command as a list", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// env reads an env block: a plain map of clear values, or {clear, secret}
// (and at the root, tags).
func (d *doc) env(n *yaml.Node, what string, root bool) envDef {
	e := envDef{clear: map[string]string{}}
	ps, ok := d.pairs(n, what)
	if !ok {
		return e
	}
	structured := false
	for _, p := range ps {
		if k := p.key.Value; k == "clear" || k == "secret" || root && k == "tags" {
			structured = true
		}
	}
	if !structured {
		d.clearEnv(ps, what, e.clear)
		return e
	}
	known := []string{"clear", "secret"}
	if root {
		known = append(known, "tags")
	}
	fs, _ := d.fields(n, what, keys{known: known})
	if c, ok := fs["clear"]; ok {
		cps, _ := d.pairs(c, what+".clear")
		d.clearEnv(cps, what+".clear", e.clear)
	}
	if s, ok := fs["secret"]; ok {
		names, nodes, _ := d.strList(s, what+".secret", false)
		for i, item := range names {
			envName, secret, alias := strings.Cut(item, ":")
			if !alias {
				secret = envName
			}
			if msg := checkContainerEnvName(envName); msg != "" {
				d.errf(nodes[i], "%s.secret: %s", what, msg)
				continue
			}
			if msg := checkEnvName(secret); msg != "" {
				d.errf(nodes[i], "%s.secret: secret name %s (write NAME or NAME:SECRET_NAME)", what, msg)
				continue
			}
			if _, dup := e.clear[envName]; dup {
				d.errf(nodes[i], "%s: %s is both a clear and a secret variable: keep one", what, envName)
				continue
			}
			e.secrets = append(e.secrets, secretDef{env: envName, name: secret, node: nodes[i]})
		}
	}
	if t, ok := fs["tags"]; ok {
		tps, _ := d.pairs(t, what+".tags")
		e.tags = map[string]*envDef{}
		for _, tp := range tps {
			if msg := checkName(tp.key.Value); msg != "" {
				d.errf(tp.key, "%s.tags: tag %s", what, msg)
				continue
			}
			te := d.env(tp.val, what+".tags."+tp.key.Value, false)
			e.tags[tp.key.Value] = &te
		}
	}
	return e
}

func (d *doc) clearEnv(ps []field, what string, dst map[string]string) {
	for _, p := range ps {
		k := p.key.Value
		if msg := checkContainerEnvName(k); msg != "" {
			d.errf(p.key, "%s: %s", what, msg)
			continue
		}
		v := d.deref(p.val)
		if isNull(v) {
			dst[k] = ""
			continue
		}
		s, ok := d.str(v, what+"."+k)
		if !ok {
			continue
		}
		dst[k] = s
	}
}

func (d *doc) volumes(n *yaml.Node, what string) ([]Volume, []*yaml.Node) {
	items, nodes, _ := d.strList(n, what, false)
	var out []Volume
	var outNodes []*yaml.Node
	targets := map[string]bool{}
	for i, s := range items {
		v, msg := parseVolume(s)
		if msg != "" {
			d.errf(nodes[i], "%s: %s", what, msg)
			continue
		}
		if targets[v.Target] {
			d.errf(nodes[i], "%s: %s is mounted twice: keep one", what, v.Target)
			continue
		}
		targets[v.Target] = true
		out = append(out, v)
		outNodes = append(outNodes, nodes[i])
	}
	return out, outNodes
}

func (d *doc) labels(n *yaml.Node, what string) map[string]string {
	ps, _ := d.pairs(n, what)
	out := map[string]string{}
	for _, p := range ps {
		if msg := checkLabelKey(p.key.Value); msg != "" {
			d.errf(p.key, "%s: %s", what, msg)
			continue
		}
		if v, ok := d.str(p.val, what+"."+p.key.Value); ok {
			out[p.key.Value] = v
		}
	}
	return out
}

func (d *doc) logging(n *yaml.Node, what string) *Logging {
	fs, ok := d.fields(n, what, keys{known: []string{"driver", "options"}})
	if !ok {
		return nil
	}
	l := &Logging{}
	if v, ok := fs["driver"]; ok {
		if s, ok := d.str(v, what+".driver"); ok {
			if msg := checkName(s); msg != "" {
				d.errf(d.deref(v), "%s.driver: %s", what, msg)
			}
			l.Driver = s
		}
	}
	if v, ok := fs["options"]; ok {
		ps, _ := d.pairs(v, what+".options")
		l.Options = map[string]string{}
		for _, p := range ps {
			if !labelKeyRE.MatchString(p.key.Value) {
				d.errf(p.key, "%s.options: %q is not a log option name", what, p.key.Value)
				continue
			}
			if s, ok := d.str(p.val, what+".options."+p.key.Value); ok {
				l.Options[p.key.Value] = s
			}
		}
	}
	return l
}

func (d *doc) proxy(n *yaml.Node, what string) proxyDef {
	p := proxyDef{set: true, node: d.deref(n)}
	fs, ok := d.fields(n, what, keys{known: proxyKeys, ignored: proxyIgnored})
	if !ok {
		return p
	}
	_, hasHost := fs["host"]
	_, hasHosts := fs["hosts"]
	if hasHost && hasHosts {
		d.errf(d.deref(fs["hosts"]), "%s: set host or hosts, not both", what)
	}
	addHost := func(h string, node *yaml.Node) {
		h = strings.TrimSpace(h)
		if msg := checkHostname(h, true); msg != "" {
			d.errf(node, "%s: %s", what, msg)
			return
		}
		p.hosts = append(p.hosts, h)
		p.hostNodes = append(p.hostNodes, node)
	}
	if v, ok := fs["host"]; ok {
		if s, ok := d.str(v, what+".host"); ok {
			for _, h := range strings.Split(s, ",") {
				addHost(h, d.deref(v))
			}
		}
	}
	if v, ok := fs["hosts"]; ok {
		hs, nodes, _ := d.strList(v, what+".hosts", false)
		for i, h := range hs {
			addHost(h, nodes[i])
		}
	}
	prefix := func(s string, node *yaml.Node) {
		if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\n,?#") {
			d.errf(node, "%s: path prefix %q must start with / and hold no spaces (e.g. /api)", what, s)
			return
		}
		if p.pathPrefix != nil {
			d.errf(node, "%s: bosun routes one path prefix per role: keep one", what)
			return
		}
		p.pathPrefix = &s
	}
	if v, ok := fs["path_prefix"]; ok {
		if s, ok := d.str(v, what+".path_prefix"); ok {
			for _, x := range strings.Split(s, ",") {
				prefix(strings.TrimSpace(x), d.deref(v))
			}
		}
	}
	if v, ok := fs["path_prefixes"]; ok {
		ps, nodes, _ := d.strList(v, what+".path_prefixes", false)
		for i, x := range ps {
			prefix(x, nodes[i])
		}
	}
	if v, ok := fs["ssl"]; ok {
		vn := d.deref(v)
		if vn != nil && vn.Kind == yaml.MappingNode {
			if c := d.certificate(v, what+".ssl"); c != nil {
				t := true
				p.ssl, p.cert = &t, c
			}
		} else if b, ok := d.boolean(v, what+".ssl"); ok {
			p.ssl = &b
		}
	}
	if v, ok := fs["app_port"]; ok {
		if port, ok := d.integer(v, what+".app_port"); ok {
			if msg := checkPort(what+".app_port", port); msg != "" {
				d.errf(d.deref(v), "%s", msg)
			} else {
				p.appPort = &port
			}
		}
	}
	if v, ok := fs["response_timeout"]; ok {
		if t, ok := d.duration(v, what+".response_timeout", false); ok {
			p.responseTimeout = &t
		}
	}
	if v, ok := fs["healthcheck"]; ok {
		hf, _ := d.fields(v, what+".healthcheck", keys{known: []string{"path", "interval", "timeout"}})
		if hv, ok := hf["path"]; ok {
			if s, ok := d.str(hv, what+".healthcheck.path"); ok {
				if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\n") {
					d.errf(d.deref(hv), "%s.healthcheck.path %q must start with / and hold no spaces (e.g. /up)", what, s)
				} else {
					p.healthPath = &s
				}
			}
		}
		if hv, ok := hf["interval"]; ok {
			if t, ok := d.duration(hv, what+".healthcheck.interval", false); ok {
				p.healthInterval = &t
			}
		}
		if hv, ok := hf["timeout"]; ok {
			if t, ok := d.duration(hv, what+".healthcheck.timeout", false); ok {
				p.healthTimeout = &t
			}
		}
	}
	return p
}

// certificate reads proxy.ssl's map form: {certificate_pem: NAME,
// private_key_pem: NAME}, each the name of a secret (Kamal 2 reads them from
// .kamal/secrets; bosun from its secret sources).
func (d *doc) certificate(n *yaml.Node, what string) *certDef {
	fs, ok := d.fields(n, what, keys{known: []string{"certificate_pem", "private_key_pem"}})
	if !ok {
		return nil
	}
	c := &certDef{}
	for _, k := range []struct {
		key  string
		name *string
		node **yaml.Node
	}{{"certificate_pem", &c.cert, &c.certNode}, {"private_key_pem", &c.key, &c.keyNode}} {
		v, ok := fs[k.key]
		if !ok {
			d.errf(d.deref(n), "%s: a custom certificate needs both certificate_pem and private_key_pem, each the name of a secret (e.g. certificate_pem: CERTIFICATE_PEM)", what)
			return nil
		}
		s, ok := d.str(v, what+"."+k.key)
		if !ok {
			return nil
		}
		if msg := checkEnvName(s); msg != "" {
			d.errf(d.deref(v), "%s.%s must name a secret holding the PEM, never hold it: secret name %s", what, k.key, msg)
			return nil
		}
		*k.name, *k.node = s, d.deref(v)
	}
	return c
}

// merge returns p with the fields set in over replacing its own.
func (p proxyDef) merge(over proxyDef) proxyDef {
	out := p
	if !over.set {
		return out
	}
	out.set = true
	out.node = over.node
	if over.hosts != nil {
		out.hosts, out.hostNodes = over.hosts, over.hostNodes
	}
	if over.pathPrefix != nil {
		out.pathPrefix = over.pathPrefix
	}
	if over.ssl != nil {
		out.ssl, out.cert = over.ssl, over.cert
	}
	if over.appPort != nil {
		out.appPort = over.appPort
	}
	if over.healthPath != nil {
		out.healthPath = over.healthPath
	}
	if over.healthInterval != nil {
		out.healthInterval = over.healthInterval
	}
	if over.healthTimeout != nil {
		out.healthTimeout = over.healthTimeout
	}
	if over.responseTimeout != nil {
		out.responseTimeout = over.responseTimeout
	}
	return out
}

func (d *doc) health(n *yaml.Node, what string) Health {
	var h Health
	fs, ok := d.fields(n, what, keys{known: []string{"cmd", "interval", "timeout", "retries", "path", "port", "max_attempts", "cord", "log_lines"}})
	if !ok {
		return h
	}
	for _, k := range []string{"path", "port", "max_attempts", "cord", "log_lines"} {
		if v, ok := fs[k]; ok {
			d.kamal1f(d.deref(v), "%s.%s is Kamal 1's HTTP health check: in Kamal 2 and bosun it is proxy.healthcheck (path, interval, timeout) and proxy.app_port; move it there", what, k)
		}
	}
	if v, ok := fs["cmd"]; ok {
		vn := d.deref(v)
		if vn != nil && vn.Kind == yaml.SequenceNode {
			args, _, _ := d.strList(vn, what+".cmd", false)
			if len(args) == 0 {
				d.errf(vn, "%s.cmd is empty", what)
			} else if args[0] == "CMD" || args[0] == "CMD-SHELL" {
				h.Cmd = args
			} else {
				h.Cmd = append([]string{"CMD"}, args...)
			}
		} else if s, ok := d.str(v, what+".cmd"); ok {
			if strings.TrimSpace(s) == "" {
				d.errf(vn, "%s.cmd is empty", what)
			} else {
				h.Cmd = []string{"CMD-SHELL", s}
			}
		}
	}
	if v, ok := fs["interval"]; ok {
		h.Interval, _ = d.duration(v, what+".interval", false)
	}
	if v, ok := fs["timeout"]; ok {
		h.Timeout, _ = d.duration(v, what+".timeout", false)
	}
	if v, ok := fs["retries"]; ok {
		if r, ok := d.integer(v, what+".retries"); ok {
			if r < 1 {
				d.errf(d.deref(v), "%s.retries must be at least 1, not %d", what, r)
			}
			h.Retries = r
		}
	}
	if len(h.Cmd) > 0 {
		if h.Interval == 0 {
			h.Interval = Duration(defaultHealthCmdInterval)
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(defaultHealthCmdTimeout)
		}
		if h.Retries == 0 {
			h.Retries = defaultHealthCmdRetries
		}
	} else if h.Interval != 0 || h.Timeout != 0 || h.Retries != 0 {
		d.errf(d.deref(n), "%s has settings but no cmd: add cmd (e.g. \"pg_isready -U app\")", what)
	}
	return h
}

// roleNames returns the role names, primary first, then sorted.
func (s *svcDef) roleNames() []string {
	var out []string
	for _, r := range s.roles {
		if r.name != s.primaryRole {
			out = append(out, r.name)
		}
	}
	slices.Sort(out)
	return append([]string{s.primaryRole}, out...)
}
