package executor

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/internal/testutil"
)

// The shared bed: two test servers started by the first test that asks for
// them and closed when the test binary ends (TestMain). Starting servers is
// the slow part of a test on them, so the rollout tests of apply_test.go
// share one bed; each gives its service a name (and proxy host) of its own,
// has its own store, executor and event log, and puts back whatever
// server-wide thing it changes (sshd, a paused server, the proxy's image),
// so no test sees another's effects.
var shared struct {
	once sync.Once
	bed  *testbed.Bed
	err  error
	log  testutil.SyncBuffer // the launch's progress lines

	mu   sync.Mutex
	apps map[string]string // "version/kind" -> pushed reference
}

// TestMain runs the tests and then closes the shared bed, if one was started.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.bed != nil {
		if err := shared.bed.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close the shared testbed: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// sharedBed returns the package's two-server bed, launching it on the first
// call. Like testbed.Start it skips the test under -short or without Docker
// (fails under BOSUN_TEST_REQUIRE=1).
func sharedBed(t *testing.T) *testbed.Bed {
	t.Helper()
	testbed.RequireDocker(t)
	shared.once.Do(func() {
		logf := func(format string, args ...any) { fmt.Fprintf(&shared.log, format+"\n", args...) }
		shared.bed, shared.err = testbed.Launch(context.Background(), testbed.Options{Servers: 2, Logf: logf})
	})
	if shared.err != nil {
		t.Fatalf("start the shared testbed: %v\n%s", shared.err, shared.log.String())
	}
	return shared.bed
}

// newSharedEnv is a bedEnv on the shared bed with a store, executor and
// event log of the test's own.
func newSharedEnv(t *testing.T) *bedEnv {
	t.Helper()
	return newBedEnvOn(t, sharedBed(t))
}

// sharedApp pushes the sample app of version and kind to the shared bed's
// registry once per test binary and returns its reference.
func sharedApp(t *testing.T, version string, kind testbed.AppKind) string {
	t.Helper()
	bed := sharedBed(t)
	key := version + "/" + kind.String()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if ref, ok := shared.apps[key]; ok {
		return ref
	}
	ref := bed.PushApp(t, "app", version, kind)
	if shared.apps == nil {
		shared.apps = map[string]string{}
	}
	shared.apps[key] = ref
	return ref
}
