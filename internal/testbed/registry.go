package testbed

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// hostRegistry is an in-memory registry served by this process on three
// addresses with the same storage: the test network's gateway, where the
// servers' dockerds pull from it; loopback, where this process pushes; and
// a second gateway port that demands a login (HTTP basic auth), as a
// private registry does.
type hostRegistry struct {
	addr        string // GATEWAY:PORT
	pushAddr    string // 127.0.0.1:PORT
	privateAddr string // GATEWAY:PORT, login required
	user, pass  string // the private address's login
	servers     []*http.Server
	done        chan struct{}
}

// requireLogin answers 401 with a basic-auth challenge unless the request
// carries user and pass.
func requireLogin(h http.Handler, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="bosun testbed"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"login required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func startRegistry(gateway string) (*hostRegistry, error) {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	outer, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen for registry on %s: %w", gateway, err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		outer.Close()
		return nil, fmt.Errorf("listen for registry on loopback: %w", err)
	}
	private, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		outer.Close()
		inner.Close()
		return nil, fmt.Errorf("listen for private registry on %s: %w", gateway, err)
	}
	r := &hostRegistry{addr: outer.Addr().String(), pushAddr: inner.Addr().String(), privateAddr: private.Addr().String(),
		user: "bosun", pass: rand.Text(), done: make(chan struct{})}
	listeners := []net.Listener{outer, inner, private}
	served := make(chan struct{}, len(listeners))
	for _, l := range listeners {
		handler := h
		if l == private {
			handler = requireLogin(h, r.user, r.pass)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
		r.servers = append(r.servers, srv)
		go func() {
			defer func() { served <- struct{}{} }()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				log.Printf("testbed: registry on %s: %v", l.Addr(), err)
			}
		}()
	}
	go func() {
		for range listeners {
			<-served
		}
		close(r.done)
	}()
	return r, nil
}

func (r *hostRegistry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range r.servers {
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
		}
	}
	<-r.done
}

// LocalRegistry serves an in-memory registry on 127.0.0.1 only, as Kamal's
// local registry (registry.server: localhost:PORT) runs on the deployer's
// machine: no test server can reach it, except through an SSH remote
// forward. It returns "127.0.0.1:PORT" and stops at t.Cleanup.
func LocalRegistry(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the local registry: %v", err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return l.Addr().String()
}
