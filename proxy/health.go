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

// waitHealthy checks at once and then every interval until one check
// passes, ctx ends, or the deploy timeout passes.
func waitHealthy(ctx context.Context, req DeployRequest) error {
	deadline := time.Duration(req.DeployTimeout)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(time.Duration(req.HealthInterval))
	defer tick.Stop()
	var last error
	for {
		err := check(ctx, req)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil {
			last = err // keep the last real answer, not the deadline cutting a check short
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s within %s (GET http://%s%s): last check: %v", ErrUnhealthy, req.Target, deadline, req.Target, req.HealthPath, last)
			}
			return fmt.Errorf("wait for %s to become healthy: %w", req.Target, ctx.Err())
		case <-tick.C:
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
