package daemon

import (
	"context"
	"time"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/state"
)

// cancelPoll is how often the daemon reads a running deployment's events
// for a cancel request (state.CancelAsked).
const cancelPoll = 250 * time.Millisecond

// cancelWatch returns the executor's ApplyOpts.Watch for a sync run: while
// a service's deployment runs, its events are read every cancelPoll, and
// a person's cancel request (added by the dashboard, on this replica or
// another) cancels the run with an *executor.Cancelled cause. The executor
// then stops as on any cancel, leaving every host on its old or new
// version, and the run is not retried (classify).
func (d *Daemon) cancelWatch(ctx context.Context, cancel context.CancelCauseFunc) func(int64) func() {
	return func(id int64) func() {
		wctx, stop := context.WithCancel(ctx)
		go func() {
			t := time.NewTicker(cancelPoll)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
				}
				evs, err := d.deps.Store.ListEvents(wctx, id)
				if err != nil {
					if wctx.Err() == nil {
						d.log.WarnContext(wctx, "cancel requests not read", "deployment", id, "err", err)
					}
					continue
				}
				if e, ok := state.CancelAsked(evs); ok {
					d.log.InfoContext(wctx, "rollout cancelled", "deployment", id, "actor", e.Actor)
					cancel(&executor.Cancelled{Actor: e.Actor})
					return
				}
			}
		}()
		return stop
	}
}
