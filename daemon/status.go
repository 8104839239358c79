package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bosunhq/bosun/webhook"
)

// statusPoster posts commit statuses in the background, one at a time in
// the order they were queued, so that a slow or failing forge never holds
// up a rollout: the rollout goes on while its pending status is retried.
// A status still waiting for a retry when a newer one for the same commit
// and context is queued is dropped (the newer one says more).
type statusPoster struct {
	rep *webhook.Reporter
	log *slog.Logger

	mu    sync.Mutex
	queue []*queuedStatus
	wake  chan struct{} // one pending wake-up
}

type queuedStatus struct {
	s    webhook.Status
	done chan struct{} // closed once posted or given up
}

// statusAttempts and statusBackoff are how often a status is tried and how
// long the poster waits after the n-th failure (n × statusBackoff).
const (
	statusAttempts = 3
	statusBackoff  = time.Second
	// statusFlush bounds how long a stopping daemon spends on the statuses
	// still queued (one attempt each).
	statusFlush = 15 * time.Second
)

func newStatusPoster(rep *webhook.Reporter, log *slog.Logger) *statusPoster {
	return &statusPoster{rep: rep, log: log, wake: make(chan struct{}, 1)}
}

// post queues s; the channel is closed when it was posted or given up.
func (p *statusPoster) post(s webhook.Status) <-chan struct{} {
	q := &queuedStatus{s: s, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, q)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return q.done
}

// run posts queued statuses until ctx ends, then gives each status still
// queued one attempt, for statusFlush in all, and returns.
func (p *statusPoster) run(ctx context.Context) {
	var flushCtx context.Context
	for {
		q := p.next()
		if q == nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-p.wake:
			}
			continue
		}
		if ctx.Err() != nil && flushCtx == nil {
			var cancel context.CancelFunc
			flushCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), statusFlush)
			defer cancel()
		}
		p.send(ctx, flushCtx, q)
		close(q.done)
	}
}

func (p *statusPoster) next() *queuedStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	q := p.queue[0]
	p.queue = p.queue[1:]
	return q
}

// superseded says whether a newer status for the same commit and context
// is queued.
func (p *statusPoster) superseded(s webhook.Status) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.queue {
		if q.s.Repo == s.Repo && q.s.SHA == s.SHA && q.s.Context == s.Context {
			return true
		}
	}
	return false
}

// send posts one status, retrying with backoff while ctx lasts; once ctx
// ended (the daemon stops), one attempt on flushCtx.
func (p *statusPoster) send(ctx, flushCtx context.Context, q *queuedStatus) {
	s := q.s
	for attempt := 1; ; attempt++ {
		postCtx := ctx
		if ctx.Err() != nil {
			postCtx = flushCtx
		}
		err := p.rep.SetStatus(postCtx, s)
		if err == nil {
			return
		}
		if attempt == statusAttempts || ctx.Err() != nil {
			p.log.WarnContext(postCtx, "status not posted", "repo", s.Repo, "sha", s.SHA, "state", string(s.State), "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * statusBackoff):
		}
		if p.superseded(s) {
			p.log.DebugContext(ctx, "status superseded before it was posted", "repo", s.Repo, "sha", s.SHA, "state", string(s.State))
			return
		}
	}
}
