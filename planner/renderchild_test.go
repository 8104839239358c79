package planner

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

// cpuTime is the CPU time this process has used so far (user + system).
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// children lists the processes whose parent is this one.
func children(t *testing.T) []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, f)
		}
	}
	return out
}

// TestPlan_runawayTemplateStops: four service files render a template
// whose nested loops over a 3,000-item list never end. The plan reports the
// timeout at the template, and once Plan returned nothing renders any more:
// the process uses no CPU over the next second and has no child left.
// Not parallel: it changes templateTimeout, and measures this process.
func TestPlan_runawayTemplateStops(t *testing.T) {
	old := templateTimeout
	templateTimeout = 300 * time.Millisecond
	defer func() { templateTimeout = old }()

	items := make([]string, 3000)
	for i := range items {
		items[i] = strconv.Itoa(i)
	}
	list := "[" + strings.Join(items, ", ") + "]"
	files := fstest.MapFS{
		"fleet.yml":               {Data: []byte("servers:\n  web-1: {host: 10.0.0.11}\n")},
		"templates/spin.yml.tmpl": {Data: []byte("{{ range .items }}{{ range $.items }}{{ range $.items }}{{ end }}{{ end }}{{ end }}service: {{ .name }}\nimage: a/b:1\nservers: [web-1]\n")},
	}
	for i := range 4 {
		files[fmt.Sprintf("services/s%d.yml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("template: spin\nvars: {name: s%d, items: %s}\n", i, list))}
	}
	_, err := New(Config{SecretKey: []byte("k")}).Plan(t.Context(), files, Input{Repo: "r", Commit: "c"})
	require.ErrorContains(t, err, "rendering took longer than 300ms")
	require.NotContains(t, err.Error(), "line 0 column 0", "a timeout has no template position")

	before := cpuTime(t)
	time.Sleep(time.Second)
	used := cpuTime(t) - before
	t.Logf("CPU used in the second after Plan returned: %v", used)
	require.Less(t, used, 100*time.Millisecond, "rendering goes on after Plan returned")
	require.Empty(t, children(t), "a render process is left running")
}

// TestPlan_templatesRenderInOneChild: a load of 30 templated service files
// (and a Kamal one) starts one render child for all of them, and none is
// left once Plan returned. Not parallel: it counts this process's children.
func TestPlan_templatesRenderInOneChild(t *testing.T) {
	files := fstest.MapFS{
		"fleet.yml":              {Data: []byte("servers:\n  web-1: {host: 10.0.0.11}\n")},
		"templates/app.yml.tmpl": {Data: []byte("service: {{ .name }}\nimage: a/{{ .name }}:{{ .tag }}\nservers: [web-1]\nproxy: {host: {{ .name }}.example.com}\n")},
		"services/kamal.yml":     {Data: []byte("service: kamal\nimage: a/kamal:1\nservers: [web-1]\n")},
	}
	for i := range 30 {
		files[fmt.Sprintf("services/s%02d.yml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("template: app\nvars: {name: s%02d, tag: %d}\n", i, i))}
	}
	before := renderChildrenStarted.Load()
	pl, err := New(Config{SecretKey: []byte("k")}).Plan(t.Context(), files, Input{Repo: "r", Commit: "c"})
	require.NoError(t, err)
	require.Len(t, pl.Changes, 31)
	for _, c := range pl.Changes {
		if c.Target.Service != "kamal" {
			var i int
			fmt.Sscanf(c.Target.Service, "s%d", &i)
			require.Equal(t, fmt.Sprintf("a/%s:%d", c.Target.Service, i), c.Desired.Image, "each file renders with its own vars")
		}
	}
	require.Equal(t, int64(1), renderChildrenStarted.Load()-before, "render children started for 30 templated files")
	require.Empty(t, children(t), "a render process is left running")
}

// TestPlan_runawayTemplateAmongGood: one service file's template never
// ends, among 20 whose template is fine. Only the runaway file is
// reported, at its template: key; the files rendered after it was killed
// render in a fresh child. Not parallel: it changes templateTimeout.
func TestPlan_runawayTemplateAmongGood(t *testing.T) {
	old := templateTimeout
	templateTimeout = 300 * time.Millisecond
	defer func() { templateTimeout = old }()

	files := fstest.MapFS{
		"fleet.yml":               {Data: []byte("servers:\n  web-1: {host: 10.0.0.11}\n")},
		"templates/app.yml.tmpl":  {Data: []byte("service: {{ .name }}\nimage: a/b:1\nservers: [web-1]\nproxy: {host: {{ .name }}.example.com}\n")},
		"templates/spin.yml.tmpl": {Data: []byte("{{ range 3000000000 }}{{ end }}service: {{ .name }}\nimage: a/b:1\nservers: [web-1]\nproxy: {host: {{ .name }}.example.com}\n")},
	}
	for i := range 21 {
		tmpl := "app"
		if i == 5 {
			tmpl = "spin"
		}
		files[fmt.Sprintf("services/s%02d.yml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("vars: {name: s%02d}\ntemplate: %s\n", i, tmpl))}
	}
	before := renderChildrenStarted.Load()
	_, err := New(Config{SecretKey: []byte("k")}).Plan(t.Context(), files, Input{Repo: "r", Commit: "c"})
	var cerrs ConfigErrors
	require.ErrorAs(t, err, &cerrs)
	require.Len(t, cerrs, 1, "only the runaway file is reported: %v", err)
	require.Equal(t, "services/s05.yml", cerrs[0].File)
	require.Equal(t, 2, cerrs[0].Line, "at the template: key")
	require.Contains(t, cerrs[0].Msg, "templates/spin.yml.tmpl: rendering took longer than 300ms")
	started := renderChildrenStarted.Load() - before
	require.True(t, started >= 1 && started <= 2, "%d render children started: one, and a fresh one if files were left after the kill", started)
	require.Empty(t, children(t), "a render process is left running")
}

// TestRenderer_freshChildAfterKill: after a file is killed at its
// timeout, the next file of the same renderer renders in a new child; a
// file's template error stays that file's and keeps the child.
func TestRenderer_freshChildAfterKill(t *testing.T) {
	old := templateTimeout
	templateTimeout = 200 * time.Millisecond
	defer func() { templateTimeout = old }()

	before := renderChildrenStarted.Load()
	r := newRenderer(t.Context())
	out, err := r.render("a", "a={{ .v }}", map[string]any{"v": 1})
	require.NoError(t, err)
	require.Equal(t, "a=1", string(out))
	_, err = r.render("bad", "{{ .missing }}", map[string]any{})
	require.ErrorContains(t, err, `map has no entry for key "missing"`)
	require.Equal(t, int64(1), renderChildrenStarted.Load()-before, "a template error keeps the child")
	_, err = r.render("spin", "{{ range 3000000000 }}{{ end }}", nil)
	require.ErrorIs(t, err, errRenderTimeout)
	out, err = r.render("b", "b={{ .v }}", map[string]any{"v": "x"})
	require.NoError(t, err)
	require.Equal(t, "b=x", string(out))
	require.Equal(t, int64(2), renderChildrenStarted.Load()-before, "children started")
	r.close()
	require.Empty(t, children(t), "a render process is left running")
}

// TestRenderer_totalBudget: once the renders of a load used up
// templateTotalTimeout, the file running is stopped and the rest are not
// rendered. Not parallel: it changes the timeouts.
func TestRenderer_totalBudget(t *testing.T) {
	oldT, oldTotal := templateTimeout, templateTotalTimeout
	templateTimeout, templateTotalTimeout = 300*time.Millisecond, 500*time.Millisecond
	defer func() { templateTimeout, templateTotalTimeout = oldT, oldTotal }()

	r := newRenderer(t.Context())
	defer r.close()
	spin := "{{ range 3000000000 }}{{ end }}"
	_, err := r.render("one", spin, nil)
	require.ErrorIs(t, err, errRenderTimeout, "the first file runs past its own 300ms")
	_, err = r.render("two", spin, nil)
	require.ErrorIs(t, err, errRenderBudget, "the second runs past the 500ms of all renders")
	start := time.Now()
	_, err = r.render("three", "fine", nil)
	require.ErrorIs(t, err, errRenderBudget, "nothing renders once the budget is spent")
	require.Less(t, time.Since(start), 100*time.Millisecond)
}
