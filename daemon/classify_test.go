package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/webhook"
)

func TestClassify(t *testing.T) {
	step := &executor.StepError{Host: "web-1", Service: "shop", Role: "web", Step: executor.StepHealth, Err: errors.New("unhealthy")}
	for _, tc := range []struct {
		name      string
		err       error
		summary   string
		state     webhook.State
		desc      string
		wantRetry bool
	}{
		{"success", nil, "shop on web-1", webhook.StateSuccess, "shop on web-1 in 1.2s", false},
		{"config error", planner.ConfigErrors{{File: "services/shop.yml", Line: 3, Col: 1, Msg: "image: required"}}, "", webhook.StateFailure, "invalid config: services/shop.yml:3:1: image: required", false},
		{"rollout failed and rolled back",
			fmt.Errorf("apply: %w", &executor.RolloutError{Service: "shop", Err: step, RolledBack: []string{"shop/web@web-2"}}), "",
			webhook.StateFailure, "rollout of shop failed: web-1: shop/web: health: unhealthy\nrolled back: shop/web@web-2 (rolled back)", false},
		{"rollout failed on the first host",
			errors.Join(&executor.RolloutError{Service: "shop", Err: step}, errors.New("other service")), "",
			webhook.StateFailure, "rollout of shop failed: web-1: shop/web: health: unhealthy", false},
		{"lock lost mid-rollout",
			&executor.RolloutError{Service: "shop", Err: fmt.Errorf("%w of shop; rollout stopped: %w", executor.ErrLockLost, step)}, "",
			webhook.StateError, "", true},
		{"interrupted", &executor.RolloutError{Service: "shop", Err: context.Canceled}, "", webhook.StatePending, "interrupted; bosun resumes when it restarts", true},
		{"rollout stopped at a host that is unreachable",
			&executor.RolloutError{Service: "shop", Err: &executor.StepError{Host: "web-2", Service: "shop", Role: "web", Step: executor.StepConnect, Err: errors.New("dial tcp 10.0.0.2:22: connection refused")}, RolledBack: []string{"shop/web@web-1"}}, "",
			webhook.StatePending, "retrying: rollout of shop failed: web-2: shop/web: connect: dial tcp 10.0.0.2:22: connection refused\nrolled back: shop/web@web-1", true},
		{"host key refused",
			&executor.RolloutError{Service: "shop", Err: &executor.StepError{Host: "web-2", Service: "shop", Role: "web", Step: executor.StepConnect, Err: &executor.HostKeyError{Host: "web-2", Addr: "10.0.0.2:22"}}}, "",
			webhook.StateFailure, "", false},
		{"host unreachable", errors.New("dial web-1: connection refused"), "", webhook.StateError, "dial web-1: connection refused", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, desc, retry := classify(tc.err, tc.summary, 1234*time.Millisecond)
			if tc.desc == "" && tc.err != nil {
				tc.desc = tc.err.Error()
			}
			if st != tc.state || desc != tc.desc || retry != tc.wantRetry {
				t.Errorf("classify = %s %q retry=%v, want %s %q retry=%v", st, desc, retry, tc.state, tc.desc, tc.wantRetry)
			}
		})
	}
}
