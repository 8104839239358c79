package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bosunhq/bosun/planner"
)

// Kamal's local registry (registry.server: localhost:PORT): the image is in
// a registry on the machine bosun runs on, bound to 127.0.0.1:PORT, and
// each server pulls it from its own localhost:PORT, which bosun forwards
// back over its SSH connection (an SSH remote forward, "tcpip-forward"), as
// Kamal does. Docker trusts registries on 127.0.0.0/8 without TLS, so the
// server's dockerd needs no setting for it. The forward lives while the
// host's pulls run and is closed after them.

// localRegistryAddr is where the local registry listens on this machine.
func localRegistryAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// usesLocalRegistry reports whether a spec's image is pulled through the
// forward of the service's local registry.
func usesLocalRegistry(pol planner.Service, spec *planner.Spec) bool {
	if pol.LocalRegistryPort <= 0 || pol.LocalRegistryPort > 65535 {
		return false
	}
	prefix := "localhost:" + strconv.Itoa(pol.LocalRegistryPort) + "/"
	return len(spec.Image) > len(prefix) && spec.Image[:len(prefix)] == prefix
}

// checkLocalRegistry asks the registry at 127.0.0.1:PORT of this machine
// for its API root (GET /v2/): a registry answers 200, or 401 when it wants
// a login. Anything else means the servers would find no image behind the
// forward, so the rollout fails before it touches a container.
func checkLocalRegistry(ctx context.Context, port int) error {
	addr := localRegistryAddr(port)
	hint := fmt.Sprintf("registry.server localhost:%d is Kamal's local registry: the servers pull through an SSH forward to %s on the machine bosun runs on, "+
		"so a registry must listen there with the image pushed to it (e.g. docker run -d -p %s:5000 registry:3)", port, addr, addr)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("no registry listens on %s: %s", addr, hint)
		}
		return fmt.Errorf("no registry answers on %s (%v): %s", addr, err, hint)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%s answered GET /v2/ with %s, not as a registry does: %s", addr, resp.Status, hint)
	}
	return nil
}

// localForward is one remote forward on a host: the server's
// 127.0.0.1:PORT, each connection carried back to 127.0.0.1:PORT here.
type localForward struct {
	ln    net.Listener
	users int
	done  chan struct{}
}

// forwardLocalRegistry opens (or shares) the remote forward of port on the
// host and returns the function that releases it; the last release closes
// the listener on the server (cancel-tcpip-forward) and every connection
// through it.
func (hc *hostConn) forwardLocalRegistry(ctx context.Context, port int) (release func(), err error) {
	hc.fwdMu.Lock()
	defer hc.fwdMu.Unlock()
	if f := hc.forwards[port]; f != nil {
		f.users++
		return hc.releaser(port, f), nil
	}
	cl, err := hc.ssh.Client(ctx)
	if err != nil {
		return nil, err
	}
	// golang.org/x/crypto/ssh sends "tcpip-forward" for 127.0.0.1:PORT:
	// sshd binds it on the server's loopback only (GatewayPorts no).
	ln, err := cl.Listen("tcp", localRegistryAddr(port))
	if err != nil {
		return nil, fmt.Errorf("forward port %d of %s to the local registry: the server refused the SSH remote forward (is 127.0.0.1:%d taken there, or AllowTcpForwarding off in its sshd_config?): %w", port, hc.name, port, err)
	}
	f := &localForward{ln: ln, users: 1, done: make(chan struct{})}
	if hc.forwards == nil {
		hc.forwards = map[int]*localForward{}
	}
	hc.forwards[port] = f
	go f.serve(localRegistryAddr(port))
	return hc.releaser(port, f), nil
}

func (hc *hostConn) releaser(port int, f *localForward) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			hc.fwdMu.Lock()
			f.users--
			last := f.users == 0
			if last && hc.forwards[port] == f {
				delete(hc.forwards, port)
			}
			hc.fwdMu.Unlock()
			if last {
				_ = f.ln.Close()
				<-f.done
			}
		})
	}
}

// serve carries each connection the server makes to its forwarded port to
// addr on this machine, until the listener closes; then it closes the
// connections still open.
func (f *localForward) serve(addr string) {
	defer close(f.done)
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	var wg sync.WaitGroup
	for {
		remote, err := f.ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			local, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				_ = remote.Close()
				return
			}
			mu.Lock()
			open[remote], open[local] = true, true
			mu.Unlock()
			pipe(remote, local)
			mu.Lock()
			delete(open, remote)
			delete(open, local)
			mu.Unlock()
		}()
	}
	mu.Lock()
	for c := range open {
		_ = c.Close()
	}
	mu.Unlock()
	wg.Wait()
}

// pipe copies both ways until either side ends, then closes both.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	_ = a.Close()
	_ = b.Close()
}
