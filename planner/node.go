package planner

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// doc reads one YAML document of the config repository, reporting every
// mistake with its position. Readers return ok=false after reporting.
type doc struct {
	file string
	r    *report
	// via is set for a service file rendered from a template: positions are
	// in the rendered text, so errors are reported at the service file's
	// template: key and name the rendered position in the message.
	via *renderedFrom
	// budget bounds the work of resolving aliases and merge keys, so that a
	// small file cannot make the loader walk an exponential tree.
	budget int
	// nodeFile names the file of nodes that come from another file than
	// file: a destination file merged over the service file.
	nodeFile map[*yaml.Node]string
	// destination is the Kamal destination the file is read for ("": none).
	destination string
	// erbLines are the lines ("file:line") whose ERB failed: the ERB error
	// is their only error (errf). A destination's doc shares its base's.
	erbLines map[string]bool
}

type renderedFrom struct {
	template  string // "templates/rails.yml.tmpl"
	line, col int    // the service file's template: key
	vars      map[string]*yaml.Node
}

const nodeBudget = 200_000

func newDoc(file string, r *report) *doc {
	return &doc{file: file, r: r, budget: nodeBudget, erbLines: map[string]bool{}}
}

func (d *doc) errf(n *yaml.Node, format string, a ...any) {
	e := d.at(n, fmt.Sprintf(format, a...))
	if d.via == nil && d.erbLines[fmt.Sprintf("%s:%d", e.File, e.Line)] {
		return // a line whose ERB failed has that error already
	}
	d.r.errs = append(d.r.errs, e)
}

// kamal1f reports a Kamal 1 key at n (ConfigError.Kamal1).
func (d *doc) kamal1f(n *yaml.Node, format string, a ...any) {
	e := d.at(n, fmt.Sprintf(format, a...))
	e.Kamal1 = true
	d.r.errs = append(d.r.errs, e)
}

func (d *doc) notef(n *yaml.Node, format string, a ...any) {
	d.r.notices = append(d.r.notices, d.at(n, fmt.Sprintf(format, a...)))
}

func (d *doc) at(n *yaml.Node, msg string) *ConfigError {
	line, col := 0, 0
	file := d.file
	if n != nil {
		line, col = n.Line, n.Column
		if f := d.nodeFile[n]; f != "" {
			file = f
		}
	}
	if d.via != nil {
		if vn := d.via.varFor(n); vn != nil {
			return &ConfigError{File: d.file, Line: vn.Line, Col: vn.Column,
				Msg: fmt.Sprintf("%s (this var's value, as rendered by %s)", msg, d.via.template)}
		}
		return &ConfigError{File: d.file, Line: d.via.line, Col: d.via.col,
			Msg: fmt.Sprintf("%s (in the output of %s, line %d column %d)", msg, d.via.template, line, col)}
	}
	return &ConfigError{File: file, Line: line, Col: col, Msg: msg}
}

// varFor finds the var whose scalar value the rendered node n shows, so that
// an error in a value that came from vars points at the var.
func (rf *renderedFrom) varFor(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.ScalarNode || n.Value == "" {
		return nil
	}
	var found *yaml.Node
	for _, vn := range rf.vars {
		if vn.Kind == yaml.ScalarNode && vn.Value == n.Value {
			if found != nil {
				return nil // ambiguous
			}
			found = vn
		}
	}
	return found
}

// deref follows aliases.
func (d *doc) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return d.deref(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch {
	case n == nil || isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

type field struct{ key, val *yaml.Node }

// pairs returns the key/value pairs of mapping n with merge keys (<<)
// resolved; explicit keys win over merged ones. Duplicate keys are errors.
func (d *doc) pairs(n *yaml.Node, what string) ([]field, bool) {
	n = d.deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a map, not %s", what, kindName(n))
		return nil, false
	}
	var out []field
	seen := map[string]bool{}
	var merged []field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		d.budget--
		if d.budget < 0 {
			if d.budget == -1 {
				d.errf(k, "too many aliases and merge keys: simplify the file")
			}
			return nil, false
		}
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: keys must be strings, not %s", what, kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			src := d.deref(v)
			var srcs []*yaml.Node
			if src != nil && src.Kind == yaml.SequenceNode {
				srcs = src.Content
			} else {
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				ps, _ := d.pairs(s, what+" (merged with <<)")
				merged = append(merged, ps...)
			}
			continue
		}
		if seen[k.Value] {
			d.errf(k, "%s: key %q appears twice: keep one", what, k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, field{k, v})
	}
	for _, f := range merged {
		if !seen[f.key.Value] {
			seen[f.key.Value] = true
			out = append(out, f)
		}
	}
	return out, true
}

// keys describes the keys a map accepts.
type keys struct {
	known   []string
	ignored map[string]string // key -> why it is ignored
	allowX  bool              // x- keys are extensions: skipped (x-bosun only if known)
}

// fields returns the values of the known keys of mapping n, reports unknown
// keys (with a did-you-mean hint) and notes the ignored ones.
func (d *doc) fields(n *yaml.Node, what string, ks keys) (map[string]*yaml.Node, bool) {
	ps, ok := d.pairs(n, what)
	if !ok {
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(ps))
	for _, p := range ps {
		k := p.key.Value
		switch {
		case slices.Contains(ks.known, k):
			out[k] = p.val
		case ks.ignored[k] != "":
			d.notef(p.key, "%s: %s is ignored: %s", what, k, ks.ignored[k])
		case ks.allowX && strings.HasPrefix(k, "x-"):
		default:
			cands := append(slices.Clone(ks.known), mapKeys(ks.ignored)...)
			d.errf(p.key, "%s: unknown key %q%s; the keys allowed here are: %s",
				what, k, didYouMean(k, cands), strings.Join(sortedCopy(ks.known), ", "))
		}
	}
	return out, true
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// str reads a scalar as a string. Numbers and booleans are taken as written.
func (d *doc) str(n *yaml.Node, what string) (string, bool) {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	if strings.ContainsRune(n.Value, 0) {
		d.errf(n, "%s must not contain a NUL byte", what)
		return "", false
	}
	return n.Value, true
}

func (d *doc) integer(n *yaml.Node, what string) (int, bool) {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errf(n, "%s must be a whole number, not %s", what, kindName(n))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 32)
	if err != nil {
		d.errf(n, "%s must be a whole number, not %q", what, n.Value)
		return 0, false
	}
	return int(v), true
}

func (d *doc) boolean(n *yaml.Node, what string) (bool, bool) {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
	}
	d.errf(n, "%s must be true or false, not %s", what, describe(n))
	return false, false
}

func describe(n *yaml.Node) string {
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

// duration reads a whole number of seconds (Kamal's form) or a Go duration
// string ("1m30s"). It must be positive, or zero when zeroOK.
func (d *doc) duration(n *yaml.Node, what string, zeroOK bool) (Duration, bool) {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errf(n, "%s must be a duration (seconds, or like \"30s\"), not %s", what, kindName(n))
		return 0, false
	}
	var v time.Duration
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil && !strings.ContainsAny(n.Value, "xXpPnN_") {
		if secs < 0 || secs > 100*365*24*3600 || math.IsNaN(secs) {
			d.errf(n, "%s: %s seconds is out of range", what, n.Value)
			return 0, false
		}
		v = time.Duration(secs * float64(time.Second))
	} else {
		v, err = time.ParseDuration(n.Value)
		if err != nil {
			d.errf(n, "%s must be a duration: seconds (30) or a Go duration (\"30s\", \"1m\"), not %q", what, n.Value)
			return 0, false
		}
	}
	if v < 0 || v == 0 && !zeroOK {
		d.errf(n, "%s must be more than zero, not %q", what, n.Value)
		return 0, false
	}
	return Duration(v), true
}

// list returns the items of a sequence; a scalar is a one-item list when
// scalarOK.
func (d *doc) list(n *yaml.Node, what string, scalarOK bool) ([]*yaml.Node, bool) {
	n = d.deref(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind == yaml.ScalarNode && scalarOK {
		return []*yaml.Node{n}, true
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s must be a list, not %s", what, kindName(n))
		return nil, false
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		d.budget--
		if d.budget < 0 {
			return nil, false
		}
		out = append(out, d.deref(c))
	}
	return out, true
}

// strList reads a list of strings (or one string when scalarOK).
func (d *doc) strList(n *yaml.Node, what string, scalarOK bool) ([]string, []*yaml.Node, bool) {
	items, ok := d.list(n, what, scalarOK)
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(items))
	nodes := make([]*yaml.Node, 0, len(items))
	for _, it := range items {
		s, ok2 := d.str(it, what+" item")
		if !ok2 {
			ok = false
			continue
		}
		out = append(out, s)
		nodes = append(nodes, it)
	}
	return out, nodes, ok
}
