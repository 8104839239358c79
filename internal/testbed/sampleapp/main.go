// Command sampleapp is the web app the testbed deploys in bosun's tests: a
// static binary in an image with no base, one image per version and mode.
//
//	GET /up          200 "ok" when healthy (500 when APP_MODE=unhealthy)
//	GET /, POST /    200 with the version (APP_VERSION) and the host name
//	GET /slow?d=2s   answers after d (at most 5m), for drain tests
//
// It listens on :$PORT (default 80). On SIGTERM it stops accepting
// connections and lets in-flight requests finish (http.Server.Shutdown, up to
// $DRAIN_TIMEOUT, default 30s). APP_MODE=crash makes it exit at once with a
// log line, as a broken release would.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("sampleapp: ")
	version, mode := os.Getenv("APP_VERSION"), os.Getenv("APP_MODE")
	if mode == "crash" {
		log.Fatalf("version %s: crashing at start (APP_MODE=crash)", version)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	drain := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("DRAIN_TIMEOUT")); err == nil {
		drain = d
	}
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "unhealthy (APP_MODE=unhealthy)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > 5*time.Minute {
			http.Error(w, "d must be a duration up to 5m", http.StatusBadRequest)
			return
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

	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		s := <-sig
		log.Printf("version %s: %s, draining for up to %s", version, s, drain)
		ctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Printf("drain: %v", err)
		}
	}()
	log.Printf("version %s (mode %q) listening on :%s", version, mode, port)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
	<-done
	log.Printf("version %s: stopped", version)
}
