package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bosunhq/bosun/proxy"
)

func init() {
	register(&command{name: "proxy", summary: "run bosun's reverse proxy, or switch its routes", run: runProxy})
}

const proxyUsage = `Usage: bosun proxy SUBCOMMAND [flags]

Subcommands:
  run                          serve HTTP/HTTPS and the control API
  deploy SERVICE --target H:P  switch SERVICE to a healthy target, drain the old one
  remove SERVICE               delete SERVICE's route, drain its target
  list                         show routes, targets, health and since when

The client subcommands reach the control API at --control or
$BOSUN_PROXY_CONTROL (default 127.0.0.1:7080; HOST:PORT or unix:PATH) with
the token in $BOSUN_PROXY_TOKEN. The bosun-proxy container that bosun
installs listens on unix:/run/bosun-proxy/control.sock on its server.
Run 'bosun proxy SUBCOMMAND --help' for flags.
`

func runProxy(ctx context.Context, args []string, e env) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, proxyUsage)
		if len(args) == 0 {
			return 1, nil
		}
		return 0, nil
	}
	switch args[0] {
	case "run":
		return runProxyRun(ctx, args[1:], e)
	case "deploy":
		return runProxyDeploy(ctx, args[1:], e)
	case "remove":
		return runProxyRemove(ctx, args[1:], e)
	case "list":
		return runProxyList(ctx, args[1:], e)
	}
	fmt.Fprintf(e.stderr, "bosun proxy: unknown subcommand %q\n\n%s", args[0], proxyUsage)
	return 1, nil
}

func runProxyRun(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("proxy run", "bosun proxy run [flags]", `
Serve the routes on --http and --https and the control API on --control.
The control token comes from $BOSUN_PROXY_TOKEN, else from --token-file
(made with a random token on first start if missing). An empty address
turns that listener off. Routes and certificates live under --state.
Access log: one JSON line per request on stdout; events on stderr.`, e)
	httpAddr := fs.String("http", ":80", "plain HTTP `address`")
	httpsAddr := fs.String("https", ":443", "HTTPS `address` (HTTP/2, ACME TLS-ALPN-01)")
	controlAddr := fs.String("control", "127.0.0.1:7080", "control API `address`: HOST:PORT, or unix:PATH for a unix socket; keep it off public interfaces")
	metricsAddr := fs.String("metrics", "", "Prometheus /metrics `address` (off when empty)")
	stateDir := fs.String("state", "/var/lib/bosun-proxy", "state `dir`ectory: routes.json and ACME certificates")
	tokenFile := fs.String("token-file", "", "`file` holding the control token")
	localCA := fs.String("tls-local-ca", "", "issue certificates from a local CA kept in `dir` instead of ACME")
	acmeDir := fs.String("acme-directory", "", "ACME directory `URL` (default Let's Encrypt production)")
	acmeEmail := fs.String("acme-email", "", "contact `email` for the ACME account")
	trusted := fs.String("trusted-proxies", "", "comma-separated `CIDRs or IPs` whose X-Forwarded-* headers are kept")
	accessLog := fs.Bool("access-log", true, "write the JSON access log to stdout")
	readTimeout := fs.Duration("read-timeout", 60*time.Second, "longest wait for the next bytes of a request body (a progress limit)")
	writeTimeout := fs.Duration("write-timeout", 60*time.Second, "longest wait for a client to take the next bytes of a response (a progress limit)")
	idleTimeout := fs.Duration("idle-timeout", 120*time.Second, "keep-alive connection idle limit")
	debugLog := fs.Bool("debug", false, "log debug events")
	pprof := fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the --metrics address")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 0 {
		return 1, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	level := slog.LevelInfo
	if *debugLog {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	token, err := controlToken(e, *tokenFile)
	if err != nil {
		return 1, err
	}
	prefixes, err := parseTrusted(*trusted)
	if err != nil {
		return 1, err
	}
	cfg := proxy.Config{
		Token: token, StateDir: *stateDir, LocalCADir: *localCA,
		ACMEDirectoryURL: *acmeDir, ACMEEmail: *acmeEmail, TrustedProxies: prefixes,
		Logger: logger, ReadTimeout: *readTimeout, WriteTimeout: *writeTimeout, IdleTimeout: *idleTimeout,
		Pprof: *pprof,
	}
	var flush *flushWriter
	if *accessLog {
		flush = newFlushWriter(e.stdout, 200*time.Millisecond, logger)
		defer flush.Close()
		cfg.AccessLog = flush
	}
	if e.getenv("GOGC") == "" {
		// The proxy's live heap is a few MiB and almost all garbage is
		// per-request; collecting at 5x instead of 2x the live heap
		// halves GC work for a few MiB more memory.
		debug.SetGCPercent(400)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return 1, err
	}
	var l proxy.Listeners
	for _, x := range []struct {
		addr string
		ln   *net.Listener
	}{{*httpAddr, &l.HTTP}, {*httpsAddr, &l.HTTPS}, {*controlAddr, &l.Control}, {*metricsAddr, &l.Metrics}} {
		if x.addr == "" {
			continue
		}
		ln, err := listen(x.addr)
		if err != nil {
			closeListeners(l)
			srv.Close()
			return 1, fmt.Errorf("listen: %w", err)
		}
		*x.ln = ln
		logger.InfoContext(ctx, "listening", "component", "proxy", "addr", ln.Addr().String())
	}
	if err := srv.Serve(ctx, l); err != nil {
		return 1, err
	}
	return 0, nil
}

// listen opens a TCP listener on HOST:PORT, or a unix socket on unix:PATH.
// A socket file left by an earlier run is replaced. The socket is mode
// 0666: whoever can reach its folder may connect, and the control token
// guards every call; the executor reaches it over SSH (streamlocal), which
// needs no other permission than the SSH user's.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func closeListeners(l proxy.Listeners) {
	for _, ln := range []net.Listener{l.HTTP, l.HTTPS, l.Control, l.Metrics} {
		if ln != nil {
			ln.Close()
		}
	}
}

// controlToken is $BOSUN_PROXY_TOKEN, else the token file's content; a
// missing token file is made with a random token.
func controlToken(e env, file string) (string, error) {
	if t := strings.TrimSpace(e.getenv("BOSUN_PROXY_TOKEN")); t != "" {
		return t, nil
	}
	if file == "" {
		return "", errors.New("no control token: set BOSUN_PROXY_TOKEN or --token-file")
	}
	data, err := os.ReadFile(file)
	if err == nil {
		t := strings.TrimSpace(string(data))
		if t == "" {
			return "", fmt.Errorf("token file %s is empty", file)
		}
		return t, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token file: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	t := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("make token file: %w", err)
	}
	if err := os.WriteFile(file, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("make token file: %w", err)
	}
	return t, nil
}

func parseTrusted(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither a CIDR nor an IP address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// proxyClient builds the control API client from --control and the env.
func proxyClient(e env, control string) (*proxy.Client, error) {
	if control == "" {
		control = e.getenv("BOSUN_PROXY_CONTROL")
	}
	if control == "" {
		control = "127.0.0.1:7080"
	}
	token := strings.TrimSpace(e.getenv("BOSUN_PROXY_TOKEN"))
	if token == "" {
		return nil, errors.New("no control token: set BOSUN_PROXY_TOKEN")
	}
	return proxy.NewClient(proxy.ClientConfig{Addr: control, Token: token})
}

// splitService takes SERVICE from the front (or, after flags, the back) of
// args, so both "deploy web --target …" and "deploy --target … web" work.
func splitService(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func runProxyDeploy(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("proxy deploy", "bosun proxy deploy SERVICE --target HOST:PORT [flags]", `
Route SERVICE to the target. Returns once the target passed a health check,
serves the route, and the previous target has drained. If the target does
not get healthy within --deploy-timeout, exits non-zero and the route stays
exactly as it was.`, e)
	control := fs.String("control", "", "control API `address`, HOST:PORT or unix:PATH (default $BOSUN_PROXY_CONTROL or 127.0.0.1:7080)")
	var req proxy.DeployRequest
	var hosts stringList
	fs.StringVar(&req.Target, "target", "", "`HOST:PORT` of the new target (required)")
	fs.Var(&hosts, "host", "host `name` to route (repeatable; *.example.com matches one label; none: catch-all)")
	fs.StringVar(&req.PathPrefix, "path-prefix", "/", "route only this path `prefix`")
	fs.BoolVar(&req.StripPrefix, "strip-prefix", false, "remove the path prefix before forwarding")
	fs.BoolVar(&req.TLS, "tls", false, "serve the hosts over HTTPS with automatic certificates; redirect HTTP")
	certFile := fs.String("tls-certificate", "", "PEM `file` of a custom certificate for the hosts (leaf, then chain), served instead of an automatic one; needs --tls and --tls-key")
	keyFile := fs.String("tls-key", "", "PEM `file` of the custom certificate's private key")
	fs.StringVar(&req.HealthPath, "health-path", proxy.DefaultHealthPath, "health check `path`; any 2xx is healthy")
	hi := fs.Duration("health-interval", proxy.DefaultHealthInterval, "time between health checks")
	ht := fs.Duration("health-timeout", proxy.DefaultHealthTimeout, "limit on one health check")
	dt := fs.Duration("deploy-timeout", proxy.DefaultDeployTimeout, "limit on the target getting healthy")
	drt := fs.Duration("drain-timeout", proxy.DefaultDrainTimeout, "limit on the old target's requests finishing")
	rt := fs.Duration("response-timeout", proxy.DefaultResponseTimeout, "limit on the target's response headers (then 504)")
	jsonOut := fs.Bool("json", false, "print the route as JSON")
	service, rest := splitService(args)
	if code, err := parseFlags(fs, rest, e); code >= 0 {
		return code, err
	}
	if service == "" && fs.NArg() == 1 {
		service = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return 1, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if service == "" {
		return 1, errors.New("usage: bosun proxy deploy SERVICE --target HOST:PORT")
	}
	req.Service, req.Hosts = service, hosts
	if (*certFile == "") != (*keyFile == "") {
		return 1, errors.New("--tls-certificate and --tls-key go together")
	}
	if *certFile != "" {
		// Files, never values on the command line.
		cert, err := os.ReadFile(*certFile)
		if err != nil {
			return 1, fmt.Errorf("read --tls-certificate: %w", err)
		}
		key, err := os.ReadFile(*keyFile)
		if err != nil {
			return 1, fmt.Errorf("read --tls-key: %w", err)
		}
		req.TLSCertificate, req.TLSKey = string(cert), string(key)
	}
	req.HealthInterval, req.HealthTimeout = proxy.Duration(*hi), proxy.Duration(*ht)
	req.DeployTimeout, req.DrainTimeout, req.ResponseTimeout = proxy.Duration(*dt), proxy.Duration(*drt), proxy.Duration(*rt)
	c, err := proxyClient(e, *control)
	if err != nil {
		return 1, err
	}
	ctx, cancel := context.WithTimeout(ctx, *dt+*drt+30*time.Second)
	defer cancel()
	route, err := c.Deploy(ctx, req)
	if err != nil {
		return 1, err
	}
	if *jsonOut {
		return 0, printJSON(e.stdout, route)
	}
	fmt.Fprintf(e.stdout, "%s now served by %s\n", route.Service, route.Target)
	return 0, nil
}

func runProxyRemove(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("proxy remove", "bosun proxy remove SERVICE", "Delete SERVICE's route and wait until its target drained.", e)
	control := fs.String("control", "", "control API `address`, HOST:PORT or unix:PATH (default $BOSUN_PROXY_CONTROL or 127.0.0.1:7080)")
	service, rest := splitService(args)
	if code, err := parseFlags(fs, rest, e); code >= 0 {
		return code, err
	}
	if service == "" && fs.NArg() == 1 {
		service = fs.Arg(0)
	}
	if service == "" {
		return 1, errors.New("usage: bosun proxy remove SERVICE")
	}
	c, err := proxyClient(e, *control)
	if err != nil {
		return 1, err
	}
	if err := c.Remove(ctx, service); err != nil {
		return 1, err
	}
	fmt.Fprintf(e.stdout, "%s removed\n", service)
	return 0, nil
}

func runProxyList(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("proxy list", "bosun proxy list [--json]", "Show every route: service, hosts, path, target, health and since when.", e)
	control := fs.String("control", "", "control API `address`, HOST:PORT or unix:PATH (default $BOSUN_PROXY_CONTROL or 127.0.0.1:7080)")
	jsonOut := fs.Bool("json", false, "print JSON")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	c, err := proxyClient(e, *control)
	if err != nil {
		return 1, err
	}
	routes, err := c.List(ctx)
	if err != nil {
		return 1, err
	}
	if *jsonOut {
		return 0, printJSON(e.stdout, routes)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tHOSTS\tPATH\tTARGET\tTLS\tHEALTH\tSINCE")
	for _, r := range routes {
		hosts := strings.Join(r.Hosts, ",")
		if hosts == "" {
			hosts = "*"
		}
		health := "healthy"
		if !r.Healthy {
			health = "unhealthy: " + r.HealthError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", r.Service, hosts, r.PathPrefix, r.Target, r.TLS, health, r.Since.UTC().Format(time.RFC3339))
	}
	return 0, tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// flushWriter collects access log lines in memory and writes them out from
// its own goroutine every period, or sooner once 64 KiB are waiting. The
// request path never does I/O: if the output blocks (a stuck log pipe),
// lines beyond 8 MiB are dropped and counted rather than stalling requests.
type flushWriter struct {
	w      io.Writer
	log    *slog.Logger
	mu     sync.Mutex
	buf    []byte
	drops  int64
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	period time.Duration
}

const (
	flushSoon = 64 << 10
	flushMax  = 8 << 20
)

func newFlushWriter(w io.Writer, period time.Duration, log *slog.Logger) *flushWriter {
	f := &flushWriter{w: w, log: log, buf: make([]byte, 0, flushSoon*2), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), period: period}
	go f.loop()
	return f
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	if len(f.buf)+len(p) > flushMax {
		f.drops++
		f.mu.Unlock()
		return len(p), nil
	}
	f.buf = append(f.buf, p...)
	soon := len(f.buf) >= flushSoon
	f.mu.Unlock()
	if soon {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (f *flushWriter) loop() {
	defer close(f.done)
	t := time.NewTicker(f.period)
	defer t.Stop()
	spare := make([]byte, 0, flushSoon*2)
	for {
		stopping := false
		select {
		case <-f.stop:
			stopping = true
		case <-t.C:
		case <-f.kick:
		}
		f.mu.Lock()
		out, drops := f.buf, f.drops
		f.buf, f.drops = spare[:0], 0
		f.mu.Unlock()
		if len(out) > 0 {
			f.w.Write(out)
		}
		if drops > 0 && f.log != nil {
			f.log.WarnContext(context.Background(), "access log lines dropped: output blocked", "component", "proxy", "lines", drops)
		}
		spare = out
		if cap(spare) > flushMax/4 {
			spare = make([]byte, 0, flushSoon*2) // do not keep a burst's buffer forever
		}
		if stopping {
			return
		}
	}
}

// Close writes out what is buffered and stops the writer goroutine.
func (f *flushWriter) Close() error {
	close(f.stop)
	<-f.done
	return nil
}
