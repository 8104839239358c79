package planner

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fleet is fleet.yml: the server inventory and the defaults.
type fleet struct {
	servers  map[string]*server
	names    []string // sorted
	registry *Registry
	ssh      sshSettings
	// broken names servers whose entry is invalid (already reported), or
	// is nil-safe "all" when fleet.yml could not be read: references to
	// them are not reported again.
	broken   map[string]bool
	unusable bool
}

type server struct {
	name, address, user string
	port                int
	tags                []string
}

// sshSettings are connection defaults; zero fields are unset.
type sshSettings struct {
	user string
	port int
	jump string
}

var sshIgnored = map[string]string{
	"proxy_command": "bosun connects with its own SSH client; use proxy (a jump host)",
	"log_level":     "bosun logs through its daemon's logger",
	"keys_only":     "the SSH key comes from the daemon config",
	"keys":          "the SSH key comes from the daemon config",
	"key_data":      "the SSH key comes from the daemon config",
	"config":        "bosun does not read ~/.ssh/config",
	"forward_agent": "bosun never forwards an agent",
}

const fleetFile = "fleet.yml"

func loadFleet(fsys fs.FS, r *report) *fleet {
	f := &fleet{servers: map[string]*server{}, broken: map[string]bool{}, unusable: true}
	data, err := fs.ReadFile(fsys, fleetFile)
	if errors.Is(err, fs.ErrNotExist) {
		// fleet.yml is optional when every host is an address or a DNS
		// name, as in a Kamal project.
		f.unusable = false
		return f
	}
	if err != nil {
		r.errs = append(r.errs, &ConfigError{File: fleetFile, Msg: fmt.Sprintf("cannot read fleet.yml: %v", err)})
		return f
	}
	d := newDoc(fleetFile, r)
	root := d.parse(data)
	if root == nil {
		return f
	}
	top, ok := d.fields(root, "fleet.yml", keys{known: []string{"servers", "defaults"}, allowX: true})
	if !ok {
		return f
	}
	f.unusable = false
	if n, ok := top["defaults"]; ok {
		def, _ := d.fields(n, "defaults", keys{known: []string{"registry", "ssh"}})
		if rn, ok := def["registry"]; ok {
			f.registry = d.registry(rn, "defaults.registry")
		}
		if sn, ok := def["ssh"]; ok {
			f.ssh = d.ssh(sn, "defaults.ssh")
		}
	}
	if n, ok := top["servers"]; ok {
		ps, _ := d.pairs(n, "servers")
		for _, p := range ps {
			if s := d.server(p.key, p.val); s != nil {
				f.servers[s.name] = s
				f.names = append(f.names, s.name)
			} else {
				f.broken[p.key.Value] = true
			}
		}
	}
	slices.Sort(f.names)
	return f
}

// parse decodes YAML text into its root node, reporting a syntax error.
func (d *doc) parse(data []byte) *yaml.Node {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line := 0
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if num, tail, ok := strings.Cut(rest, ":"); ok {
				if l, err := strconv.Atoi(num); err == nil {
					line, msg = l, strings.TrimSpace(tail)
				}
			}
		}
		d.errf(&yaml.Node{Line: line, Column: 1}, "not valid YAML: %s", msg)
		return nil
	}
	if len(root.Content) == 0 {
		d.errf(&yaml.Node{Line: 1, Column: 1}, "the file is empty")
		return nil
	}
	// The budget bounds alias expansion, not size: a big file without
	// aliases gets a walk of each of its own nodes on top.
	d.budget += countNodes(&root)
	return &root
}

// countNodes counts the nodes of a YAML tree without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (d *doc) server(k, v *yaml.Node) *server {
	s := &server{name: k.Value}
	if msg := checkName(s.name); msg != "" {
		d.errf(k, "server name: %s", msg)
		return nil
	}
	v = d.deref(v)
	var hostNode *yaml.Node
	if v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		hostNode = v
	} else {
		fs, ok := d.fields(v, "servers."+s.name, keys{known: []string{"host", "user", "port", "tags"}})
		if !ok {
			return nil
		}
		hostNode = fs["host"]
		if n, ok := fs["user"]; ok {
			s.user, _ = d.str(n, "servers."+s.name+".user")
			if msg := checkSSHUser(s.user); s.user != "" && msg != "" {
				d.errf(d.deref(n), "servers.%s.user: %s", s.name, msg)
			}
		}
		if n, ok := fs["port"]; ok {
			var ok bool
			if s.port, ok = d.integer(n, "servers."+s.name+".port"); !ok {
				return nil
			}
			if msg := checkPort("servers."+s.name+".port", s.port); msg != "" {
				d.errf(d.deref(n), "%s", msg)
				return nil
			}
		}
		if n, ok := fs["tags"]; ok {
			tags, nodes, _ := d.strList(n, "servers."+s.name+".tags", true)
			for i, t := range tags {
				if msg := checkName(t); msg != "" {
					d.errf(nodes[i], "servers.%s.tags: %s", s.name, msg)
					continue
				}
				s.tags = append(s.tags, t)
			}
		}
	}
	if hostNode == nil {
		d.errf(k, "servers.%s has no host: add host: with its IP address or DNS name", s.name)
		return nil
	}
	host, ok := d.str(hostNode, "servers."+s.name+".host")
	if !ok {
		return nil
	}
	if msg := checkAddress(host); msg != "" {
		d.errf(d.deref(hostNode), "servers.%s.host: %s", s.name, msg)
		return nil
	}
	s.address = host
	return s
}

func (d *doc) ssh(n *yaml.Node, what string) sshSettings {
	var s sshSettings
	fs, ok := d.fields(n, what, keys{known: []string{"user", "port", "proxy"}, ignored: sshIgnored})
	if !ok {
		return s
	}
	if v, ok := fs["user"]; ok {
		s.user, _ = d.str(v, what+".user")
		if msg := checkSSHUser(s.user); s.user != "" && msg != "" {
			d.errf(d.deref(v), "%s.user: %s", what, msg)
			s.user = ""
		}
	}
	if v, ok := fs["port"]; ok {
		s.port, _ = d.integer(v, what+".port")
		if msg := checkPort(what+".port", s.port); msg != "" {
			d.errf(d.deref(v), "%s", msg)
			s.port = 0
		}
	}
	if v, ok := fs["proxy"]; ok {
		s.jump, _ = d.str(v, what+".proxy")
		if msg := checkJump(s.jump); msg != "" {
			d.errf(d.deref(v), "%s.proxy: %s", what, msg)
			s.jump = ""
		}
	}
	return s
}

// sshUserRE is a login name: what useradd accepts (letters, digits, '_',
// '.', '-', a trailing '$'), not starting with '-'. Unlike Docker's
// --user there is no ":GROUP" (deploy:staff is no SSH user).
var sshUserRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$`)

func checkSSHUser(u string) string {
	if !sshUserRE.MatchString(u) {
		return fmt.Sprintf("%q is not an SSH user name: use letters, digits, '_', '.' and '-', starting with a letter or '_' (e.g. deploy)", u)
	}
	return ""
}

// checkJump validates a jump host "[user@]host[:port]".
func checkJump(s string) string {
	rest := s
	if u, h, ok := strings.Cut(s, "@"); ok {
		if checkSSHUser(u) != "" {
			return fmt.Sprintf("jump host %q: %q is not a user name", s, u)
		}
		rest = h
	}
	if h, p, ok := strings.Cut(rest, ":"); ok && !strings.Contains(p, ":") {
		if _, msg := parsePortString("jump host port", p); msg != "" {
			return msg
		}
		rest = h
	}
	if msg := checkAddress(rest); msg != "" {
		return fmt.Sprintf("jump host %q must be [user@]host[:port]: %s", s, msg)
	}
	return ""
}

// registry reads {server, username, password}; credentials are a literal
// user name or a one-item list naming a secret. A password must be a secret.
func (d *doc) registry(n *yaml.Node, what string) *Registry {
	fs, ok := d.fields(n, what, keys{known: []string{"server", "username", "password"}})
	if !ok || fs == nil {
		return nil
	}
	reg := &Registry{}
	if v, ok := fs["server"]; ok {
		reg.Server, _ = d.str(v, what+".server")
		// A server may name a path below the registry host, as
		// registry.digitalocean.com/team: Kamal prefixes images with it.
		host, regPath, _ := strings.Cut(reg.Server, "/")
		if regPath != "" && !regPathRE.MatchString(regPath) {
			d.errf(d.deref(v), "%s.server: the path %q after the registry host must be lowercase names separated by / (e.g. registry.digitalocean.com/team)", what, regPath)
		}
		if h, p, ok := strings.Cut(host, ":"); ok {
			host = h
			if _, msg := parsePortString(what+".server port", p); msg != "" {
				d.errf(d.deref(v), "%s", msg)
			}
		}
		if msg := checkAddress(host); reg.Server != "" && msg != "" {
			d.errf(d.deref(v), "%s.server: %s (e.g. ghcr.io or registry.example.com:5000)", what, msg)
		}
		if strings.EqualFold(host, "localhost") {
			switch {
			case !strings.Contains(strings.SplitN(reg.Server, "/", 2)[0], ":"):
				d.errf(d.deref(v), "%s.server: Kamal's local registry needs its port: write localhost:PORT (e.g. localhost:5555)", what)
			case regPath != "":
				d.errf(d.deref(v), "%s.server: Kamal's local registry is localhost:PORT, without a path", what)
			case host != "localhost":
				d.errf(d.deref(v), "%s.server: write localhost in lower case", what)
			default:
				d.notef(d.deref(v), "%s.server %s is Kamal's local registry: the servers pull from it through an SSH remote forward to port %d of the machine bosun runs on, where a registry must listen on 127.0.0.1", what, reg.Server, localRegistryPort(reg.Server))
			}
		}
	}
	if v, ok := fs["username"]; ok {
		if sn := d.deref(v); sn != nil && sn.Kind == yaml.SequenceNode {
			reg.UsernameSecret, _ = d.secretName(sn, what+".username")
		} else {
			reg.Username, _ = d.str(v, what+".username")
			if strings.ContainsAny(reg.Username, "\n\r") {
				d.errf(d.deref(v), "%s.username must be one line", what)
			}
		}
	}
	if v, ok := fs["password"]; ok {
		if sn := d.deref(v); sn != nil && sn.Kind == yaml.SequenceNode {
			reg.PasswordSecret, _ = d.secretName(sn, what+".password")
		} else {
			d.errf(sn, "%s.password must name a secret, never hold the password: write password: [REGISTRY_PASSWORD] and provide REGISTRY_PASSWORD as a secret", what)
		}
	}
	_, hasUser := fs["username"]
	_, hasPass := fs["password"]
	if hasUser != hasPass {
		d.errf(d.deref(n), "%s: set both username and password, or neither (no login)", what)
	}
	return reg
}

// localRegistryPort is PORT of a registry server "localhost:PORT", Kamal's
// local registry, which the servers reach through an SSH remote forward to
// the machine bosun runs on; 0 for any other server.
func localRegistryPort(server string) int {
	p, ok := strings.CutPrefix(server, "localhost:")
	if !ok {
		return 0
	}
	n, msg := parsePortString("", p)
	if msg != "" {
		return 0
	}
	return n
}

var regPathRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)

// secretName reads a one-item list naming a secret: [NAME].
func (d *doc) secretName(n *yaml.Node, what string) (string, bool) {
	items, nodes, ok := d.strList(n, what, false)
	if !ok || len(items) != 1 {
		d.errf(n, "%s: write the secret's name as a one-item list, e.g. [REGISTRY_PASSWORD]", what)
		return "", false
	}
	if msg := checkEnvName(items[0]); msg != "" {
		d.errf(nodes[0], "%s: secret name %s", what, msg)
		return "", false
	}
	return items[0], true
}
