package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// hostRegistry is an in-memory registry served by this process on two
// addresses with the same storage: the test network's gateway, where the
// servers' dockerds pull from it, and loopback, where this process pushes.
type hostRegistry struct {
	addr     string // GATEWAY:PORT
	pushAddr string // 127.0.0.1:PORT
	servers  []*http.Server
	done     chan struct{}
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
	r := &hostRegistry{addr: outer.Addr().String(), pushAddr: inner.Addr().String(), done: make(chan struct{})}
	served := make(chan struct{}, 2)
	for _, l := range []net.Listener{outer, inner} {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
		r.servers = append(r.servers, srv)
		go func() {
			defer func() { served <- struct{}{} }()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				log.Printf("testbed: registry on %s: %v", l.Addr(), err)
			}
		}()
	}
	go func() { <-served; <-served; close(r.done) }()
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
