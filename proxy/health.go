package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrUnhealthy is returned by a deploy whose target did not pass a health
// check within the deploy timeout. The route is left as it was.
var ErrUnhealthy = errors.New("target did not become healthy")

// healthClient checks targets without keeping connections: a target that
// never gets healthy must not hold sockets open.
var healthClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is not healthy
	},
}

// check does one health check: GET http://TARGET/PATH, any 2xx is healthy.
func check(ctx context.Context, req DeployRequest) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.HealthTimeout))
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+req.Target+req.HealthPath, nil)
	if err != nil {
		return err
	}
	hr.Header.Set("User-Agent", "bosun-proxy")
	resp, err := healthClient.Do(hr)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s answered %s", req.HealthPath, resp.Status)
	}
	return nil
}

// firstRetry is the wait after a deploy's first failed health check; each
// further wait doubles, up to the health interval. A new container usually
// listens within a few hundred milliseconds of its start: retrying at the
// full interval (1 s by default) would add most of a second to a deploy
// whose first check came just too early.
const firstRetry = 50 * time.Millisecond

// retryWait is the wait after the n-th (from 0) failed check of a deploy:
// 50 ms doubling, capped at interval.
func retryWait(n int, interval time.Duration) time.Duration {
	d := firstRetry
	for i := 0; i < n && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}

// waitHealthy checks at once, then again after 50 ms, doubling the wait up
// to the health interval, until one check passes, ctx ends, or the deploy
// timeout passes.
func waitHealthy(ctx context.Context, req DeployRequest) error {
	deadline := time.Duration(req.DeployTimeout)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var last error
	for n := 0; ; n++ {
		start := time.Now()
		err := check(ctx, req)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err // keep the last real answer, not the deadline cutting a check short
		}
		// The wait runs from the start of the check, as a ticker's would.
		timer.Reset(max(0, retryWait(n, time.Duration(req.HealthInterval))-time.Since(start)))
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s within %s (GET http://%s%s): last check: %v", ErrUnhealthy, req.Target, deadline, req.Target, req.HealthPath, last)
			}
			return fmt.Errorf("wait for %s to become healthy: %w", req.Target, ctx.Err())
		case <-timer.C:
		}
	}
}

// monitor keeps checking a serving target so that `list` shows its health;
// with one target per route, the result does not change routing.
func (t *target) monitor() {
	tick := time.NewTicker(time.Duration(t.req.HealthInterval))
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-t.stopped
		cancel()
	}()
	for {
		select {
		case <-t.stopped:
			return
		case <-tick.C:
		}
		err := check(ctx, t.req)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			t.setHealth(false, err.Error())
		} else {
			t.setHealth(true, "")
		}
	}
}
