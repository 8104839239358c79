package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// optionNames is the documented set of `options` keys (docker run flags);
// see docs/config.md "options".
var optionNames = []string{
	"add-host", "cap-add", "cap-drop", "cpus", "init", "memory", "memory-reservation",
	"pids-limit", "publish", "read-only", "restart", "shm-size", "stop-signal",
	"tmpfs", "ulimit", "user", "workdir",
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

// options reads a role's or accessory's `options` map into Options.
func (d *doc) options(n *yaml.Node, what string) Options {
	var o Options
	fs, ok := d.fields(n, what, keys{known: optionNames})
	if !ok {
		return o
	}
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
	return o
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
	return o
}
