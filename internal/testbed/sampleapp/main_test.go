package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func start(t *testing.T, version, mode string) (base string, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	errc, finished := make(chan error, 1), make(chan struct{})
	go func() { errc <- serve(ctx, l, version, mode, 10*time.Second); close(finished) }()
	t.Cleanup(func() { cancel(); <-finished })
	return "http://" + l.Addr().String(), cancel, errc
}

func get(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("body"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestServe(t *testing.T) {
	base, _, _ := start(t, "v7", "")
	for _, path := range []string{"/up", "/api/health"} {
		code, body, _ := get(t, "GET", base+path)
		require.Equal(t, 200, code, path)
		require.Equal(t, "ok\n", body, path)
	}
	for _, m := range []string{"GET", "POST"} {
		code, body, h := get(t, m, base+"/")
		require.Equal(t, 200, code, m)
		require.True(t, strings.HasPrefix(body, "v7 "), body)
		require.Equal(t, "v7", h.Get("X-App-Version"))
	}
	code, _, _ := get(t, "GET", base+"/nope")
	require.Equal(t, 404, code)
	code, _, _ = get(t, "GET", base+"/slow?d=forever")
	require.Equal(t, 400, code)
}

func TestServe_Unhealthy(t *testing.T) {
	base, _, _ := start(t, "v8", "unhealthy")
	for _, path := range []string{"/up", "/api/health"} {
		code, _, _ := get(t, "GET", base+path)
		require.Equal(t, 500, code, path)
	}
	code, body, _ := get(t, "GET", base+"/")
	require.Equal(t, 200, code)
	require.True(t, strings.HasPrefix(body, "v8 "))
}

func TestServe_DrainsInFlightRequests(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	slowStarted = func() { inFlight <- struct{}{} }
	t.Cleanup(func() { slowStarted = nil })
	base, stop, done := start(t, "v9", "")
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow?d=500ms")
		if err != nil {
			got <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b)}
	}()
	select {
	case <-inFlight:
	case <-time.After(5 * time.Second):
		require.Fail(t, "slow request not started within 5s")
	}
	stop() // as SIGTERM does
	select {
	case r := <-got:
		require.Equal(t, 200, r.code, r.body)
		require.Equal(t, "v9 slow 500ms\n", r.body)
	case <-time.After(10 * time.Second):
		require.Fail(t, "slow request not answered within 10s of SIGTERM")
	}
	require.NoError(t, <-done)
	_, err := http.Get(base + "/up")
	require.Error(t, err, "no new connections after the drain")
}

func TestCheck(t *testing.T) {
	ok, _, _ := start(t, "v1", "")
	require.NoError(t, check(ok+"/up"))
	bad, _, _ := start(t, "v1", "unhealthy")
	err := check(bad + "/up")
	require.Error(t, err)
	require.Contains(t, err.Error(), "500")
	require.Contains(t, err.Error(), "APP_MODE=unhealthy")
	require.Error(t, check("http://127.0.0.1:1/up"))
}
