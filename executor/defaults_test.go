package executor

import (
	"testing"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/proxy"
)

// TestDefaults_plannerAgreesWithProxy: the timeouts a service gets when it
// sets none (the planner's, which the executor falls back to) are the ones
// bosun-proxy applies to a request without them, as Kamal's are
// kamal-proxy's.
func TestDefaults_plannerAgreesWithProxy(t *testing.T) {
	if planner.DefaultDeployTimeout != proxy.DefaultDeployTimeout {
		t.Errorf("deploy timeout: planner %s, proxy %s", planner.DefaultDeployTimeout, proxy.DefaultDeployTimeout)
	}
	if planner.DefaultDrainTimeout != proxy.DefaultDrainTimeout {
		t.Errorf("drain timeout: planner %s, proxy %s", planner.DefaultDrainTimeout, proxy.DefaultDrainTimeout)
	}
}
