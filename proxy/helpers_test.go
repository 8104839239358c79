package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testToken = "test-token-0123456789"

// harness is a running Server on 127.0.0.1 port-0 listeners.
type harness struct {
	srv                          *Server
	httpAddr, httpsAddr, control string
	client                       *Client
	stop                         func() // stops Serve and waits for it
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

func startProxy(t testing.TB, cfg Config) *harness {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	l := Listeners{HTTP: listen(t), HTTPS: listen(t), Control: listen(t)}
	h := &harness{srv: srv, httpAddr: l.HTTP.Addr().String(), httpsAddr: l.HTTPS.Addr().String(), control: l.Control.Addr().String()}
	h.client, err = NewClient(ClientConfig{Addr: h.control, Token: cfg.Token})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(15 * time.Second):
				assert.Fail(t, "proxy did not stop within 15s")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// backend is a real HTTP target: "/" answers its name, "/up" its health,
// "/slow" waits 2 s (announcing the start), "/ws" echoes WebSocket
// messages prefixed with its name, and POST "/" echoes the body.
type backend struct {
	name     string
	srv      *httptest.Server
	addr     string
	healthy  atomic.Bool
	slowSeen chan struct{}
	hits     atomic.Int64
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name, slowSeen: make(chan struct{}, 16)}
	b.healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if !b.healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		b.slowSeen <- struct{}{}
		select {
		case <-time.After(2 * time.Second): // the behaviour under test: a 2 s request
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, name+"-slow")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+":"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s:%s", name, body)
			return
		}
		w.Header().Set("X-Seen-Path", r.URL.Path)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-XFP", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-XFH", r.Header.Get("X-Forwarded-Host"))
		io.WriteString(w, name)
	})
	b.srv = httptest.NewServer(mux)
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.srv.Close)
	return b
}

func deployReq(service string, b *backend, hosts ...string) DeployRequest {
	return DeployRequest{
		Service: service, Target: b.addr, Hosts: hosts,
		HealthInterval: Duration(50 * time.Millisecond), DeployTimeout: Duration(5 * time.Second),
		DrainTimeout: Duration(5 * time.Second),
	}
}

func mustDeploy(t testing.TB, h *harness, req DeployRequest) Route {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := h.client.Deploy(ctx, req)
	require.NoError(t, err)
	return r
}

// get does one GET through the proxy with the given Host.
func get(t testing.TB, c *http.Client, addr, host, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

// load sends GET and POST requests through the proxy from workers that use
// kept-alive and fresh connections, until stop is closed or the limit of
// requests is reached. Every answer must be 200 from one of the names.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	seen       sync.Map
	wg         sync.WaitGroup
}

func startLoad(t testing.TB, addr, host string, names []string, stop <-chan struct{}, maxPerWorker int) *load {
	l := &load{}
	valid := map[string]bool{}
	for _, n := range names {
		valid[n] = true
	}
	for w := range 8 {
		fresh := w%2 == 1
		tr := &http.Transport{DisableKeepAlives: fresh, MaxIdleConnsPerHost: 4}
		c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			for i := 0; i < maxPerWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				post := i%2 == 0
				var req *http.Request
				if post {
					req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(fmt.Sprintf("w%d-%d", w, i)))
				} else {
					req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				}
				req.Host = host
				resp, err := c.Do(req)
				if err != nil {
					l.fail(fmt.Sprintf("%s fresh=%t: %v", req.Method, fresh, err))
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				name, rest, _ := strings.Cut(string(body), ":")
				switch {
				case err != nil:
					l.fail(fmt.Sprintf("%s fresh=%t: read body: %v", req.Method, fresh, err))
				case resp.StatusCode != http.StatusOK:
					l.fail(fmt.Sprintf("%s fresh=%t: %d %q", req.Method, fresh, resp.StatusCode, body))
				case !valid[name]:
					l.fail(fmt.Sprintf("%s fresh=%t: body %q from no known target", req.Method, fresh, body))
				case post && rest != fmt.Sprintf("w%d-%d", w, i):
					l.fail(fmt.Sprintf("POST fresh=%t: body %q lost the request body", fresh, body))
				default:
					l.ok.Add(1)
					l.seen.Store(name, true)
				}
			}
		})
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, msg)
	}
	l.mu.Unlock()
}

func (l *load) check(t testing.TB) {
	t.Helper()
	l.wg.Wait()
	require.Zero(t, l.failed.Load(), "failed requests (first ones): %v", l.failures)
	require.Positive(t, l.ok.Load())
}

// tlsClient trusts the local CA in dir and sends every connection to addr.
func tlsClient(t testing.TB, caPEM []byte, addr string) *http.Client {
	t.Helper()
	pool := x509Pool(t, caPEM)
	d := &net.Dialer{}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var errTimeout = errors.New("timed out")

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
