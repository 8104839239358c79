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
