package planner

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// A Danger is a setting that gives a container power over its server, or
// opens it to the network: it needs an explicit opt-in in the service's
// x-bosun.allow_dangerous, and every plan marks it.
type Danger struct {
	Kind    string `json:"kind"`    // what x-bosun.allow_dangerous names, e.g. "docker-socket"
	Setting string `json:"setting"` // the spec field and value, e.g. "volumes: /var/run/docker.sock:/var/run/docker.sock"
	Why     string `json:"why"`
	option  string // the options key it comes from ("" for volumes)
}

// String returns "setting (kind: why)".
func (d Danger) String() string { return d.Setting + " (" + d.Kind + ": " + d.Why + ")" }

// The kinds of Danger.
const (
	DangerPrivileged  = "privileged"
	DangerHostNetwork = "host-network"
	DangerHostPID     = "host-pid"
	DangerSocket      = "docker-socket"
	DangerHostMount   = "host-system-mount"
	DangerCapAll      = "cap-add-all"
	DangerRootUser    = "root-user"
	DangerPublicPort  = "public-port"
	DangerUnconfined  = "unconfined"
)

var dangerKinds = []string{DangerCapAll, DangerSocket, DangerHostMount, DangerHostNetwork, DangerHostPID,
	DangerPrivileged, DangerPublicPort, DangerRootUser, DangerUnconfined}

// proxyPorts are the ports bosun's proxy publishes on every server it runs
// on; a container publishing them on all interfaces opens nothing new.
var proxyPorts = map[int]bool{80: true, 443: true}

// Dangers lists the dangerous settings of s, in a fixed order.
func (s *Spec) Dangers() []Danger {
	var out []Danger
	add := func(kind, setting, why string) {
		opt := ""
		if k, ok := strings.CutPrefix(setting, "options."); ok {
			k, _, _ = strings.Cut(k, ":")
			opt = map[string]string{"cap_add": "cap-add", "security_opt": "security-opt", "mounts": "mount"}[k]
			if opt == "" {
				opt = k
			}
		}
		out = append(out, Danger{Kind: kind, Setting: setting, Why: why, option: opt})
	}
	o := &s.Options
	if o.Privileged {
		add(DangerPrivileged, "options.privileged: true", "a privileged container has every device and capability of the server")
	}
	if o.Network == "host" {
		add(DangerHostNetwork, "options.network: host", "the container shares the server's network stack, its ports and its loopback services")
	}
	if o.PID == "host" {
		add(DangerHostPID, "options.pid: host", "the container sees and can signal every process of the server")
	}
	if slices.Contains(o.CapAdd, "ALL") {
		add(DangerCapAll, "options.cap_add: ALL", "every Linux capability: close to root on the server")
	}
	if u := o.User; u != "" {
		name, group, _ := strings.Cut(u, ":")
		if name == "0" || name == "root" || group == "0" || group == "root" {
			add(DangerRootUser, "options.user: "+u, "the process runs as root (uid or gid 0), so a breakout or a writable host mount is root's")
		}
	}
	for _, so := range o.SecurityOpt {
		if strings.HasSuffix(so, "unconfined") || so == "label=disable" || so == "label:disable" {
			add(DangerUnconfined, "options.security_opt: "+so, "a kernel confinement (seccomp, AppArmor, SELinux or masked paths) is turned off")
		}
	}
	mountSource := func(setting, src string) {
		if kind, why := hostPathDanger(src); kind != "" {
			add(kind, setting, why)
		}
	}
	for _, v := range s.Volumes {
		mountSource("volumes: "+v.Source+":"+v.Target, v.Source)
	}
	for _, m := range o.Mounts {
		if pm, msg := ParseMount(m); msg == "" && pm.Type == "bind" {
			mountSource("options.mounts: "+m, pm.Source)
		}
	}
	for _, p := range o.Publish {
		if ip, port, ok := publishedOn(p); ok && !proxyPorts[port] && (ip == "" || netip.MustParseAddr(ip).IsUnspecified()) {
			add(DangerPublicPort, "options.publish: "+p, fmt.Sprintf("port %d is opened on every address of the server, not only to bosun's proxy: bind it to 127.0.0.1 (127.0.0.1:%d:…) unless it must be public", port, port))
		}
	}
	return out
}

// hostPathDanger says whether mounting host path src gives the container
// control of the server.
func hostPathDanger(src string) (kind, why string) {
	if rel, ok := strings.CutPrefix(src, HomePrefix); ok {
		if rel == ".ssh" || strings.HasPrefix(rel, ".ssh/") {
			return DangerHostMount, "the SSH user's keys and authorized_keys"
		}
		return "", ""
	}
	if !strings.HasPrefix(src, "/") {
		return "", "" // a named volume
	}
	p := path.Clean(src)
	switch {
	case p == "/var/run/docker.sock" || p == "/run/docker.sock" || p == "/var/run" || p == "/run" || p == "/var/run/docker" || p == "/run/docker":
		return DangerSocket, "the Docker socket is root on the server"
	case p == "/":
		return DangerHostMount, "the server's whole file system"
	case p == "/etc" || p == "/root" || strings.HasPrefix(p, "/root/") || p == "/boot" || p == "/proc" || p == "/sys" || p == "/dev":
		return DangerHostMount, "a system folder of the server (" + p + ")"
	case strings.HasSuffix(p, "/.ssh") || strings.Contains(p, "/.ssh/"):
		return DangerHostMount, "SSH keys of the server (" + p + ")"
	}
	return "", ""
}

// publishedOn returns the host IP ("" for all) and host port of a publish
// entry, or false for a container port published on a random host port.
func publishedOn(p string) (string, int, bool) {
	spec, _, _ := strings.Cut(p, "/")
	ip := ""
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]")
		ip, spec = spec[1:end], strings.TrimPrefix(spec[end+1:], ":")
	}
	parts := strings.Split(spec, ":")
	if ip == "" && len(parts) == 3 {
		ip, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 {
		return "", 0, false
	}
	port, err := strconv.Atoi(parts[0])
	return ip, port, err == nil
}

// allowDangerous reads x-bosun.allow_dangerous: the kinds of Danger the
// service may use.
func (d *doc) allowDangerous(n *yaml.Node) []string {
	kinds, nodes, _ := d.strList(n, "x-bosun.allow_dangerous", false)
	var out []string
	for i, k := range kinds {
		if !slices.Contains(dangerKinds, k) {
			d.errf(nodes[i], "x-bosun.allow_dangerous: %q is not a kind of dangerous setting%s; the kinds are: %s", k, didYouMean(k, dangerKinds), strings.Join(dangerKinds, ", "))
			continue
		}
		out = append(out, k)
	}
	return out
}
