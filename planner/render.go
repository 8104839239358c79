package planner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/bosunhq/bosun/internal/commitsha"
)

// counts tallies the actions of a plan.
type counts struct{ create, update, remove, unchanged, held int }

func (pl *Plan) counts() counts {
	var c counts
	for _, ch := range pl.Changes {
		switch ch.Action {
		case ActionCreate:
			c.create++
		case ActionUpdate:
			c.update++
		case ActionRemove:
			c.remove++
		case ActionUnchanged:
			c.unchanged++
		case ActionHeld:
			c.held++
		}
	}
	return c
}

func (c counts) changing() int { return c.create + c.update + c.remove }

func (c counts) String() string {
	return fmt.Sprintf("%d to create, %d to update, %d to remove, %d unchanged, %d held",
		c.create, c.update, c.remove, c.unchanged, c.held)
}

var actionMark = map[Action]string{
	ActionCreate: "+", ActionUpdate: "~", ActionRemove: "-", ActionUnchanged: "=", ActionHeld: "#",
}

// serviceGroups splits the changes by service, keeping their order.
func (pl *Plan) serviceGroups() [][]Change {
	var out [][]Change
	for i, c := range pl.Changes {
		if i == 0 || pl.Changes[i-1].Service != c.Service {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], c)
	}
	return out
}

func versionText(c Change) string {
	switch {
	case c.Action == ActionRemove:
		return c.Current.Version
	case c.Current != nil && c.Current.Version != c.Version:
		return c.Current.Version + " -> " + c.Version
	}
	return c.Version
}

// WriteTo writes the plan as text for terminals and logs: a summary line,
// then per service every target that changes (with its changed fields),
// the services that do not change, and the warnings and notices. The
// output is deterministic and holds no secret values or times.
func (pl *Plan) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	c := pl.counts()
	dest := ""
	if pl.Destination != "" {
		dest = " (destination " + pl.Destination + ")"
	}
	fmt.Fprintf(&b, "Plan for %s%s at %s: %s.\n", pl.Repo, dest, commitsha.Short(pl.Commit), c)
	var quiet []string
	for _, g := range pl.serviceGroups() {
		if !groupChanges(g) {
			quiet = append(quiet, g[0].Service)
			continue
		}
		fmt.Fprintf(&b, "\nservice %s\n", g[0].Service)
		unchanged := 0
		shown := map[string]string{} // version -> the create that listed its settings
		for _, ch := range g {
			if ch.Action == ActionUnchanged {
				unchanged++
				continue
			}
			fmt.Fprintf(&b, "  %s %s %s@%s  %s", actionMark[ch.Action], ch.Action, ch.Role, ch.Host, versionText(ch))
			if ch.Disruptive {
				b.WriteString("  (disruptive: stop, then start)")
			}
			if len(ch.Dangers) > 0 {
				b.WriteString("  (DANGEROUS settings)")
			}
			b.WriteByte('\n')
			for _, dg := range ch.Dangers {
				fmt.Fprintf(&b, "      ! dangerous, %s: %s (%s)\n", dg.Kind, dg.Setting, dg.Why)
			}
			if ch.Action == ActionCreate {
				if first, ok := shown[ch.Version]; ok {
					fmt.Fprintf(&b, "      (settings as %s)\n", first)
					continue
				}
				shown[ch.Version] = ch.Role + "@" + ch.Host
			}
			for _, f := range ch.Fields {
				if ch.Action == ActionCreate {
					fmt.Fprintf(&b, "      %s: %s\n", f.Field, textValue(f.New))
					continue
				}
				fmt.Fprintf(&b, "      %s: %s -> %s\n", f.Field, textValue(f.Old), textValue(f.New))
			}
		}
		if unchanged > 0 {
			fmt.Fprintf(&b, "  = %d unchanged\n", unchanged)
		}
	}
	if len(quiet) > 0 {
		fmt.Fprintf(&b, "\nunchanged: %s\n", strings.Join(quiet, ", "))
	}
	writeList(&b, "Holds this apply ends (git asks for the held version)", pl.ReleasedHolds)
	writeList(&b, "Takeover from Kamal", pl.Takeovers)
	writeList(&b, "Warnings", pl.Warnings)
	writeList(&b, "Notices", pl.Notices)
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

func groupChanges(g []Change) bool {
	for _, c := range g {
		if c.Action != ActionUnchanged {
			return true
		}
	}
	return false
}

func textValue(s string) string {
	if s == "" {
		return "(none)"
	}
	if strings.ContainsAny(s, " \t\n\"") || strings.TrimSpace(s) != s {
		q, _ := json.Marshal(s)
		return string(q)
	}
	return s
}

func writeList(b *bytes.Buffer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", title)
	for _, it := range items {
		fmt.Fprintf(b, "  - %s\n", it)
	}
}

// WriteMarkdown writes the plan as Markdown for a pull request comment.
// The first line says how many targets change; each service that changes
// gets a collapsible <details> section. No secret values, no times.
func (pl *Plan) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	c := pl.counts()
	switch n := c.changing(); n {
	case 0:
		b.WriteString("**bosun plan: no changes.**")
	case 1:
		b.WriteString("**bosun plan: 1 target to change.**")
	default:
		fmt.Fprintf(&b, "**bosun plan: %d targets to change.**", n)
	}
	dest := ""
	if pl.Destination != "" {
		dest = " (destination `" + mdCode(pl.Destination) + "`)"
	}
	fmt.Fprintf(&b, " %s — `%s`%s at `%s`\n", c, mdCode(pl.Repo), dest, mdCode(commitsha.Short(pl.Commit)))
	var quiet []string
	for _, g := range pl.serviceGroups() {
		if !groupChanges(g) {
			quiet = append(quiet, "`"+mdCode(g[0].Service)+"`")
			continue
		}
		var gc counts
		for _, ch := range g {
			(&Plan{Changes: []Change{ch}}).addTo(&gc)
		}
		fmt.Fprintf(&b, "\n<details><summary><b>%s</b>: %s</summary>\n\n", html.EscapeString(g[0].Service), groupSummary(gc))
		b.WriteString("| | Target | Action | Version |\n|---|---|---|---|\n")
		for _, ch := range g {
			if ch.Action == ActionUnchanged {
				continue
			}
			action := string(ch.Action)
			if ch.Disruptive {
				action += " (disruptive)"
			}
			if len(ch.Dangers) > 0 {
				action += " ⚠️ **dangerous**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", actionMark[ch.Action], mdCell(ch.Role+"@"+ch.Host), action,
				mdCell(strings.ReplaceAll(versionText(ch), " -> ", " → ")))
		}
		writeDangers(&b, g)
		writeFieldTables(&b, g)
		b.WriteString("\n</details>\n")
	}
	if len(quiet) > 0 {
		fmt.Fprintf(&b, "\nUnchanged: %s\n", strings.Join(quiet, ", "))
	}
	mdList(&b, "Holds this apply ends (git asks for the held version)", pl.ReleasedHolds)
	mdList(&b, "Takeover from Kamal", pl.Takeovers)
	mdList(&b, "Warnings", pl.Warnings)
	mdList(&b, "Notices", pl.Notices)
	_, err := w.Write(b.Bytes())
	return err
}

func (pl *Plan) addTo(c *counts) {
	x := pl.counts()
	c.create += x.create
	c.update += x.update
	c.remove += x.remove
	c.unchanged += x.unchanged
	c.held += x.held
}

func groupSummary(c counts) string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{c.create, "to create"}, {c.update, "to update"}, {c.remove, "to remove"}, {c.held, "held"}, {c.unchanged, "unchanged"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// writeFieldTables writes one table of changed fields per distinct diff,
// naming the targets that share it.
func writeFieldTables(b *bytes.Buffer, g []Change) {
	type diff struct {
		key     string
		targets []string
		fields  []FieldChange
		create  bool
	}
	var diffs []*diff
	byKey := map[string]*diff{}
	for _, ch := range g {
		if len(ch.Fields) == 0 {
			continue
		}
		kb, _ := json.Marshal(ch.Fields)
		key := string(ch.Action) + string(kb)
		d := byKey[key]
		if d == nil {
			d = &diff{key: key, fields: ch.Fields, create: ch.Action == ActionCreate}
			byKey[key] = d
			diffs = append(diffs, d)
		}
		d.targets = append(d.targets, ch.Role+"@"+ch.Host)
	}
	for _, d := range diffs {
		if d.create {
			fmt.Fprintf(b, "\nSettings of %s (new):\n\n| Setting | Value |\n|---|---|\n", mdCell(strings.Join(d.targets, ", ")))
			for _, f := range d.fields {
				fmt.Fprintf(b, "| %s | %s |\n", mdCell(f.Field), mdCell(f.New))
			}
			continue
		}
		fmt.Fprintf(b, "\nChanged on %s:\n\n| Field | Old | New |\n|---|---|---|\n", mdCell(strings.Join(d.targets, ", ")))
		for _, f := range d.fields {
			fmt.Fprintf(b, "| %s | %s | %s |\n", mdCell(f.Field), mdCell(f.Old), mdCell(f.New))
		}
	}
}

// writeDangers lists the dangerous settings of the changing targets, once
// per distinct list.
func writeDangers(b *bytes.Buffer, g []Change) {
	var keys []string
	byKey := map[string][]string{}
	dangers := map[string][]Danger{}
	for _, ch := range g {
		if len(ch.Dangers) == 0 || ch.Action == ActionUnchanged {
			continue
		}
		kb, _ := json.Marshal(ch.Dangers)
		k := string(kb)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
			dangers[k] = ch.Dangers
		}
		byKey[k] = append(byKey[k], ch.Role+"@"+ch.Host)
	}
	for _, k := range keys {
		fmt.Fprintf(b, "\n⚠️ **Dangerous settings** on %s (allowed by `x-bosun.allow_dangerous`):\n\n", mdCell(strings.Join(byKey[k], ", ")))
		for _, dg := range dangers[k] {
			fmt.Fprintf(b, "- **%s**: %s: %s\n", mdText(dg.Kind), mdCell(dg.Setting), mdText(dg.Why))
		}
	}
}

// mdCell formats s as inline code that is safe inside a table cell.
func mdCell(s string) string {
	if s == "" {
		return ""
	}
	s = html.EscapeString(s)
	s = strings.NewReplacer("|", "&#124;", "\n", "<br>", "`", "&#96;").Replace(s)
	return "<code>" + s + "</code>"
}

// mdCode makes s safe inside a `code span`.
func mdCode(s string) string { return strings.ReplaceAll(s, "`", "'") }

func mdList(b *bytes.Buffer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**%s**\n\n", title)
	for _, it := range items {
		fmt.Fprintf(b, "- %s\n", mdText(it))
	}
}

// planJSON is the JSON document of a plan (docs/plan-json.md).
type planJSON struct {
	SchemaVersion int               `json:"schema_version"`
	Repo          string            `json:"repo"`
	Commit        string            `json:"commit"`
	Destination   string            `json:"destination"`
	Summary       summaryJSON       `json:"summary"`
	Changes       []changeJSON      `json:"changes"`
	Services      []serviceJSON     `json:"services"`
	HostsJSON     map[string]hostJS `json:"hosts"`
	ReleasedHolds []string          `json:"released_holds"`
	Warnings      []string          `json:"warnings"`
	Takeovers     []string          `json:"takeovers"`
	Notices       []string          `json:"notices"`
}

type summaryJSON struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Remove    int `json:"remove"`
	Unchanged int `json:"unchanged"`
	Held      int `json:"held"`
}

type changeJSON struct {
	Service    string      `json:"service"`
	Role       string      `json:"role"`
	Host       string      `json:"host"`
	Action     Action      `json:"action"`
	Version    string      `json:"version"`
	OldVersion string      `json:"old_version"`
	Disruptive bool        `json:"disruptive"`
	Fields     []fieldJSON `json:"fields"`
	Dangers    []Danger    `json:"dangers"`
}

type fieldJSON struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

type serviceJSON struct {
	Name             string   `json:"name"`
	PrimaryRole      string   `json:"primary_role"`
	Roles            []string `json:"roles"`
	BootLimit        int      `json:"boot_limit"`
	BootWait         Duration `json:"boot_wait"`
	Canary           *Canary  `json:"canary"`
	RetainContainers int      `json:"retain_containers"`
	Standby          Standby  `json:"standby"`
	RegistryServer   string   `json:"registry_server"`
	// LocalRegistryPort: pulls go through an SSH forward (Kamal's local registry).
	LocalRegistryPort int `json:"local_registry_port,omitempty"`
}

type hostJS struct {
	Address string `json:"address"`
	User    string `json:"user"`
	Port    int    `json:"port"`
	Jump    string `json:"jump"`
}

// MarshalJSON encodes the plan as the documented JSON document
// (schema_version 1, docs/plan-json.md). Specs are not included.
func (pl *Plan) MarshalJSON() ([]byte, error) {
	c := pl.counts()
	doc := planJSON{
		SchemaVersion: 1, Repo: pl.Repo, Commit: pl.Commit, Destination: pl.Destination,
		Summary: summaryJSON{c.create, c.update, c.remove, c.unchanged, c.held},
		Changes: []changeJSON{}, Services: []serviceJSON{}, HostsJSON: map[string]hostJS{},
		ReleasedHolds: nonNil(pl.ReleasedHolds), Warnings: nonNil(pl.Warnings), Takeovers: nonNil(pl.Takeovers), Notices: nonNil(pl.Notices),
	}
	for _, ch := range pl.Changes {
		cj := changeJSON{Service: ch.Service, Role: ch.Role, Host: ch.Host, Action: ch.Action,
			Version: ch.Version, Disruptive: ch.Disruptive, Fields: []fieldJSON{}, Dangers: ch.Dangers}
		if cj.Dangers == nil {
			cj.Dangers = []Danger{}
		}
		if ch.Current != nil {
			cj.OldVersion = ch.Current.Version
		}
		for _, f := range ch.Fields {
			cj.Fields = append(cj.Fields, fieldJSON(f))
		}
		doc.Changes = append(doc.Changes, cj)
	}
	for _, s := range pl.Services {
		sj := serviceJSON{Name: s.Name, PrimaryRole: s.PrimaryRole, Roles: s.Roles, BootLimit: s.BootLimit,
			BootWait: s.BootWait, Canary: s.Canary, RetainContainers: s.RetainContainers, Standby: s.Standby,
			LocalRegistryPort: s.LocalRegistryPort}
		if sj.Standby == "" {
			sj.Standby = StandbyStopped
		}
		if s.Registry != nil {
			sj.RegistryServer = s.Registry.Server
		}
		doc.Services = append(doc.Services, sj)
	}
	for name, h := range pl.Hosts {
		doc.HostsJSON[name] = hostJS{Address: h.Address, User: h.User, Port: h.Port, Jump: h.Jump}
	}
	return json.Marshal(doc)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mdText escapes the characters that would start HTML in Markdown text.
var mdText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
