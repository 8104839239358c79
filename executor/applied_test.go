package executor

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// TestAppliedState_roundTrip writes applied state as a rollout records it
// and reads it back as the daemon and the CLI do: the spec, the connection,
// the holds and the version history come back in the planner's types.
func TestAppliedState_roundTrip(t *testing.T) {
	st, err := state.Open(t.Context(), "sqlite:///"+t.TempDir()+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	specA := &planner.Spec{Service: "web", Role: "web", Image: "reg/web:a", Env: map[string]string{"A": "1"}}
	specB := &planner.Spec{Service: "web", Role: "web", Image: "reg/web:b"}
	conn := &planner.Host{Name: "h1", Address: "10.0.0.1", User: "deploy", Port: 2222, Jump: "bastion"}
	put := func(spec *planner.Spec, conn *planner.Host, version, commit string) {
		data, err := encodeApplied(spec, conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutApplied(t.Context(), state.Applied{Repo: "r", Service: "web", Role: "web", Host: "h1", Version: version, Commit: commit, Spec: data}); err != nil {
			t.Fatal(err)
		}
	}
	put(specA, nil, "va", "c1")
	put(specB, conn, "vb", "c2")
	if err := st.PutHold(t.Context(), state.Hold{Repo: "r", Service: "web", Version: "vb"}); err != nil {
		t.Fatal(err)
	}

	applied, holds, err := LoadApplied(t.Context(), st, "r")
	if err != nil {
		t.Fatal(err)
	}
	want := []planner.Applied{{Target: planner.Target{Service: "web", Role: "web", Host: "h1"}, Version: "vb", Commit: "c2", Spec: *specB, Conn: conn}}
	if !reflect.DeepEqual(applied, want) {
		t.Errorf("LoadApplied = %+v, want %+v", applied, want)
	}
	if want := []planner.Hold{{Service: "web", Version: "vb"}}; !reflect.DeepEqual(holds, want) {
		t.Errorf("holds = %+v, want %+v", holds, want)
	}

	hist, err := LoadHistory(t.Context(), st, "r", "web")
	if err != nil {
		t.Fatal(err)
	}
	wantHist := []planner.AppliedVersion{{Role: "web", Version: "vb", Commit: "c2", Spec: *specB}, {Role: "web", Version: "va", Commit: "c1", Spec: *specA}}
	if !reflect.DeepEqual(hist, wantHist) {
		t.Errorf("LoadHistory = %+v, want %+v", hist, wantHist)
	}

	// A stored spec that is not JSON is an error naming the target.
	if err := st.PutApplied(t.Context(), state.Applied{Repo: "r", Service: "web", Role: "web", Host: "h2", Version: "vx", Spec: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadApplied(t.Context(), st, "r"); err == nil || !strings.Contains(err.Error(), "web/web@h2") {
		t.Errorf("LoadApplied of a broken spec: err = %v, want one naming web/web@h2", err)
	}
	if _, err := LoadHistory(t.Context(), st, "r", "web"); err == nil || !strings.Contains(err.Error(), "version vx") {
		t.Errorf("LoadHistory of a broken spec: err = %v, want one naming version vx", err)
	}
}

// A bare spec (no connection recorded) decodes with a nil connection.
func TestDecodeApplied_bareSpec(t *testing.T) {
	spec, conn, err := decodeApplied([]byte(`{"service":"web","role":"web","image":"i"}`), "h1")
	if err != nil || conn != nil || spec.Image != "i" {
		t.Errorf("decodeApplied = %+v, %+v, %v", spec, conn, err)
	}
}

func TestLockName(t *testing.T) {
	// The name is shared by every bosun that rolls out from one store:
	// changing it lets an old and a new binary roll one service at once.
	if got := LockName("fleet", "web"); got != "rollout:fleet:web" {
		t.Errorf("LockName = %q", got)
	}
}

func TestFailedStatus(t *testing.T) {
	step := &StepError{Host: "h2", Service: "web", Role: "web", Step: StepHealth, Err: errors.New("unhealthy")}
	for _, c := range []struct {
		name string
		err  error
		want state.Status
	}{
		{"nothing had switched", &RolloutError{Service: "web", Err: step}, state.StatusFailed},
		{"switched hosts put back", fmt.Errorf("apply: %w", &RolloutError{Service: "web", Err: step, RolledBack: []string{"web/web@h1"}}), state.StatusRolledBack},
		{"a host could not be put back", &RolloutError{Service: "web", Err: step, RolledBack: []string{"web/web@h1"}, Undo: []error{errors.New("web/web@h3: start: gone")}}, state.StatusFailed},
		{"not a rollout error", errors.New("registry login for web: no secret"), state.StatusFailed},
	} {
		if got := failedStatus(c.err); got != c.want {
			t.Errorf("%s: failedStatus = %s, want %s", c.name, got, c.want)
		}
	}
}
