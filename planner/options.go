package planner

import (
	"encoding/csv"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"gopkg.in/yaml.v3"
)

// optionNames is the documented set of `options` keys (docker run flags);
// see docs/config.md "options".
var optionNames = []string{
	"add-host", "cap-add", "cap-drop", "cpus", "init", "memory", "memory-reservation",
	"pids-limit", "publish", "read-only", "restart", "shm-size", "stop-signal",
	"tmpfs", "ulimit", "user", "workdir",
	"network", "network-alias", "health-cmd", "health-interval", "health-retries",
	"health-timeout", "health-start-period", "group-add", "memory-swap", "mount",
	"security-opt", "privileged", "pid",
}

// optHealth is the Docker health check given as options (health-*), merged
// over the service's healthcheck.
type optHealth struct {
	set                            bool
	cmd                            []string
	interval, timeout, startPeriod Duration
	retries                        int
	node                           *yaml.Node
	keys                           map[string]*yaml.Node // every option's value node, for errors
}

var capabilities = setOf("ALL", "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF",
	"CHECKPOINT_RESTORE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
	"IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
	"MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP",
	"SETGID", "SETPCAP", "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE",
	"SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "WAKE_ALARM")

var ulimitNames = setOf("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")

var signals = setOf("SIGABRT", "SIGALRM", "SIGHUP", "SIGINT", "SIGKILL", "SIGQUIT", "SIGTERM",
	"SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGPWR", "SIGSTOP")

func setOf(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// options reads a role's or accessory's `options` map into Options, and
// its health-* options.
func (d *doc) options(n *yaml.Node, what string) (Options, optHealth) {
	var o Options
	var h optHealth
	fs, ok := d.fields(n, what, keys{known: optionNames})
	if !ok {
		return o, h
	}
	h.keys = fs
	scalar := func(key string, check func(string) string) (string, bool) {
		v, ok := fs[key]
		if !ok {
			return "", false
		}
		s, ok := d.str(v, what+"."+key)
		if !ok {
			return "", false
		}
		if msg := check(s); msg != "" {
			d.errf(d.deref(v), "%s.%s: %s", what, key, msg)
			return "", false
		}
		return s, true
	}
	list := func(key string, check func(string) string) []string {
		v, ok := fs[key]
		if !ok {
			return nil
		}
		items, nodes, _ := d.strList(v, what+"."+key, true)
		var out []string
		for i, s := range items {
			if msg := check(s); msg != "" {
				d.errf(nodes[i], "%s.%s: %s", what, key, msg)
				continue
			}
			out = append(out, s)
		}
		return out
	}
	flag := func(key string) bool {
		v, ok := fs[key]
		if !ok {
			return false
		}
		b, _ := d.boolean(v, what+"."+key)
		return b
	}
	o.Memory, _ = scalar("memory", checkSize)
	o.MemoryReservation, _ = scalar("memory-reservation", checkSize)
	o.ShmSize, _ = scalar("shm-size", checkSize)
	o.CPUs, _ = scalar("cpus", checkCPUs)
	o.Restart, _ = scalar("restart", checkRestart)
	o.User, _ = scalar("user", checkUser)
	o.Workdir, _ = scalar("workdir", func(s string) string { return checkAbsPath("workdir", s) })
	o.StopSignal, _ = scalar("stop-signal", checkSignal)
	if s, ok := scalar("pids-limit", checkPidsLimit); ok {
		o.PidsLimit, _ = strconv.ParseInt(s, 10, 64)
	}
	o.AddHosts = list("add-host", checkAddHost)
	o.CapAdd = list("cap-add", checkCap)
	o.CapDrop = list("cap-drop", checkCap)
	o.Ulimits = list("ulimit", checkUlimit)
	o.Publish = list("publish", checkPublish)
	o.Tmpfs = list("tmpfs", checkTmpfs)
	o.ReadOnly = flag("read-only")
	o.Init = flag("init")
	o.Privileged = flag("privileged")
	o.PID, _ = scalar("pid", func(s string) string {
		if s != "host" {
			return fmt.Sprintf("pid %q: bosun supports only \"host\" (share the server's process namespace)", s)
		}
		return ""
	})
	o.Network, _ = scalar("network", checkNetwork)
	o.NetworkAliases = list("network-alias", func(s string) string {
		if msg := checkHostname(s, false); msg != "" {
			return "network-alias: " + msg
		}
		return ""
	})
	o.GroupAdd = list("group-add", func(s string) string {
		if !groupRE.MatchString(s) {
			return fmt.Sprintf("group-add %q must be a group name or a GID", s)
		}
		return ""
	})
	o.MemorySwap, _ = scalar("memory-swap", func(s string) string {
		if s == "-1" {
			return ""
		}
		return checkSize(s)
	})
	o.Mounts = list("mount", func(s string) string { _, msg := ParseMount(s); return msg })
	o.SecurityOpt = list("security-opt", checkSecurityOpt)
	if v, ok := fs["health-cmd"]; ok {
		h.set, h.node = true, d.deref(v)
		if s, ok := d.str(v, what+".health-cmd"); ok {
			if strings.TrimSpace(s) == "" {
				d.errf(d.deref(v), "%s.health-cmd is empty", what)
			} else {
				h.cmd = []string{"CMD-SHELL", s}
			}
		}
	}
	for key, dst := range map[string]*Duration{"health-interval": &h.interval, "health-timeout": &h.timeout, "health-start-period": &h.startPeriod} {
		if v, ok := fs[key]; ok {
			h.set = true
			if h.node == nil {
				h.node = d.deref(v)
			}
			*dst, _ = d.duration(v, what+"."+key, false)
		}
	}
	if v, ok := fs["health-retries"]; ok {
		h.set = true
		if h.node == nil {
			h.node = d.deref(v)
		}
		if r, ok := d.integer(v, what+".health-retries"); ok {
			if r < 1 {
				d.errf(d.deref(v), "%s.health-retries must be at least 1, not %d", what, r)
			}
			h.retries = r
		}
	}
	return o, h
}

var (
	groupRE   = regexp.MustCompile(`^([a-z_][a-z0-9_-]*|[0-9]+)$`)
	networkRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)
)

func checkNetwork(s string) string {
	if !networkRE.MatchString(s) {
		return fmt.Sprintf("network %q is not a Docker network name (letters, digits, '_', '.', '-')", s)
	}
	return ""
}

func checkSecurityOpt(s string) string {
	k, v, hasV := strings.Cut(s, "=")
	if !hasV {
		k, v, hasV = strings.Cut(s, ":")
	}
	switch k {
	case "no-new-privileges":
		if !hasV || v == "true" || v == "false" {
			return ""
		}
	case "seccomp":
		// Docker's CLI reads a profile file where it runs; bosun has no
		// file to send.
		if v == "unconfined" {
			return ""
		}
		return fmt.Sprintf("security-opt %q: bosun supports seccomp=unconfined only (a profile file would have to be read on the server)", s)
	case "apparmor":
		if hasV && v != "" && !strings.ContainsAny(v, "\x00\n,") {
			return ""
		}
	case "label":
		if hasV && v != "" && !strings.ContainsAny(v, "\x00\n") {
			return ""
		}
	case "systempaths":
		if v == "unconfined" {
			return ""
		}
	}
	return fmt.Sprintf("security-opt %q must be no-new-privileges[=true|false], seccomp=PROFILE, apparmor=PROFILE, label=… or systempaths=unconfined", s)
}

// Mount is one docker --mount entry, parsed (see ParseMount).
type Mount struct {
	Type, Source, Target string // type bind, volume or tmpfs
	ReadOnly             bool
	BindPropagation      string
	VolumeDriver         string
	VolumeOpts           map[string]string
	VolumeNoCopy         bool
	TmpfsSize            int64
	TmpfsMode            uint32
}

// ParseMount parses Docker's --mount syntax: comma-separated key=value
// fields (CSV quoting allowed, as Docker's CLI reads it). It returns a
// message saying what is wrong, or "".
func ParseMount(s string) (Mount, string) {
	m := Mount{Type: "volume"}
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return m, fmt.Sprintf("mount %q: %v", s, err)
	}
	bad := func(f string) (Mount, string) {
		return m, fmt.Sprintf("mount %q: %q is not a mount field (type, source, target, readonly, bind-propagation, volume-driver, volume-opt, volume-nocopy, tmpfs-size, tmpfs-mode)", s, f)
	}
	for _, f := range fields {
		k, v, hasV := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "type":
			if v != "bind" && v != "volume" && v != "tmpfs" {
				return m, fmt.Sprintf("mount %q: type %q must be bind, volume or tmpfs", s, v)
			}
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			switch {
			case !hasV || v == "true" || v == "1":
				m.ReadOnly = true
			case v == "false" || v == "0":
			default:
				return bad(f)
			}
		case "bind-propagation":
			switch v {
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				m.BindPropagation = v
			default:
				return bad(f)
			}
		case "volume-driver":
			if !networkRE.MatchString(v) {
				return bad(f)
			}
			m.VolumeDriver = v
		case "volume-opt":
			ok, ov, found := strings.Cut(v, "=")
			if !found || ok == "" || strings.ContainsAny(v, "\x00\n") {
				return bad(f)
			}
			if m.VolumeOpts == nil {
				m.VolumeOpts = map[string]string{}
			}
			m.VolumeOpts[ok] = ov
		case "volume-nocopy":
			m.VolumeNoCopy = !hasV || v == "true" || v == "1"
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil || n <= 0 {
				return bad(f)
			}
			m.TmpfsSize = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return bad(f)
			}
			m.TmpfsMode = uint32(n)
		case "consistency":
		default:
			return bad(f)
		}
	}
	if msg := checkAbsPath("mount target", m.Target); msg != "" {
		return m, "mount " + strconv.Quote(s) + ": " + msg
	}
	switch m.Type {
	case "bind":
		if msg := checkAbsPath("mount source", m.Source); msg != "" {
			return m, "mount " + strconv.Quote(s) + ": a bind's " + msg
		}
	case "volume":
		if m.Source != "" && !volNameRE.MatchString(m.Source) {
			return m, fmt.Sprintf("mount %q: volume source %q is not a volume name", s, m.Source)
		}
	case "tmpfs":
		if m.Source != "" {
			return m, fmt.Sprintf("mount %q: a tmpfs has no source", s)
		}
	}
	return m, ""
}

func checkSize(s string) string {
	if !sizeRE.MatchString(s) || strings.Trim(s, "0.bkmgBKMG") == "" {
		return fmt.Sprintf("%q is not a size: write a positive number with an optional unit b, k, m or g (e.g. \"512m\")", s)
	}
	return ""
}

func checkCPUs(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if !cpusRE.MatchString(s) || err != nil || f <= 0 || f > 1024 {
		return fmt.Sprintf("%q is not a CPU count: write a positive decimal (e.g. \"1.5\")", s)
	}
	return ""
}

func checkRestart(s string) string {
	switch s {
	case "no", "always", "unless-stopped", "on-failure":
		return ""
	}
	if n, ok := strings.CutPrefix(s, "on-failure:"); ok {
		if v, err := strconv.Atoi(n); err == nil && v > 0 {
			return ""
		}
	}
	return fmt.Sprintf("restart %q must be no, always, unless-stopped, on-failure or on-failure:N", s)
}

func checkUser(s string) string {
	if !userRE.MatchString(s) {
		return fmt.Sprintf("user %q must be NAME, UID, NAME:GROUP or UID:GID (e.g. \"1000:1000\")", s)
	}
	return ""
}

func checkSignal(s string) string {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return ""
	}
	if signals[s] || signals["SIG"+s] {
		return ""
	}
	return fmt.Sprintf("stop-signal %q is not a signal: write a name such as SIGTERM or SIGQUIT, or a number", s)
}

func checkPidsLimit(s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 || n < -1 {
		return fmt.Sprintf("pids-limit %q must be a positive whole number, or -1 for no limit", s)
	}
	return ""
}

func checkAddHost(s string) string {
	name, ip, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Sprintf("add-host %q must be NAME:IP (e.g. \"db.internal:10.0.0.5\" or \"host.docker.internal:host-gateway\")", s)
	}
	if msg := checkHostname(name, false); msg != "" {
		return "add-host: " + msg
	}
	if ip == "host-gateway" {
		return ""
	}
	if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil {
		return fmt.Sprintf("add-host %q: %q is not an IP address (or host-gateway)", s, ip)
	}
	return ""
}

func checkCap(s string) string {
	if !capabilities[strings.TrimPrefix(strings.ToUpper(s), "CAP_")] || strings.ToUpper(s) != s {
		return fmt.Sprintf("%q is not a Linux capability: write it in capitals, e.g. NET_ADMIN (or ALL)", s)
	}
	return ""
}

func checkUlimit(s string) string {
	name, vals, ok := strings.Cut(s, "=")
	if !ok || !ulimitNames[name] {
		return fmt.Sprintf("ulimit %q must be NAME=SOFT[:HARD] with NAME one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack", s)
	}
	soft, hard, hasHard := strings.Cut(vals, ":")
	sv, err1 := strconv.ParseInt(soft, 10, 64)
	hv := sv
	var err2 error
	if hasHard {
		hv, err2 = strconv.ParseInt(hard, 10, 64)
	}
	if err1 != nil || err2 != nil || sv < -1 || hv < -1 || hv != -1 && sv > hv {
		return fmt.Sprintf("ulimit %q: limits must be whole numbers (or -1), soft no more than hard", s)
	}
	return ""
}

func checkTmpfs(s string) string {
	p, opts, _ := strings.Cut(s, ":")
	if msg := checkAbsPath("tmpfs", p); msg != "" {
		return msg
	}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			if !tmpfsOptRE.MatchString(o) {
				return fmt.Sprintf("tmpfs %q: option %q is not valid (e.g. \"/run:size=64m,mode=1777\")", s, o)
			}
		}
	}
	return ""
}

func (o Options) clone() Options {
	o.AddHosts, o.CapAdd, o.CapDrop = slices.Clone(o.AddHosts), slices.Clone(o.CapAdd), slices.Clone(o.CapDrop)
	o.Ulimits, o.Publish, o.Tmpfs = slices.Clone(o.Ulimits), slices.Clone(o.Publish), slices.Clone(o.Tmpfs)
	o.NetworkAliases, o.GroupAdd = slices.Clone(o.NetworkAliases), slices.Clone(o.GroupAdd)
	o.Mounts, o.SecurityOpt = slices.Clone(o.Mounts), slices.Clone(o.SecurityOpt)
	return o
}
