package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryWait_DoublesFrom50msUpToInterval(t *testing.T) {
	var got []time.Duration
	for n := 0; n < 7; n++ {
		got = append(got, retryWait(n, time.Second))
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}, got)
	require.Equal(t, 30*ms, retryWait(0, 30*ms), "an interval below 50 ms is kept")
	require.Equal(t, time.Hour, retryWait(1000, time.Hour), "no overflow")
}

// A target that is not listening yet at the first check is retried soon,
// not after the full health interval: with a 1 h interval, a target that
// passes its fourth check is deployed.
func TestServer_HealthRetriesQuicklyAtFirst(t *testing.T) {
	h := startProxy(t, Config{})
	var checks atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" && checks.Add(1) < 4 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	req := DeployRequest{
		Service: "web", Target: strings.TrimPrefix(ts.URL, "http://"),
		HealthInterval: Duration(time.Hour), DeployTimeout: Duration(20 * time.Second), DrainTimeout: Duration(time.Second),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.client.Deploy(ctx, req)
	require.NoError(t, err)
	require.EqualValues(t, 4, checks.Load())
}
