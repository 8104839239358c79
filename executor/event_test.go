package executor

import (
	"strings"
	"testing"
)

// A store event holds the version, the message and the log lines; the
// lines are bounded from a line's start, never cut inside one.
func TestVersioned_logs(t *testing.T) {
	ev := Event{Version: "abc", Message: "health: timeout", Logs: "line 1\nline 2"}
	if got, want := versioned(ev), "abc: health: timeout\ncontainer log (last lines):\nline 1\nline 2"; got != want {
		t.Errorf("versioned = %q, want %q", got, want)
	}
	if got := (Event{Step: StepHealth, Status: StatusFailed, Message: "m", Logs: "x"}).String(); strings.Contains(got, "container log") {
		t.Errorf("String shows the logs: %q", got)
	}
	long := strings.Repeat("a", 100) + "\n" + strings.Repeat("b\n", eventLogBytes)
	got := eventLogs(long)
	if len(got) > eventLogBytes || strings.Contains(got, "a") || !strings.HasPrefix(got, "b\n") {
		t.Errorf("eventLogs of %d bytes = %d bytes starting %q", len(long), len(got), got[:min(len(got), 10)])
	}
	if got := eventLogs("short\nlog"); got != "short\nlog" {
		t.Errorf("eventLogs of a short log = %q", got)
	}
}
