// Command sampleapp is the web app the testbed deploys in bosun's tests: a
// static binary in an image with no base, one image per version and mode.
//
//	GET /up          200 "ok" when healthy (500 when APP_MODE=unhealthy)
//	GET /api/health  the same (the health path of the nextjs template)
//	GET /, POST /    200 with the version (APP_VERSION) and the host name
//	GET /slow?d=2s   answers after d (at most 5m), for drain tests
//
// It listens on :$PORT (default 80). On SIGTERM it stops accepting
// connections and lets in-flight requests finish (http.Server.Shutdown, up to
// $DRAIN_TIMEOUT, default 30s). APP_MODE=crash makes it exit at once with a
// log line, as a broken release would.
//
// With $WRITE_FILE set it first writes its version to that file, so a test
// can see where a mounted folder lands on the server.
//
// `sampleapp check URL` is a health check command for Docker (the image has
// no shell or curl): it GETs URL and exits 0 on 200, else 1 saying why.
//
// With $PROXY_TO set (an http:// URL) it is a stand-in for kamal-proxy
// instead: a reverse proxy to that URL listening on :80 and :443 (plain
// HTTP on both), which stops listening at SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("sampleapp: ")
	if len(os.Args) == 3 && os.Args[1] == "check" {
		if err := check(os.Args[2]); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		return
	}
	if to := os.Getenv("PROXY_TO"); to != "" {
		if err := reverseProxy(to); err != nil {
			log.Fatal(err)
		}
		return
	}
	version, mode := os.Getenv("APP_VERSION"), os.Getenv("APP_MODE")
	if mode == "crash" {
		log.Fatalf("version %s: crashing at start (APP_MODE=crash)", version)
	}
	if f := os.Getenv("WRITE_FILE"); f != "" {
		if err := os.WriteFile(f, []byte(version+"\n"), 0o644); err != nil {
			log.Fatalf("version %s: %v", version, err)
		}
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	drain := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("DRAIN_TIMEOUT")); err == nil {
		drain = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	log.Printf("version %s (mode %q) listening on :%s", version, mode, port)
	if err := serve(ctx, l, version, mode, drain); err != nil {
		log.Fatal(err)
	}
	log.Printf("version %s: stopped", version)
}

// check GETs url and returns an error unless it answers 200.
func check(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("check %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("check %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// slowStarted, when set (by tests), is called as a /slow request starts.
var slowStarted func()

// serve answers on l until ctx is done, then stops accepting connections
// and lets in-flight requests finish, for up to drain.
func serve(ctx context.Context, l net.Listener, version, mode string, drain time.Duration) error {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	health := func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "unhealthy (APP_MODE=unhealthy)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("GET /up", health)
	mux.HandleFunc("GET /api/health", health)
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > 5*time.Minute {
			http.Error(w, "d must be a duration up to 5m", http.StatusBadRequest)
			return
		}
		if slowStarted != nil {
			slowStarted()
		}
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "%s slow %s\n", version, d)
		case <-r.Context().Done():
		}
	})
	answer := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-App-Version", version)
		fmt.Fprintf(w, "%s %s\n", version, host)
	}
	mux.HandleFunc("GET /", answer)
	mux.HandleFunc("POST /", answer)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Printf("version %s: stopping, draining for up to %s", version, drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// reverseProxy forwards every request to target on :80 and :443 until
// SIGTERM, then closes its listeners at once (as a proxy that is stopped).
func reverseProxy(target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("PROXY_TO %q: want http://HOST[:PORT]", target)
	}
	h := httputil.NewSingleHostReverseProxy(u)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var srvs []*http.Server
	served := make(chan error, 2)
	for _, addr := range []string{":80", ":443"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		srvs = append(srvs, srv)
		go func() { served <- srv.Serve(l) }()
	}
	log.Printf("proxy to %s listening on :80 and :443", target)
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range srvs {
		_ = srv.Shutdown(sctx)
	}
	log.Printf("proxy stopped")
	return nil
}
