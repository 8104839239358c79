package planner

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// Checks for every value that reaches a server. Each returns a message that
// says what is wrong and what to write instead, or "" when the value is fine.

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
	volNameRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sizeRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$`)
	cpusRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	userRE     = regexp.MustCompile(`^([a-z_][a-z0-9_.-]*|[0-9]+)(:([a-z_][a-z0-9_.-]*|[0-9]+))?$`)
	tmpfsOptRE = regexp.MustCompile(`^[a-z0-9_]+(=[A-Za-z0-9_.]+)?$`)
)

const maxNameLen = 63

// checkName validates a service or role name.
func checkName(s string) string {
	if !nameRE.MatchString(s) || len(s) > maxNameLen {
		return fmt.Sprintf("%q is not a valid name: use lowercase letters, digits, '-' and '_', starting with a letter or digit, at most %d characters (e.g. %q)",
			s, maxNameLen, suggestName(s))
	}
	return ""
}

func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ' || r == '.':
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "-_")
	if out == "" {
		return "app"
	}
	return out[:min(len(out), maxNameLen)]
}

// checkImage validates an image reference strictly: [registry/]repo[:tag][@digest],
// lowercase repository, no spaces.
func checkImage(s string) string {
	if s == "" {
		return "image is empty: set it to a reference such as ghcr.io/acme/app:1.2.3"
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\n\r") {
		return fmt.Sprintf("image %q contains white space: remove it", s)
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		hint := ""
		if strings.ToLower(s) != s {
			hint = fmt.Sprintf("; repository names are lowercase (e.g. %q)", lowerRepo(s))
		}
		return fmt.Sprintf("image %q is not a valid reference (%v): write [registry/]repository[:tag][@sha256:digest]%s", s, err, hint)
	}
	return ""
}

// lowerRepo lowercases everything of an image reference but its tag.
func lowerRepo(s string) string {
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		return strings.ToLower(s[:i]) + s[i:]
	}
	return strings.ToLower(s)
}

// imageHasVersion reports whether ref names a tag or a digest.
func imageHasVersion(ref string) bool {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	_, tagged := n.(reference.Tagged)
	_, digested := n.(reference.Digested)
	return tagged || digested
}

// imageDomain returns the registry host of ref as written, or "" when ref
// names no registry (Docker Hub).
func imageDomain(ref string) string {
	i := strings.IndexByte(ref, '/')
	if i < 0 {
		return ""
	}
	first := ref[:i]
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return first
	}
	return ""
}

// containerEnvRE is a container variable name: Docker takes any name
// without '=' (Kamal passes each as --env), and real files use '.' and
// '-' (meilisearch's --http-addr, JAVA_OPTS.x). bosun also keeps out
// spaces and control characters.
var containerEnvRE = regexp.MustCompile(`^[A-Za-z_.-][A-Za-z0-9_.-]*$`)

// checkContainerEnvName validates the name of a container variable.
func checkContainerEnvName(s string) string {
	if !containerEnvRE.MatchString(s) || len(s) > 255 {
		return fmt.Sprintf("%q is not a valid environment variable name: use letters, digits, '_', '.' and '-', not starting with a digit (e.g. %q)", s, suggestEnv(s))
	}
	return ""
}

func checkEnvName(s string) string {
	if !envNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit (e.g. %q)", s, suggestEnv(s))
	}
	return ""
}

func suggestEnv(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" || out[0] >= '0' && out[0] <= '9' {
		out = "_" + out
	}
	return out
}

// checkAbsPath validates a path inside a container or on a host.
func checkAbsPath(what, p string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("%s %q must be an absolute path (starting with /)", what, p)
	}
	if strings.ContainsAny(p, "\x00\n\r:,") {
		return fmt.Sprintf("%s %q must not contain ':', ',' or control characters", what, p)
	}
	if path.Clean(p) != p {
		return fmt.Sprintf("%s %q is not clean: write %q", what, p, path.Clean(p))
	}
	return ""
}

// parseVolume parses "source:target[:opts]". Source is an absolute host path
// or a Docker volume name; opts is ro or rw (plus SELinux z/Z).
func parseVolume(s string) (Volume, string) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Volume{}, fmt.Sprintf("volume %q must be HOST_PATH_OR_NAME:CONTAINER_PATH[:ro] (e.g. \"/var/lib/app:/data\" or \"app-data:/data\")", s)
	}
	v := Volume{Source: parts[0], Target: parts[1]}
	if v.Source == "." || strings.HasPrefix(v.Source, "./") {
		// Docker's CLI resolves a relative bind source against its working
		// folder, which under Kamal is the SSH user's login folder.
		home, msg := homeRelative("volume source", v.Source)
		if msg != "" {
			return v, msg
		}
		v.Source = home
	} else if strings.HasPrefix(v.Source, "/") {
		if msg := checkAbsPath("volume source", v.Source); msg != "" {
			return v, msg
		}
		if v.Source == "/" {
			return v, "volume source \"/\" would mount the whole host: mount a folder"
		}
	} else if !volNameRE.MatchString(v.Source) || len(v.Source) < 2 {
		return v, fmt.Sprintf("volume source %q must be an absolute host path or a volume name (letters, digits, '_', '.', '-', at least 2 characters)", v.Source)
	}
	if msg := checkAbsPath("volume target", v.Target); msg != "" {
		return v, msg
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				v.ReadOnly = true
			case "rw", "z", "Z":
			default:
				return v, fmt.Sprintf("volume %q: unknown option %q: use ro, rw, z or Z", s, o)
			}
		}
	}
	return v, ""
}

// HomePrefix starts a volume source that is relative to the SSH user's
// login folder ($HOME), where Kamal keeps relative bind sources and
// accessory directories; the executor resolves it on each server.
const HomePrefix = "~/"

// homeRelative turns a path relative to the SSH user's login folder into a
// HomePrefix source, refusing one that leaves that folder.
func homeRelative(what, rel string) (string, string) {
	clean := path.Clean(rel)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "/") {
		return "", fmt.Sprintf("%s %q must stay inside the SSH user's home folder: write a folder below it (e.g. \"./data\") or an absolute path", what, rel)
	}
	if msg := checkAbsPath(what, "/"+clean); msg != "" {
		return "", msg
	}
	return HomePrefix + clean, ""
}

func checkPort(what string, p int) string {
	if p < 1 || p > 65535 {
		return fmt.Sprintf("%s %d is not a port: use 1-65535", what, p)
	}
	return ""
}

func parsePortString(what, s string) (int, string) {
	p, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Sprintf("%s %q is not a port number: use 1-65535", what, s)
	}
	return p, checkPort(what, p)
}

// checkPublish validates "[ip:]hostPort:containerPort[/tcp|udp]" or "containerPort[/proto]".
func checkPublish(s string) string {
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" && proto != "sctp" {
		return fmt.Sprintf("publish %q: protocol %q must be tcp, udp or sctp", s, proto)
	}
	var ip, parts = "", []string(nil)
	if strings.HasPrefix(spec, "[") { // [v6]:host:container
		end := strings.Index(spec, "]")
		if end < 0 {
			return fmt.Sprintf("publish %q: unclosed '['", s)
		}
		ip, spec = spec[1:end], strings.TrimPrefix(spec[end+1:], ":")
	}
	parts = strings.Split(spec, ":")
	if ip == "" && len(parts) == 3 {
		ip, parts = parts[0], parts[1:]
	}
	if len(parts) < 1 || len(parts) > 2 || ip != "" && len(parts) != 2 {
		return fmt.Sprintf("publish %q must be [IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL] (e.g. \"127.0.0.1:5432:5432\")", s)
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Sprintf("publish %q: %q is not an IP address", s, ip)
		}
	}
	for _, p := range parts {
		if _, msg := parsePortString("publish "+strconv.Quote(s)+": port", p); msg != "" {
			return msg
		}
	}
	return ""
}

// checkHostname validates a DNS name (for proxy hosts, raw server
// addresses and add-host). A leading "*." is allowed when wildcard.
func checkHostname(s string, wildcard bool) string {
	name := s
	if wildcard {
		name = strings.TrimPrefix(name, "*.")
	}
	if name == "" || len(name) > 253 {
		return fmt.Sprintf("%q is not a host name", s)
	}
	for _, l := range strings.Split(name, ".") {
		if !dnsLabelRE.MatchString(l) {
			return fmt.Sprintf("%q is not a valid host name: use lowercase letters, digits, '-' and dots (e.g. shop.example.com)", s)
		}
	}
	return ""
}

// checkAddress validates a server address: an IP or a DNS name.
func checkAddress(s string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if checkHostname(s, false) == "" {
		return ""
	}
	return fmt.Sprintf("%q is not an IP address or a host name", s)
}

// checkLabelKey validates a Docker label key and rejects reserved ones.
func checkLabelKey(k string) string {
	switch {
	case k == "service" || k == "role" || k == "destination":
		return fmt.Sprintf("label %q is reserved (Kamal sets it): choose another name", k)
	case strings.HasPrefix(k, "bosun.") || k == "bosun":
		return fmt.Sprintf("label %q is reserved: bosun sets the bosun.* labels itself", k)
	case len(k) > 255:
		return fmt.Sprintf("label %q… is %d characters long: at most 255", strings.ToValidUTF8(k[:40], ""), len(k))
	case !labelKeyRE.MatchString(k):
		return fmt.Sprintf("label %q is not a valid label key: use letters, digits, '.', '-', '_' and '/' (e.g. \"com.example.team\")", k)
	}
	return ""
}
