package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bits of target.state above the in-flight count.
const (
	drainingBit = int64(1) << 62
	closedBit   = int64(1) << 61
	countMask   = closedBit - 1
)

var errTargetClosed = errors.New("target is closed")

// target is one upstream HOST:PORT of one deployed service: its own
// connection pool (so the response timeout is per route and draining can
// close exactly its connections), a reverse proxy, and the count of
// requests in flight.
type target struct {
	srv     *Server
	service string
	addr    string
	req     DeployRequest

	transport *http.Transport
	rp        *httputil.ReverseProxy

	// state is the in-flight count plus drainingBit and closedBit. A
	// request acquires the target before using it; once closedBit is set,
	// acquire fails and the request looks up the route again.
	state     atomic.Int64
	idle      chan struct{} // signalled when the count drops to 0 while draining
	drainOnce sync.Once
	stopped   chan struct{} // closed when the target is shut down

	connsMu sync.Mutex
	conns   map[*trackedConn]struct{}
	killed  bool

	healthMu    sync.Mutex
	healthy     bool
	healthSince time.Time
	healthErr   string
}

func newTarget(s *Server, req DeployRequest) *target {
	t := &target{
		srv:     s,
		service: req.Service,
		addr:    req.Target,
		req:     req,
		idle:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		conns:   map[*trackedConn]struct{}{},
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return t.track(c)
		},
		// The classic trap: the default of 2 idle connections per host
		// makes a busy proxy open and close a connection for most
		// requests. Keep as many as the client side can use.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: time.Duration(req.ResponseTimeout),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
	t.rp = &httputil.ReverseProxy{
		Rewrite:        t.rewrite,
		Transport:      retryTransport{t},
		BufferPool:     s.buffers,
		ErrorHandler:   t.errorHandler,
		ErrorLog:       s.stdErrLog,
		FlushInterval:  0, // streaming responses (SSE, unknown length) are flushed at once by ReverseProxy itself
		ModifyResponse: nil,
	}
	return t
}

// acquire counts a request in; false means the target has closed and the
// caller must look up the route again.
func (t *target) acquire() bool {
	if t.state.Add(1)&closedBit != 0 {
		t.release()
		return false
	}
	return true
}

func (t *target) release() {
	v := t.state.Add(-1)
	if v&countMask == 0 && v&drainingBit != 0 {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

func (t *target) inFlight() int64 { return t.state.Load() & countMask }

// drain waits until no request is in flight on t, or timeout; then it
// closes t and every connection to it (which ends upgraded connections such
// as WebSockets and any request still running). It reports whether t went
// idle before the timeout.
func (t *target) drain(timeout time.Duration) (clean bool) {
	t.drainOnce.Do(func() {
		t.state.Or(drainingBit)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for {
			if t.state.CompareAndSwap(drainingBit, drainingBit|closedBit) {
				clean = true
				break
			}
			select {
			case <-t.idle:
				continue
			case <-timer.C:
				t.state.Or(closedBit)
			}
			break
		}
		t.shutdown()
	})
	return clean
}

// shutdown closes every connection to the target and stops its health
// monitor. It is idempotent.
func (t *target) shutdown() {
	t.state.Or(closedBit)
	t.connsMu.Lock()
	if t.killed {
		t.connsMu.Unlock()
		return
	}
	t.killed = true
	conns := t.conns
	t.conns = nil
	t.connsMu.Unlock()
	close(t.stopped)
	for c := range conns {
		c.Conn.Close()
	}
	t.transport.CloseIdleConnections()
}

func (t *target) track(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, t: t}
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	if t.killed {
		c.Close()
		return nil, errTargetClosed
	}
	t.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn is a connection to a target that the target can close when
// its drain time is up.
type trackedConn struct {
	net.Conn
	t    *target
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.connsMu.Lock()
		delete(c.t.conns, c)
		c.t.connsMu.Unlock()
	})
	return c.Conn.Close()
}

// rewrite prepares the outbound request: target address, optional prefix
// stripping, and X-Forwarded-* headers. The Host header is kept.
func (t *target) rewrite(pr *httputil.ProxyRequest) {
	out, in := pr.Out, pr.In
	out.URL.Scheme = "http"
	out.URL.Host = t.addr
	if t.req.StripPrefix && t.req.PathPrefix != "/" {
		prefix := strings.TrimSuffix(t.req.PathPrefix, "/")
		out.URL.Path = "/" + strings.TrimLeft(strings.TrimPrefix(out.URL.Path, prefix), "/")
		if out.URL.RawPath != "" {
			out.URL.RawPath = "/" + strings.TrimLeft(strings.TrimPrefix(out.URL.RawPath, prefix), "/")
		}
	}
	clientIP, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		clientIP = in.RemoteAddr
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	xff, xfp, xfh := clientIP, proto, in.Host
	if t.srv.trusted(clientIP) {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + clientIP
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			xfp = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			xfh = v
		}
	}
	h := out.Header
	h["X-Forwarded-For"] = []string{xff}
	h["X-Forwarded-Proto"] = []string{xfp}
	h["X-Forwarded-Host"] = []string{xfh}
}

// errorHandler answers when the target could not give a response: 504 when
// it did not answer within the response timeout, else 502.
func (t *target) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex, _ := w.(*exchange)
	if ex != nil {
		ex.proxyErr = err
		if ex.bodyTimedOut.Load() {
			writeShort(w, http.StatusRequestTimeout)
			return
		}
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads this answer, the log does.
		w.WriteHeader(499)
		return
	}
	status := http.StatusBadGateway
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) && ne.Timeout() && !(errors.As(err, &oe) && oe.Op == "dial") {
		status = http.StatusGatewayTimeout
	}
	t.srv.log.DebugContext(r.Context(), "target error", "service", t.service, "target", t.addr, "err", err)
	writeShort(w, status)
}

// retryTransport retries once, on the service's current target, an
// idempotent request without a body whose connection was refused: the
// target it was sent to may have just been replaced and stopped.
type retryTransport struct{ t *target }

func (rt retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.t.transport.RoundTrip(req)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !retryable(req) {
		return resp, err
	}
	cur := rt.t.srv.currentTarget(rt.t.service)
	if cur == nil || !cur.acquire() {
		return nil, err
	}
	defer cur.release()
	again := req.Clone(req.Context())
	again.URL.Host = cur.addr
	return cur.transport.RoundTrip(again)
}

func retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func (t *target) setHealth(ok bool, msg string) {
	t.healthMu.Lock()
	defer t.healthMu.Unlock()
	if ok != t.healthy || t.healthSince.IsZero() {
		t.healthSince = time.Now()
	}
	t.healthy, t.healthErr = ok, msg
}

func (t *target) health() (ok bool, since time.Time, msg string) {
	t.healthMu.Lock()
	defer t.healthMu.Unlock()
	return t.healthy, t.healthSince, t.healthErr
}
