package executor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bosunhq/bosun/internal/testbed"
)

// testSSHD is a real OpenSSH sshd run in inetd mode (-i), one process per
// connection, as golang.org/x/crypto/ssh/test does. Nothing binds a fixed
// port: connections come from a socketpair (dial) or a loopback listener on
// port 0 (addr).
type testSSHD struct {
	t        testing.TB
	bin      string // sshd
	dir      string
	cfgPath  string
	hostKeys []ssh.Signer
	addr     string // 127.0.0.1:PORT of the listener; "" until listen
	mu       sync.Mutex
	procs    []*exec.Cmd
}

// newTestSSHD writes a config with fresh host keys of the given types
// ("ed25519", "rsa") and authorises clientKey for the current user.
func newTestSSHD(t testing.TB, clientKey ssh.PublicKey, keyTypes ...string) *testSSHD {
	t.Helper()
	// Skips under -short; installs openssh-server when sshd is missing.
	bin := testbed.RequireCommand(t, "sshd", "openssh-server")
	if len(keyTypes) == 0 {
		keyTypes = []string{"ed25519"}
	}
	// sshd wants its privilege separation directory even in inetd mode.
	_ = os.MkdirAll("/run/sshd", 0o755)
	dir := t.TempDir()
	s := &testSSHD{t: t, bin: bin, dir: dir}
	var cfg strings.Builder
	for _, kt := range keyTypes {
		var priv any
		switch kt {
		case "ed25519":
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			priv = k
		case "rsa":
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			priv = k
		default:
			t.Fatalf("key type %s", kt)
		}
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "host_"+kt)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		s.hostKeys = append(s.hostKeys, signer)
		fmt.Fprintf(&cfg, "HostKey %s\n", p)
	}
	ak := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(ak, ssh.MarshalAuthorizedKey(clientKey), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&cfg, "AuthorizedKeysFile %s\nStrictModes no\nUsePAM no\nPermitRootLogin yes\nPidFile none\n"+
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nLogLevel ERROR\n", ak)
	s.cfgPath = filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(s.cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// serve runs one sshd -i on f (which it takes over).
func (s *testSSHD) serve(f *os.File) error {
	cmd := exec.Command(s.bin, "-i", "-e", "-f", s.cfgPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, io.Discard
	err := cmd.Start()
	_ = f.Close()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.mu.Unlock()
	go func() { _ = cmd.Wait() }()
	return nil
}

// dial is a DialFunc: a socketpair with sshd -i on the other end.
func (s *testSSHD) dial(ctx context.Context, addr string) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "client"), os.NewFile(uintptr(fds[1]), "sshd")
	if err := s.serve(theirs); err != nil {
		_ = mine.Close()
		return nil, err
	}
	c, err := net.FileConn(mine)
	_ = mine.Close()
	return c, err
}

// listen accepts TCP connections on 127.0.0.1:0, each served by sshd -i.
func (s *testSSHD) listen() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f, err := c.(*net.TCPConn).File()
			_ = c.Close()
			if err == nil {
				_ = s.serve(f)
			}
		}
	}()
	s.addr = ln.Addr().String()
	return s.addr
}

func (s *testSSHD) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.procs {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
}

// knownHostsLine is the known_hosts line of host key i for addr.
func (s *testSSHD) knownHostsLine(addr string, i int) string {
	return knownhostsLine(addr, s.hostKeys[i].PublicKey())
}

func currentUser(t testing.TB) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
