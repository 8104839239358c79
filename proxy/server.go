package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/sync/errgroup"
)

var (
	// ErrConflict is returned by a deploy whose host and path prefix are
	// already routed to another service.
	ErrConflict = errors.New("route conflict")
	// ErrNotFound is returned when a named service has no route.
	ErrNotFound = errors.New("no such service")
)

// Config is how a Server runs. The zero value of each field has a sensible
// meaning, except Token, which the control API requires.
type Config struct {
	Token    string // bearer token of the control API; required to serve it
	StateDir string // routes.json and ACME certificates; "" keeps routes in memory only

	// LocalCADir switches TLS to a local CA kept in that directory (made
	// on first use) that issues a certificate per host on demand. Empty:
	// certificates come from ACME.
	LocalCADir       string
	ACMEDirectoryURL string // "" is Let's Encrypt's production directory
	ACMEEmail        string

	// TrustedProxies are the client addresses whose X-Forwarded-* headers
	// are kept (and appended to); from anyone else they are replaced.
	TrustedProxies []netip.Prefix

	Logger    *slog.Logger // events; nil means slog.Default()
	AccessLog io.Writer    // one JSON line per request, one Write per line; nil: none

	// Slow clients. The read and write limits are progress limits, so
	// long uploads, downloads and streams (SSE) live as long as bytes move.
	ReadHeaderTimeout time.Duration // to read a request's headers; default 10s
	ReadTimeout       time.Duration // longest wait for the next bytes of a request body; default 60s
	WriteTimeout      time.Duration // longest wait for the client to take the next bytes of a response; default 60s
	IdleTimeout       time.Duration // keep-alive connections between requests; default 120s
	MaxHeaderBytes    int           // default 64 KiB

	Pprof bool // also serve /debug/pprof/ on the metrics listener
}

// Listeners are the sockets a Server serves; a nil one is not served.
type Listeners struct {
	HTTP    net.Listener // plain HTTP: routes, ACME HTTP-01, redirects for TLS routes
	HTTPS   net.Listener // TLS with HTTP/2 and ACME TLS-ALPN-01
	Control net.Listener // the control API; keep it on loopback
	Metrics net.Listener // Prometheus /metrics
}

// Server is bosun's proxy: the routing table, the targets, TLS and the
// control API. Make one with New, then Serve.
type Server struct {
	cfg       Config
	log       *slog.Logger
	accessLog *accessLog
	stdErrLog *log.Logger
	buffers   *bufferPool
	metrics   *metrics
	trustedPx []netip.Prefix

	table atomic.Pointer[table]

	mu        sync.Mutex             // guards table writes and the state file
	svcLocks  map[string]*sync.Mutex // one deploy or remove at a time per service
	closed    bool
	httpsPort atomic.Int64

	acme    *autocert.Manager
	localCA *localCA
}

// New makes a Server and restores the routes saved in cfg.StateDir, which
// serve at once (their targets are taken as healthy, as they were when
// saved).
func New(cfg Config) (*Server, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 10*time.Second)
	def(&cfg.ReadTimeout, 60*time.Second)
	def(&cfg.WriteTimeout, 60*time.Second)
	def(&cfg.IdleTimeout, 120*time.Second)
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "proxy"),
		buffers:   newBufferPool(),
		metrics:   newMetrics(),
		trustedPx: cfg.TrustedProxies,
		svcLocks:  map[string]*sync.Mutex{},
	}
	if cfg.AccessLog != nil {
		s.accessLog = newAccessLog(cfg.AccessLog)
	}
	s.stdErrLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	empty, _ := buildTable(map[string]*service{})
	s.table.Store(empty)
	if cfg.LocalCADir != "" {
		ca, err := loadOrCreateCA(cfg.LocalCADir)
		if err != nil {
			return nil, err
		}
		s.localCA = ca
	} else {
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Email:      cfg.ACMEEmail,
			HostPolicy: s.acmeHostPolicy,
		}
		if cfg.ACMEDirectoryURL != "" {
			m.Client = &acme.Client{DirectoryURL: cfg.ACMEDirectoryURL}
		}
		if cfg.StateDir != "" {
			m.Cache = autocert.DirCache(certDir(cfg.StateDir))
		}
		s.acme = m
	}
	if err := s.restore(); err != nil {
		return nil, err
	}
	return s, nil
}

// Serve serves the given listeners until ctx ends, then shuts down: it
// stops accepting, gives requests in flight a few seconds, and closes every
// target connection. It closes the listeners.
func (s *Server) Serve(ctx context.Context, l Listeners) error {
	if l.Control != nil && s.cfg.Token == "" {
		return errors.New("serve control API: no token configured")
	}
	g, ctx := errgroup.WithContext(ctx)
	var servers []*http.Server
	start := func(ln net.Listener, srv *http.Server, serve func() error) {
		servers = append(servers, srv)
		g.Go(func() error {
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	public := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler: h,
			// No ReadTimeout or WriteTimeout: net/http would cancel any
			// request running longer than ReadTimeout (its background read
			// fails), and cut long responses. serveProxy sets progress
			// deadlines instead.
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
			ErrorLog:          s.stdErrLog,
		}
	}
	if l.HTTPS != nil {
		if _, port, err := net.SplitHostPort(l.HTTPS.Addr().String()); err == nil {
			p, _ := strconv.Atoi(port)
			s.httpsPort.Store(int64(p))
		}
		srv := public(http.HandlerFunc(s.serveHTTPS))
		srv.TLSConfig = &tls.Config{
			GetCertificate: s.getCertificate,
			NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
			MinVersion:     tls.VersionTLS12,
		}
		start(l.HTTPS, srv, func() error { return srv.ServeTLS(l.HTTPS, "", "") })
	}
	if l.HTTP != nil {
		var h http.Handler = http.HandlerFunc(s.serveHTTP)
		if s.acme != nil {
			h = s.acme.HTTPHandler(h)
		}
		srv := public(h)
		start(l.HTTP, srv, func() error { return srv.Serve(l.HTTP) })
	}
	if l.Control != nil {
		srv := &http.Server{Handler: s.controlHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.stdErrLog}
		start(l.Control, srv, func() error { return srv.Serve(l.Control) })
	}
	if l.Metrics != nil {
		srv := &http.Server{Handler: s.metrics.handler(s.cfg.Pprof), ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.stdErrLog}
		start(l.Metrics, srv, func() error { return srv.Serve(l.Metrics) })
	}
	s.log.InfoContext(ctx, "proxy serving", "routes", len(s.table.Load().services))
	g.Go(func() error {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for _, srv := range servers {
			wg.Go(func() {
				if err := srv.Shutdown(shutCtx); err != nil {
					srv.Close()
				}
			})
		}
		wg.Wait()
		s.Close()
		return nil
	})
	return g.Wait()
}

// Close stops health monitors and closes every connection to every target.
// Deploys after Close fail.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	tab := s.table.Load()
	s.mu.Unlock()
	for _, svc := range tab.services {
		svc.target.shutdown()
	}
}

func (s *Server) trusted(ip string) bool {
	if len(s.trustedPx) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trustedPx {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) currentTarget(service string) *target {
	if svc := s.table.Load().services[service]; svc != nil {
		return svc.target
	}
	return nil
}

func (s *Server) serviceLock(name string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.svcLocks[name]
	if !ok {
		l = &sync.Mutex{}
		s.svcLocks[name] = l
	}
	return l
}

// Route is one route as the control API lists it.
type Route struct {
	DeployRequest
	Since       time.Time `json:"since"`                  // when the target started serving this route
	Healthy     bool      `json:"healthy"`                // result of the latest health check
	HealthSince time.Time `json:"health_since,omitzero"`  // since when Healthy has had its value
	HealthError string    `json:"health_error,omitempty"` // why the latest check failed
	InFlight    int64     `json:"in_flight"`              // requests now running on the target
	// Certificate describes the route's custom certificate; its PEM and
	// key are never listed.
	Certificate *CertificateInfo `json:"certificate,omitempty"`
}

func (svc *service) route() Route {
	ok, since, msg := svc.target.health()
	return Route{DeployRequest: svc.req.public(), Since: svc.since, Healthy: ok, HealthSince: since, HealthError: msg,
		InFlight: svc.target.inFlight(), Certificate: certInfo(svc.cert)}
}

// public is req without its custom certificate's PEM and key.
func (req DeployRequest) public() DeployRequest {
	req.TLSCertificate, req.TLSKey = "", ""
	return req
}

// newService is the service of a validated req, its custom certificate
// parsed (checked to be valid now when checkTime).
func (s *Server) newService(req DeployRequest, since time.Time, checkTime bool) (*service, error) {
	svc := &service{req: req, since: since, metrics: s.metrics.forService(req.Service)}
	if req.TLSCertificate != "" {
		c, err := parseCertificate(req.TLSCertificate, req.TLSKey, req.Hosts, checkTime)
		if err != nil {
			return nil, &ValidationError{"tls_certificate", err.Error()}
		}
		svc.cert = c
	}
	return svc, nil
}

// Routes lists the routes, sorted by service name.
func (s *Server) Routes() []Route {
	tab := s.table.Load()
	out := make([]Route, 0, len(tab.services))
	for _, svc := range tab.services {
		out = append(out, svc.route())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// Deploy routes req.Service to req.Target. It validates req, waits until
// the target passes a health check (within req.DeployTimeout, or until ctx
// ends), swaps the route, saves the state, and drains the previous target
// for up to req.DrainTimeout before it returns. On any error before the
// swap the route is exactly as it was.
func (s *Server) Deploy(ctx context.Context, req DeployRequest) (Route, error) {
	req = req.withDefaults()
	if err := req.Validate(); err != nil {
		return Route{}, err
	}
	lock := s.serviceLock(req.Service)
	lock.Lock()
	defer lock.Unlock()
	log := s.log.With("service", req.Service, "target", req.Target)

	svc, err := s.newService(req, time.Time{}, true)
	if err != nil {
		return Route{}, err
	}
	if _, err := s.prospective(req.Service, svc); err != nil {
		s.metrics.deploy(req.Service, "conflict")
		return Route{}, err
	}
	start := time.Now()
	if err := waitHealthy(ctx, req); err != nil {
		s.metrics.deploy(req.Service, "unhealthy")
		log.WarnContext(ctx, "deploy refused", "err", err)
		return Route{}, err
	}
	t := newTarget(s, req)
	t.setHealth(true, "")
	svc.since, svc.target = time.Now(), t

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Route{}, errors.New("proxy is shutting down")
	}
	old := s.table.Load().services[req.Service]
	tab, err := s.prospective(req.Service, svc)
	if err == nil {
		err = s.save(tab)
	}
	if err != nil {
		s.mu.Unlock()
		t.shutdown()
		s.metrics.deploy(req.Service, "error")
		return Route{}, err
	}
	s.table.Store(tab)
	s.mu.Unlock()
	go t.monitor()
	log.InfoContext(ctx, "route switched", "healthy_after", time.Since(start))

	if old != nil {
		clean := old.target.drain(time.Duration(req.DrainTimeout))
		log.InfoContext(ctx, "old target drained", "old_target", old.req.Target, "clean", clean)
	}
	s.metrics.deploy(req.Service, "ok")
	return svc.route(), nil
}

// Remove deletes a service's route, then drains its target for up to the
// route's drain timeout. Requests for it get 404 from the switch on.
func (s *Server) Remove(ctx context.Context, name string) error {
	lock := s.serviceLock(name)
	lock.Lock()
	defer lock.Unlock()
	s.mu.Lock()
	old := s.table.Load().services[name]
	if old == nil {
		s.mu.Unlock()
		return fmt.Errorf("remove %q: %w", name, ErrNotFound)
	}
	tab, err := s.prospective(name, nil)
	if err == nil {
		err = s.save(tab)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.table.Store(tab)
	s.mu.Unlock()
	old.target.drain(time.Duration(old.req.DrainTimeout))
	s.log.InfoContext(ctx, "route removed", "service", name, "target", old.req.Target)
	return nil
}

// prospective is the current table with name routed to svc (nil: removed).
func (s *Server) prospective(name string, svc *service) (*table, error) {
	cur := s.table.Load().services
	next := make(map[string]*service, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if svc == nil {
		delete(next, name)
	} else {
		next[name] = svc
	}
	return buildTable(next)
}

// serveHTTP handles plain HTTP: TLS routes are redirected to HTTPS.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) { s.serveProxy(w, r, false) }

func (s *Server) serveHTTPS(w http.ResponseWriter, r *http.Request) { s.serveProxy(w, r, true) }

func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, overTLS bool) {
	start := time.Now()
	host := normalizeHost(r.Host)
	ex := getExchange(w, s.cfg.WriteTimeout)
	defer putExchange(ex)
	var svc *service
	answered := false
	for range 4 {
		svc = s.table.Load().match(host, r.URL.Path)
		if svc == nil {
			writeShort(ex, http.StatusNotFound)
			answered = true
			break
		}
		if svc.req.TLS && !overTLS && s.httpsPort.Load() != 0 {
			s.redirectHTTPS(ex, r, host)
			answered = true
			break
		}
		t := svc.target
		if !t.acquire() {
			continue // switched under us: the new table is already in place
		}
		upgrade := r.Header.Get("Upgrade") != ""
		if r.Body != nil && r.Body != http.NoBody && !upgrade {
			if d, ok := w.(readDeadliner); ok {
				r.Body = &progressBody{ReadCloser: r.Body, conn: d, limit: s.cfg.ReadTimeout, ex: ex}
			}
		}
		t.rp.ServeHTTP(ex, r)
		t.release()
		if upgrade && ex.status == 0 {
			ex.status = http.StatusSwitchingProtocols // ReverseProxy wrote it on the hijacked connection
		}
		answered = true
		break
	}
	if !answered {
		writeShort(ex, http.StatusBadGateway) // the route kept switching under this request
	}
	elapsed := time.Since(start)
	if svc != nil && svc.metrics != nil {
		svc.metrics.observe(ex.status, elapsed)
	} else {
		s.metrics.noRoute.Inc()
	}
	if s.accessLog != nil {
		s.accessLog.log(r, ex, svc, host, start, elapsed)
	}
}

func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request, host string) {
	target := "https://" + host
	if p := s.httpsPort.Load(); p != 0 && p != 443 {
		target += ":" + strconv.FormatInt(p, 10)
	}
	target += r.URL.RequestURI()
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

// writeShort answers with status and a one-line body.
func writeShort(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	switch status {
	case http.StatusNotFound:
		io.WriteString(w, "404 no route for this host and path\n")
	default:
		io.WriteString(w, strconv.Itoa(status)+" "+http.StatusText(status)+"\n")
	}
}

// exchange wraps a ResponseWriter to record the status and size for the
// access log and metrics, and to move the connection's write deadline on
// with every write. Unwrap lets ReverseProxy reach Flush and Hijack.
type exchange struct {
	rw       http.ResponseWriter
	dl       writeDeadliner // nil if rw cannot set deadlines
	limit    time.Duration
	status   int
	bytes    int64
	proxyErr error

	deadlineSet time.Time // when progress last moved the write deadline

	bodyTimedOut atomic.Bool // the client stalled sending its body
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }
type readDeadliner interface{ SetReadDeadline(time.Time) error }

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func getExchange(w http.ResponseWriter, limit time.Duration) *exchange {
	ex := exchangePool.Get().(*exchange)
	ex.rw, ex.limit = w, limit
	ex.dl, _ = w.(writeDeadliner)
	return ex
}

func putExchange(ex *exchange) {
	ex.rw, ex.dl, ex.status, ex.bytes, ex.proxyErr, ex.deadlineSet = nil, nil, 0, 0, nil, time.Time{}
	ex.bodyTimedOut.Store(false)
	exchangePool.Put(ex)
}

func (ex *exchange) Header() http.Header { return ex.rw.Header() }

// progress gives the client WriteTimeout to take what is written next; a
// deadline left from an earlier request on the connection is replaced. It
// moves the deadline at most once a second, to keep the hot path cheap.
func (ex *exchange) progress() {
	if ex.dl == nil {
		return
	}
	now := time.Now()
	if ex.deadlineSet.IsZero() || now.Sub(ex.deadlineSet) > time.Second {
		ex.dl.SetWriteDeadline(now.Add(ex.limit))
		ex.deadlineSet = now
	}
}

func (ex *exchange) WriteHeader(code int) {
	if ex.status == 0 && code >= 200 {
		ex.status = code
	}
	ex.progress()
	ex.rw.WriteHeader(code)
}

func (ex *exchange) Write(b []byte) (int, error) {
	if ex.status == 0 {
		ex.status = http.StatusOK
	}
	ex.progress()
	n, err := ex.rw.Write(b)
	ex.bytes += int64(n)
	return n, err
}

func (ex *exchange) Unwrap() http.ResponseWriter { return ex.rw }

// progressBody gives a client ReadTimeout for each next piece of its
// request body, and lifts the deadline at the end of the body, so the
// request may then run as long as the target takes.
type progressBody struct {
	io.ReadCloser
	conn  readDeadliner
	limit time.Duration
	ex    *exchange
}

func (b *progressBody) Read(p []byte) (int, error) {
	b.conn.SetReadDeadline(time.Now().Add(b.limit))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.conn.SetReadDeadline(time.Time{})
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		b.ex.bodyTimedOut.Store(true) // the deadline stays, so net/http does not wait for the rest
	}
	return n, err
}

// bufferPool implements httputil.BufferPool with 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (bp *bufferPool) Get() []byte  { return *(bp.p.Get().(*[]byte)) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
