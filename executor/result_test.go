package executor

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// TestResult_WriteTo_columns prints one line per service, and the host
// counts start in one column whatever the status, the longest being
// rolled_back.
func TestResult_WriteTo_columns(t *testing.T) {
	r := &Result{Services: []ServiceResult{
		{Service: "shop", Status: state.StatusDeployed, Deployed: []planner.Target{{Host: "web-1"}}, Duration: time.Second},
		{Service: "api", Status: state.StatusRolledBack, RolledBack: []planner.Target{{Host: "web-1"}}, Err: errors.New("health"), Duration: time.Second},
		{Service: "jobs", Status: state.StatusFailed, Err: errors.New("pull"), Duration: time.Second},
	}}
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	count := regexp.MustCompile(`\d+ deployed`)
	col := -1
	lines := 0
	for _, line := range strings.Split(b.String(), "\n") {
		m := count.FindStringIndex(line)
		if m == nil {
			continue
		}
		i := m[0]
		lines++
		if !strings.Contains(line, string(state.StatusRolledBack)+" ") && strings.HasPrefix(line, "api") {
			t.Errorf("line %q: status rolled_back is cut or glued to the count", line)
		}
		if col >= 0 && i != col {
			t.Errorf("counts start at column %d and %d:\n%s", col, i, b.String())
		}
		col = i
	}
	if lines != 3 {
		t.Fatalf("%d service lines, want 3:\n%s", lines, b.String())
	}
}
