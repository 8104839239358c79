package proxy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/bosunhq/bosun/internal/testutil"
)

func x509Pool(t testing.TB, caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return pool
}

func TestServer_SwitchUnderLoad(t *testing.T) {
	h := startProxy(t, Config{})
	a, b := newBackend(t, "A"), newBackend(t, "B")
	mustDeploy(t, h, deployReq("web", a, "app.test"))

	stop := make(chan struct{})
	l := startLoad(t, h.httpAddr, "app.test", []string{"A", "B"}, stop, 100000)
	deadline := time.Now().Add(2 * time.Minute)
	for i := range 50 {
		// Let the load run across every route state: at least 40 answers
		// between two switches.
		base := l.ok.Load() + l.failed.Load()
		require.NoError(t, waitFor(30*time.Second, func() bool { return l.ok.Load()+l.failed.Load() >= base+40 }), "load stalled")
		next := b
		if i%2 == 1 {
			next = a
		}
		r := mustDeploy(t, h, deployReq("web", next, "app.test"))
		require.Equal(t, next.addr, r.Target)
		require.False(t, time.Now().After(deadline), "50 switches took over 2 minutes")
	}
	close(stop)
	l.check(t)
	_, seenA := l.seen.Load("A")
	_, seenB := l.seen.Load("B")
	require.True(t, seenA && seenB, "load saw both targets")
	t.Logf("50 switches, %d requests, 0 failed", l.ok.Load())
}

func TestServer_SlowRequestFinishesOnOldTarget(t *testing.T) {
	h := startProxy(t, Config{})
	a, b := newBackend(t, "A"), newBackend(t, "B")
	mustDeploy(t, h, deployReq("web", a))

	type result struct {
		status int
		body   string
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + h.httpAddr + "/slow")
		if err != nil {
			slow <- result{0, err.Error()}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{resp.StatusCode, string(body)}
	}()
	select {
	case <-a.slowSeen:
	case <-time.After(10 * time.Second):
		require.Fail(t, "slow request never reached A")
	}
	start := time.Now()
	req := deployReq("web", b)
	req.DrainTimeout = Duration(10 * time.Second)
	mustDeploy(t, h, req)
	// The deploy returns only after the old target drained: after the slow
	// request finished.
	require.Greater(t, time.Since(start), time.Second, "deploy returned before the slow request could finish")
	select {
	case r := <-slow:
		require.Equal(t, result{200, "A-slow"}, r)
	case <-time.After(5 * time.Second):
		require.Fail(t, "slow request did not finish")
	}
	_, body, _ := get(t, http.DefaultClient, h.httpAddr, "any.test", "/")
	require.Equal(t, "B", body)
}

func TestServer_NeverHealthyTargetLeavesRoute(t *testing.T) {
	h := startProxy(t, Config{})
	a, bad := newBackend(t, "A"), newBackend(t, "BAD")
	bad.healthy.Store(false)
	mustDeploy(t, h, deployReq("web", a))

	stop := make(chan struct{})
	l := startLoad(t, h.httpAddr, "app.test", []string{"A"}, stop, 100000)
	req := deployReq("web", bad)
	req.DeployTimeout = Duration(2 * time.Second)
	start := time.Now()
	_, err := h.client.Deploy(context.Background(), req)
	took := time.Since(start)
	close(stop)
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrUnhealthy), "error %v is ErrUnhealthy", err)
	require.Contains(t, err.Error(), "503")
	require.Less(t, took, 4*time.Second)
	l.check(t)
	routes, err := h.client.List(context.Background())
	require.NoError(t, err)
	require.Len(t, routes, 1)
	require.Equal(t, a.addr, routes[0].Target)
	require.Zero(t, bad.hits.Load(), "the unhealthy target got traffic")
}

func TestServer_WebSocketAcrossSwitch(t *testing.T) {
	h := startProxy(t, Config{})
	a, b := newBackend(t, "A"), newBackend(t, "B")
	mustDeploy(t, h, deployReq("web", a))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+h.httpAddr+"/ws", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	echo := func(msg string) (string, error) {
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return "", err
		}
		_, got, err := ws.Read(ctx)
		return string(got), err
	}
	got, err := echo("one")
	require.NoError(t, err)
	require.Equal(t, "A:one", got)

	const drain = 2 * time.Second
	req := deployReq("web", b)
	req.DrainTimeout = Duration(drain)
	deployed := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := h.client.Deploy(ctx, req)
		deployed <- err
	}()
	require.NoError(t, waitFor(10*time.Second, func() bool {
		_, body, _ := get(t, http.DefaultClient, h.httpAddr, "x.test", "/")
		return body == "B"
	}), "route never switched to B")
	// Switched, still draining: the open session keeps talking to A.
	got, err = echo("two")
	require.NoError(t, err)
	require.Equal(t, "A:two", got)

	select {
	case err := <-deployed:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		require.Fail(t, "deploy did not return after the drain timeout")
	}
	require.GreaterOrEqual(t, time.Since(start), drain, "deploy returned before the drain timeout with a WebSocket open")
	// After the drain timeout the session is closed.
	_, err = echo("three")
	require.Error(t, err)
}

func TestServer_RestoresRoutesAfterRestart(t *testing.T) {
	state := t.TempDir()
	a := newBackend(t, "A")
	h1 := startProxy(t, Config{StateDir: state})
	mustDeploy(t, h1, deployReq("web", a, "app.test"))
	h1.stop()

	h2 := startProxy(t, Config{StateDir: state})
	code, body, _ := get(t, http.DefaultClient, h2.httpAddr, "app.test", "/")
	require.Equal(t, 200, code)
	require.Equal(t, "A", body)
	routes, err := h2.client.List(context.Background())
	require.NoError(t, err)
	require.Len(t, routes, 1)
	require.Equal(t, "web", routes[0].Service)

	// The state file is whole JSON, and no temporary file is left behind.
	entries, err := os.ReadDir(state)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.Contains(e.Name(), ".tmp"), "left %s", e.Name())
	}
	data, err := os.ReadFile(filepath.Join(state, "routes.json"))
	require.NoError(t, err)
	require.True(t, json.Valid(data))
}

func TestServer_HTTPSWithLocalCA(t *testing.T) {
	caDir := t.TempDir()
	h := startProxy(t, Config{LocalCADir: caDir, StateDir: t.TempDir()})
	a := newBackend(t, "A")
	req := deployReq("web", a, "app.test")
	req.TLS = true
	mustDeploy(t, h, req)

	caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	require.NoError(t, err)
	c := tlsClient(t, caPEM, h.httpsAddr)
	resp, err := c.Get("https://app.test/hello")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "A", string(body))
	require.Equal(t, "HTTP/2.0", resp.Proto)
	require.Equal(t, "https", resp.Header.Get("X-Seen-XFP"))

	// Plain HTTP for a TLS route is redirected.
	_, port, _ := net.SplitHostPort(h.httpsAddr)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := http.NewRequest(http.MethodGet, "http://"+h.httpAddr+"/hello?x=1", nil)
	require.NoError(t, err)
	r.Host = "app.test"
	resp, err = hc.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	require.Equal(t, "https://app.test:"+port+"/hello?x=1", resp.Header.Get("Location"))

	// No certificate for a host without a TLS route.
	_, err = c.Get("https://other.test/")
	require.Error(t, err)
}

func TestServer_ControlAuthAndBadRequests(t *testing.T) {
	h := startProxy(t, Config{})
	call := func(method, path, token, body string) (int, string) {
		req, err := http.NewRequest(method, "http://"+h.control+path, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, _ := call("GET", "/v1/routes", "", "")
	require.Equal(t, 401, code)
	code, _ = call("GET", "/v1/routes", "wrong", "")
	require.Equal(t, 401, code)
	code, _ = call("POST", "/v1/deploy", "", `{"service":"web","target":"127.0.0.1:1"}`)
	require.Equal(t, 401, code)
	code, _ = call("GET", "/v1/routes", testToken, "")
	require.Equal(t, 200, code)
	code, body := call("POST", "/v1/deploy", testToken, `{"service":`)
	require.Equal(t, 400, code)
	require.Contains(t, body, "decode deploy request")
	code, body = call("POST", "/v1/deploy", testToken, `{"service":"web","target":"127.0.0.1:1","bogus":1}`)
	require.Equal(t, 400, code)
	require.Contains(t, body, "bogus")
	code, body = call("POST", "/v1/deploy", testToken, `{"service":"Web!","target":"127.0.0.1:1"}`)
	require.Equal(t, 400, code)
	require.Contains(t, body, "service")
	code, _ = call("DELETE", "/v1/routes/nope", testToken, "")
	require.Equal(t, 404, code)

	_, err := NewClient(ClientConfig{Addr: h.control})
	require.Error(t, err)
	bad, err := NewClient(ClientConfig{Addr: h.control, Token: "wrong"})
	require.NoError(t, err)
	_, err = bad.List(context.Background())
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 401, apiErr.Status)
}

func TestServer_Routing(t *testing.T) {
	h := startProxy(t, Config{})
	exact, wild, catch, api := newBackend(t, "exact"), newBackend(t, "wild"), newBackend(t, "catch"), newBackend(t, "api")
	mustDeploy(t, h, deployReq("exact", exact, "www.example.com"))
	mustDeploy(t, h, deployReq("wild", wild, "*.example.com"))
	mustDeploy(t, h, deployReq("catch", catch))
	apiReq := deployReq("api", api, "www.example.com")
	apiReq.PathPrefix, apiReq.StripPrefix = "/api", true
	mustDeploy(t, h, apiReq)

	for _, c := range []struct{ host, path, want, seenPath string }{
		{"www.example.com", "/", "exact", "/"},
		{"WWW.Example.COM.", "/x", "exact", "/x"},
		{"www.example.com:8080", "/x", "exact", "/x"},
		{"shop.example.com", "/", "wild", "/"},
		{"a.b.example.com", "/", "catch", "/"},
		{"example.com", "/", "catch", "/"},
		{"www.example.com", "/api/v1/users", "api", "/v1/users"},
		{"www.example.com", "/api", "api", "/"},
		{"www.example.com", "/apix", "exact", "/apix"},
		{"10.1.2.3", "/", "catch", "/"},
	} {
		code, body, hdr := get(t, http.DefaultClient, h.httpAddr, c.host, c.path)
		require.Equal(t, 200, code, "%s%s", c.host, c.path)
		require.Equal(t, c.want, body, "%s%s", c.host, c.path)
		require.Equal(t, c.seenPath, hdr.Get("X-Seen-Path"), "%s%s", c.host, c.path)
	}

	// A second service may not take a host and path another one owns.
	_, err := h.client.Deploy(context.Background(), deployReq("other", catch, "www.example.com"))
	require.ErrorIs(t, err, ErrConflict)

	require.NoError(t, h.client.Remove(context.Background(), "catch"))
	code, body, _ := get(t, http.DefaultClient, h.httpAddr, "nothing.test", "/")
	require.Equal(t, 404, code)
	require.Equal(t, "404 no route for this host and path\n", body)
}

func TestServer_ForwardedHeaders(t *testing.T) {
	a := newBackend(t, "A")
	send := func(h *harness) http.Header {
		req, err := http.NewRequest(http.MethodGet, "http://"+h.httpAddr+"/", nil)
		require.NoError(t, err)
		req.Host = "app.test"
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "public.test")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.Header
	}
	untrusted := startProxy(t, Config{})
	mustDeploy(t, untrusted, deployReq("web", a))
	hdr := send(untrusted)
	require.Equal(t, "127.0.0.1", hdr.Get("X-Seen-XFF"))
	require.Equal(t, "http", hdr.Get("X-Seen-XFP"))
	require.Equal(t, "app.test", hdr.Get("X-Seen-XFH"))

	trusted := startProxy(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	mustDeploy(t, trusted, deployReq("web", a))
	hdr = send(trusted)
	require.Equal(t, "203.0.113.9, 127.0.0.1", hdr.Get("X-Seen-XFF"))
	require.Equal(t, "https", hdr.Get("X-Seen-XFP"))
	require.Equal(t, "public.test", hdr.Get("X-Seen-XFH"))
}

func TestServer_TargetErrors(t *testing.T) {
	h := startProxy(t, Config{})
	// A target that accepts but never answers: 504 after the response timeout.
	mute := listen(t)
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Cleanup(func() { mute.Close() })
	a := newBackend(t, "A")
	req := deployReq("mute", a, "mute.test")
	mustDeploy(t, h, req) // healthy through A, then pointed at the mute socket below
	h.srv.mu.Lock()
	svc := h.srv.table.Load().services["mute"]
	r := svc.req
	r.Target = mute.Addr().String()
	r.ResponseTimeout = Duration(300 * time.Millisecond)
	tab, err := h.srv.prospective("mute", &service{req: r, target: newTarget(h.srv, r), metrics: svc.metrics})
	require.NoError(t, err)
	h.srv.table.Store(tab)
	h.srv.mu.Unlock()
	code, _, _ := get(t, http.DefaultClient, h.httpAddr, "mute.test", "/")
	require.Equal(t, http.StatusGatewayTimeout, code)

	// A target that went away: 502, after one retry of the GET.
	gone := newBackend(t, "gone")
	mustDeploy(t, h, deployReq("gone", gone, "gone.test"))
	gone.srv.Close()
	code, _, _ = get(t, http.DefaultClient, h.httpAddr, "gone.test", "/")
	require.Equal(t, http.StatusBadGateway, code)
}

func TestServer_BadInput(t *testing.T) {
	h := startProxy(t, Config{MaxHeaderBytes: 4 << 10})
	mustDeploy(t, h, deployReq("web", newBackend(t, "A")))
	raw := func(req string) string {
		c, err := net.Dial("tcp", h.httpAddr)
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	require.Contains(t, raw("GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"), "400")
	require.Contains(t, raw("GET / HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n"), "HTTP/1.1")
	require.Contains(t, raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\nConnection: close\r\n\r\n"), "431")
	require.Contains(t, raw("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), "400") // HTTP/1.1 needs a Host
	code, body, _ := get(t, http.DefaultClient, h.httpAddr, "ok.test", "/")
	require.Equal(t, 200, code, "still serving after bad input")
	require.Equal(t, "A", body)
}

func TestServer_SlowClientTimedOut(t *testing.T) {
	h := startProxy(t, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", h.httpAddr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // never finishes the headers
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c) // the proxy closes the connection
	require.NoError(t, err, "connection closed by the proxy, not by our 5s deadline")
}

func TestImage(t *testing.T) {
	bin, err := os.Executable()
	require.NoError(t, err)
	img, err := Image(bin)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, []string{"/bosun"}, cf.Config.Entrypoint)
	require.Equal(t, ImageCmd, cf.Config.Cmd)
	require.Equal(t, []string{"proxy", "run"}, cf.Config.Cmd[:2])
	require.Contains(t, cf.Config.Cmd, "unix:"+ControlSocket, "the control API listens only on a unix socket")
	require.NotContains(t, cf.Config.ExposedPorts, "7080/tcp")
	require.Equal(t, "linux", cf.OS)
}

func TestServer_TimeoutsAreProgressLimits(t *testing.T) {
	h := startProxy(t, Config{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	a := newBackend(t, "A")
	mustDeploy(t, h, deployReq("web", a))

	// A response that takes 2 s, far past both limits, still arrives: the
	// limits are on progress, not on the length of a request.
	code, body, _ := get(t, http.DefaultClient, h.httpAddr, "x.test", "/slow")
	require.Equal(t, 200, code)
	require.Equal(t, "A-slow", body)

	// A client that stops sending its body is dropped after ReadTimeout.
	c, err := net.Dial("tcp", h.httpAddr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a little")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	reply, _ := io.ReadAll(c)
	require.Less(t, time.Since(start), 5*time.Second, "stalled body not cut off")
	require.Contains(t, string(reply), "408 Request Timeout")
}

func TestServer_AccessLogAndMetrics(t *testing.T) {
	var buf testutil.SyncBuffer
	h := startProxy(t, Config{AccessLog: &buf})
	mustDeploy(t, h, deployReq("web", newBackend(t, "A"), "app.test"))
	code, _, _ := get(t, http.DefaultClient, h.httpAddr, "app.test", "/hello")
	require.Equal(t, 200, code)
	code, _, _ = get(t, http.DefaultClient, h.httpAddr, "nothing.test", "/")
	require.Equal(t, 404, code)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var rec struct {
		Msg, Service, Host, Method, Path, Target string
		Status                                   int
		Bytes                                    int64
		DurationMS                               float64 `json:"duration_ms"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "request", rec.Msg)
	require.Equal(t, "web", rec.Service)
	require.Equal(t, "app.test", rec.Host)
	require.Equal(t, "GET", rec.Method)
	require.Equal(t, "/hello", rec.Path)
	require.Equal(t, 200, rec.Status)
	require.EqualValues(t, 1, rec.Bytes)
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, 404, rec.Status)

	rr := httptest.NewRecorder()
	h.srv.metrics.handler(false).ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rr.Body.String(), `bosun_proxy_requests_total{code="2xx",service="web"} 1`)
	require.Contains(t, rr.Body.String(), `bosun_proxy_no_route_total 1`)
	require.Contains(t, rr.Body.String(), `bosun_proxy_deploys_total{result="ok",service="web"} 1`)
}

func TestTarget_RetriesRefusedIdempotentOnCurrentTarget(t *testing.T) {
	h := startProxy(t, Config{})
	b := newBackend(t, "B")
	mustDeploy(t, h, deployReq("web", b))

	// A target of the same service whose container is gone: nothing listens.
	ln := listen(t)
	deadAddr := ln.Addr().String()
	ln.Close()
	dead := newTarget(h.srv, DeployRequest{Service: "web", Target: deadAddr, ResponseTimeout: Duration(time.Second)}.withDefaults())
	t.Cleanup(dead.shutdown)

	rec := httptest.NewRecorder()
	dead.rp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://app.test/", nil))
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "B", rec.Body.String(), "the refused GET was retried on the current target")

	rec = httptest.NewRecorder()
	dead.rp.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://app.test/", strings.NewReader("body")))
	require.Equal(t, http.StatusBadGateway, rec.Code, "a POST with a body is never retried")
}

func TestServer_ACMEModeHTTP(t *testing.T) {
	// ACME mode with a directory nobody serves: no certificate is fetched
	// here, but the HTTP side must route challenges to autocert and
	// redirect the rest of a TLS route.
	h := startProxy(t, Config{StateDir: t.TempDir(), ACMEDirectoryURL: "http://127.0.0.1:1/directory"})
	a := newBackend(t, "A")
	req := deployReq("web", a, "app.test")
	req.TLS = true
	mustDeploy(t, h, req)

	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(path string) *http.Response {
		r, err := http.NewRequest(http.MethodGet, "http://"+h.httpAddr+path, nil)
		require.NoError(t, err)
		r.Host = "app.test"
		resp, err := hc.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := do("/.well-known/acme-challenge/unknown-token")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "autocert answers challenges it does not know with 404")
	require.Zero(t, a.hits.Load(), "a challenge reached the app")
	resp = do("/page")
	require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "https://app.test:"))

	// A host without a TLS route gets no certificate, and no ACME order.
	require.Error(t, h.srv.acmeHostPolicy(context.Background(), "other.test"))
	require.NoError(t, h.srv.acmeHostPolicy(context.Background(), "app.test"))
}
