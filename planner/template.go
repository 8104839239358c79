package planner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
)

// maxRendered bounds a template's output, so a runaway range cannot eat
// the daemon's memory.
const maxRendered = 1 << 20

// templateFuncs is the documented function set of service templates (see
// docs/config.md "Templates").
var templateFuncs = template.FuncMap{
	"default": func(def, v any) any {
		if isEmptyValue(v) {
			return def
		}
		return v
	},
	"required": func(msg string, v any) (any, error) {
		if isEmptyValue(v) {
			return nil, errors.New(msg)
		}
		return v, nil
	},
	"quote": func(v any) string {
		b, _ := json.Marshal(fmt.Sprint(v)) // a JSON string is a valid YAML double-quoted scalar
		return string(b)
	},
	"toYaml": func(v any) (string, error) {
		b, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(b), "\n"), err
	},
	"toJson": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", max(n, 0))
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	},
	"nindent": func(n int, s string) string {
		pad := strings.Repeat(" ", max(n, 0))
		return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	},
	"join": func(sep string, v any) (string, error) {
		items, ok := v.([]any)
		if !ok {
			if ss, ok := v.([]string); ok {
				return strings.Join(ss, sep), nil
			}
			return "", fmt.Errorf("join: want a list, got %T", v)
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = fmt.Sprint(it)
		}
		return strings.Join(parts, sep), nil
	},
	"lower":   strings.ToLower,
	"upper":   strings.ToUpper,
	"trim":    strings.TrimSpace,
	"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
}

func isEmptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case int:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// loadTemplates parses every templates/*.yml.tmpl; a template that does not
// parse is reported and left out. It returns the parsed templates and their
// sources, by name.
func loadTemplates(fsys fs.FS, r *report) (map[string]*template.Template, map[string]string) {
	out, srcs := map[string]*template.Template{}, map[string]string{}
	files, _ := fs.Glob(fsys, "templates/*.yml.tmpl")
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".yml.tmpl")
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			r.errs = append(r.errs, &ConfigError{File: f, Msg: fmt.Sprintf("cannot read the template: %v", err)})
			continue
		}
		if msg := checkName(name); msg != "" {
			r.errs = append(r.errs, &ConfigError{File: f, Msg: "template name: " + msg + "; rename the file"})
			continue
		}
		t, err := template.New(f).Option("missingkey=error").Funcs(templateFuncs).Parse(string(data))
		if err != nil {
			line, col, msg := templateErrPos(f, err)
			r.errs = append(r.errs, &ConfigError{File: f, Line: line, Col: col, Msg: "template does not parse: " + msg})
			continue
		}
		out[name], srcs[name] = t, string(data)
	}
	return out, srcs
}

var templateErrRE = regexp.MustCompile(`^template: ([^:]+):(\d+)(?::(\d+))?: (.*)$`)

// templateErrPos pulls the line and column out of a text/template error.
func templateErrPos(file string, err error) (line, col int, msg string) {
	msg = err.Error()
	if m := templateErrRE.FindStringSubmatch(msg); m != nil && m[1] == file {
		line, _ = strconv.Atoi(m[2])
		col, _ = strconv.Atoi(m[3])
		msg = m[4]
		if _, rest, ok := strings.Cut(msg, "> "); ok && strings.HasPrefix(msg, "executing") {
			msg = rest
			msg = strings.TrimPrefix(msg, ": ")
		}
		msg = strings.TrimPrefix(msg, ": ")
	}
	return line, col, msg
}

type limitedBuffer struct{ bytes.Buffer }

var errTooLarge = fmt.Errorf("the rendered file is over %d bytes", maxRendered)

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

// renderService renders a templated service file ({template, vars}) and
// parses the result. d is the service file's doc.
func (l *loader) renderService(d *doc, root *yaml.Node) *svcDef {
	fs, ok := d.fields(root, "templated service file", keys{known: []string{"template", "vars", "x-bosun"}, allowX: true})
	if !ok {
		return nil
	}
	if xb, ok := fs["x-bosun"]; ok {
		d.errf(xb, "x-bosun next to template: is not read: put it in the template (it may use vars)")
	}
	tn := d.deref(fs["template"])
	name, ok := d.str(tn, "template")
	if !ok {
		return nil
	}
	file := "templates/" + name + ".yml.tmpl"
	if _, ok := l.templates[name]; !ok {
		if !l.badTemplates[file] {
			d.errf(tn, "template %q not found: there is no %s%s", name, file, didYouMean(name, mapKeys(l.templates)))
		}
		return nil
	}
	vars := map[string]any{}
	varNodes := map[string]*yaml.Node{}
	if vn, ok := fs["vars"]; ok {
		ps, ok := d.pairs(vn, "vars")
		if !ok {
			return nil
		}
		for _, p := range ps {
			var v any
			if err := p.val.Decode(&v); err != nil {
				d.errf(p.val, "vars.%s: %v", p.key.Value, err)
				return nil
			}
			vars[p.key.Value] = v
			varNodes[p.key.Value] = d.deref(p.val)
		}
	}
	out, err := l.renders.render(file, l.templateSrc[name], vars)
	if errors.Is(err, errRenderTimeout) {
		d.errf(tn, "%s: rendering took longer than %v: simplify the template's loops", file, templateTimeout)
		return nil
	}
	if errors.Is(err, errRenderBudget) {
		d.errf(tn, "%s: not rendered: the commit's templates took longer than %v in all: simplify their loops", file, templateTotalTimeout)
		return nil
	}
	if err != nil {
		_, _, msg := templateErrPos(file, err)
		line, col, _ := templateErrPos(file, err)
		at := tn
		if m := missingKeyRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("%s needs var %q (line %d column %d): add it under vars", file, m[1], line, col)
		} else {
			msg = fmt.Sprintf("%s line %d column %d: %s", file, line, col, msg)
		}
		d.errf(at, "%s", msg)
		return nil
	}
	rd := &doc{file: d.file, r: d.r, budget: d.budget,
		via: &renderedFrom{template: file, line: tn.Line, col: tn.Column, vars: varNodes}}
	rroot := rd.parse(out)
	if rroot == nil {
		return nil
	}
	s := parseService(rd, rroot)
	if s != nil {
		s.template = file
	}
	return s
}

// templateTimeout bounds one file's render (in the load's child process,
// see renderchild.go). text/template has no step budget, and loops that print
// nothing never reach the output cap.
var templateTimeout = 5 * time.Second

var missingKeyRE = regexp.MustCompile(`map has no entry for key "([^"]*)"`)
