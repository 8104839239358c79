package planner

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file reads a Kamal deploy file the way Kamal does before its YAML is
// parsed: the ERB subset bosun supports (ENV lookups only), and the
// destination file (services/NAME.DEST.yml) deep-merged over the base.

// erbTagRE matches one ERB tag: <%= ... %>, <% ... %>, <%# ... %>, with the
// trim forms <%- and -%>.
var erbTagRE = regexp.MustCompile(`(?s)<%(=|#|-)?(.*?)(-?)%>`)

// erbLookupRE is the whole supported expression: ENV["X"], ENV['X'],
// ENV.fetch("X") and ENV.fetch("X", "default").
var erbLookupRE = regexp.MustCompile(`^\s*ENV(?:\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]|\.fetch\(\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*(?:,\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*)?\))\s*$`)

const erbUnsupported = "ERB is not run; only ENV lookups are supported: <%%= ENV[\"NAME\"] %%>, <%%= ENV.fetch(\"NAME\") %%> or <%%= ENV.fetch(\"NAME\", \"default\") %%>"

// erbPlaceholder stands for the value of an ERB tag that bosun did not
// render, in a file that has an error at that line.
const erbPlaceholder = "bosun-unrendered-erb"

// renderERB replaces the ERB ENV lookups of a Kamal file with values from
// env, the operator's list (Input.ERBEnv), and reports any other ERB at its
// line. Lines that are YAML comments are left alone: their ERB has no
// effect on the YAML either way. The result has the same lines as data.
func renderERB(d *doc, data []byte, env map[string]string) []byte {
	if !bytes.Contains(data, []byte("<%")) {
		return data
	}
	var out bytes.Buffer
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("#")) || !bytes.Contains(line, []byte("<%")) {
			out.Write(line)
			continue
		}
		// A tag may span lines: join them until it closes.
		start := i
		for bytes.Count(line, []byte("<%")) > bytes.Count(line, []byte("%>")) && i+1 < len(lines) {
			i++
			line = append(bytes.Clone(line), lines[i]...)
		}
		at := func(col int) *yaml.Node { return &yaml.Node{Line: start + 1, Column: col} }
		var failed bool
		res := erbTagRE.ReplaceAllFunc(line, func(tag []byte) []byte {
			m := erbTagRE.FindSubmatchIndex(tag)
			kind, expr := "", string(tag[m[4]:m[5]])
			if m[2] >= 0 {
				kind = string(tag[m[2]:m[3]])
			}
			col := bytes.Index(line, tag) + 1
			if kind == "#" {
				return nil // an ERB comment
			}
			sub := erbLookupRE.FindStringSubmatch(expr)
			if kind != "=" || sub == nil {
				d.errf(at(col), erbUnsupported+"; found %q", clip(string(tag), 60))
				failed = true
				return tag
			}
			name := sub[1] + sub[2] + sub[3] + sub[4]
			def, hasDef := sub[5]+sub[6], strings.Contains(expr, ",")
			v, ok := env[name]
			switch {
			case ok && strings.ContainsAny(v, "\n\r"):
				d.errf(at(col), "ERB: the value of %s has a line break, which would change the file's structure: bosun inserts single-line values only", name)
				failed = true
				return tag
			case ok:
				return []byte(v)
			case hasDef:
				return []byte(def)
			}
			d.errf(at(col), "ERB: %s is not available: bosun passes ERB only the environment variables the operator lists and sets (bosun --erb-env %s, or erb_env in the daemon config's repo entry); or write ENV.fetch(%q, \"default\")", name, name, name)
			failed = true
			return tag
		})
		if failed {
			// The file is already invalid. A failed tag on one line
			// becomes a placeholder, so that the checks reading its
			// value see one and report nothing more than the ERB error
			// (see doc.errf); a tag over several lines becomes blank
			// lines, keeping the line count.
			for l := start + 1; l <= i+1; l++ {
				d.erbLines[fmt.Sprintf("%s:%d", d.file, l)] = true
			}
			if start != i {
				out.Write(bytes.Repeat([]byte("\n"), bytes.Count(line, []byte("\n"))))
				continue
			}
			res = erbTagRE.ReplaceAllFunc(res, func(tag []byte) []byte { return []byte(erbPlaceholder) })
		}
		out.Write(res)
	}
	return out.Bytes()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// destinationFile returns the destination file of service file base for
// dest: services/NAME.DEST.yml (or .yaml) next to services/NAME.yml.
func destinationFile(base, dest string, exists func(string) bool) string {
	stem := strings.TrimSuffix(strings.TrimSuffix(base, ".yml"), ".yaml")
	for _, ext := range []string{".yml", ".yaml"} {
		if f := stem + "." + dest + ext; exists(f) {
			return f
		}
	}
	return ""
}

// isDestinationFile reports whether file is NAME.DEST.yml next to a service
// file NAME.yml in files: a destination file, not a service of its own.
func isDestinationFile(file string, files map[string]bool) bool {
	stem := strings.TrimSuffix(strings.TrimSuffix(file, ".yml"), ".yaml")
	i := strings.LastIndexByte(stem, '.')
	if i <= strings.LastIndexByte(stem, '/') {
		return false
	}
	base := stem[:i]
	return files[base+".yml"] || files[base+".yaml"]
}

// mergeDestination deep-merges the destination document over the base one
// as Kamal does (Hash#deep_merge): maps merge key by key, the destination's
// value wins, lists and scalars are replaced. Neither input is modified:
// merged maps are new nodes, so anchors shared elsewhere stay intact.
func mergeDestination(d *doc, base, over *yaml.Node) *yaml.Node {
	b, o := d.deref(base), d.deref(over)
	if isNull(o) {
		return base
	}
	if b == nil || b.Kind != yaml.MappingNode || o.Kind != yaml.MappingNode {
		return over
	}
	bp, ok1 := d.pairs(b, "the base file")
	op, ok2 := d.pairs(o, "the destination file")
	if !ok1 || !ok2 {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: b.Line, Column: b.Column}
	idx := map[string]int{}
	for _, p := range bp {
		idx[p.key.Value] = len(out.Content)
		out.Content = append(out.Content, p.key, p.val)
	}
	for _, p := range op {
		if i, ok := idx[p.key.Value]; ok {
			out.Content[i+1] = mergeDestination(d, out.Content[i+1], p.val)
			continue
		}
		out.Content = append(out.Content, p.key, p.val)
	}
	return out
}

// markFile records that every node under n comes from file, so that errors
// there are reported in that file.
func (d *doc) markFile(n *yaml.Node, file string) {
	if d.nodeFile == nil {
		d.nodeFile = map[*yaml.Node]string{}
	}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || d.nodeFile[n] != "" {
			return
		}
		d.nodeFile[n] = file
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

// checkDestination is the message for a destination name that cannot be a
// file name part, or "".
func checkDestination(dest string) string {
	if !nameRE.MatchString(dest) || len(dest) > maxNameLen {
		return fmt.Sprintf("destination %q is not a valid name: use lowercase letters, digits, '-' and '_' (e.g. staging)", dest)
	}
	return ""
}

// ERBEnvFrom is Input.ERBEnv for the operator's list of names, with values
// from getenv (nil: none). A name that is unset or empty is left out, so a
// lookup of it fails unless it has a default.
func ERBEnvFrom(getenv func(string) string, names []string) map[string]string {
	if getenv == nil || len(names) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, n := range names {
		if v := getenv(n); v != "" {
			out[n] = v
		}
	}
	return out
}
