package executor

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/bosunhq/bosun/planner"
)

type sshBundle struct {
	signer ssh.Signer
	kh     string // known_hosts path
}

func newSSHBundle(t *testing.T) *sshBundle {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &sshBundle{signer: s, kh: filepath.Join(t.TempDir(), "known_hosts")}
}

func (b *sshBundle) pool(t *testing.T, mut func(*Config)) *sshPool {
	t.Helper()
	cfg := &Config{Signers: []ssh.Signer{b.signer}, KnownHostsFile: b.kh, User: currentUser(t), ConnectTimeout: 10 * time.Second}
	if mut != nil {
		mut(cfg)
	}
	p, err := newSSHPool(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

func (b *sshBundle) writeKnownHosts(t *testing.T, lines ...string) {
	t.Helper()
	if err := os.WriteFile(b.kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runEcho proves the connection works end to end with a session.
func runEcho(t *testing.T, cl *ssh.Client) {
	t.Helper()
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output("echo ok")
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("echo over ssh: %q, %v", out, err)
	}
}

func TestSSH_KnownKeyAccepted(t *testing.T) {
	b := newSSHBundle(t)
	sshd := newTestSSHD(t, b.signer.PublicKey())
	const addr = "web-1.internal:22" // never resolved: DialFunc hands over the socketpair
	b.writeKnownHosts(t, sshd.knownHostsLine(addr, 0))
	p := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial })
	c := p.conn(planner.Host{Name: "web-1", Address: "web-1.internal"})
	cl, err := c.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	runEcho(t, cl)
	// The connection is reused.
	cl2, err := p.conn(planner.Host{Name: "web-1", Address: "web-1.internal"}).Client(t.Context())
	if err != nil || cl2 != cl {
		t.Fatalf("second Client: %p %v, want the same client %p", cl2, err, cl)
	}
	// A broken transport is redialled on next use.
	_ = cl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl3, err := c.Client(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if cl3 != cl {
			runEcho(t, cl3)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("closed client was not replaced")
		}
		time.Sleep(10 * time.Millisecond) // the Wait goroutine drops the dead client
	}
}

func TestSSH_HostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	// The server offers ed25519 and rsa; known_hosts holds only ed25519.
	// x/crypto prefers rsa-sha2 by default: without HostKeyAlgorithms the
	// server would present its RSA key and fail the check as "changed".
	b := newSSHBundle(t)
	sshd := newTestSSHD(t, b.signer.PublicKey(), "ed25519", "rsa")
	const addr = "db-1:2222"
	b.writeKnownHosts(t, sshd.knownHostsLine(addr, 0))
	p := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial })
	cl, err := p.conn(planner.Host{Name: "db-1", Port: 2222}).Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	runEcho(t, cl)
}

func TestSSH_UnknownKeyRefused(t *testing.T) {
	b := newSSHBundle(t)
	sshd := newTestSSHD(t, b.signer.PublicKey())
	other := newTestSSHD(t, b.signer.PublicKey())
	// known_hosts knows another host only.
	b.writeKnownHosts(t, other.knownHostsLine("other:22", 0))
	p := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial })
	_, err := p.conn(planner.Host{Name: "web-1", Address: "10.1.2.3"}).Client(t.Context())
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("err = %v, want HostKeyError", err)
	}
	fp := ssh.FingerprintSHA256(sshd.hostKeys[0].PublicKey())
	if len(hk.Known) != 0 || hk.Fingerprint != fp {
		t.Fatalf("HostKeyError = %+v, want unknown with fingerprint %s", hk, fp)
	}
	for _, want := range []string{"web-1", "10.1.2.3:22", fp, "unknown", b.kh, "trust-on-first-use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// known_hosts is untouched.
	data, _ := os.ReadFile(b.kh)
	if strings.Count(string(data), "\n") != 1 {
		t.Errorf("known_hosts changed:\n%s", data)
	}
}

func TestSSH_ChangedKeyRefused(t *testing.T) {
	b := newSSHBundle(t)
	sshd := newTestSSHD(t, b.signer.PublicKey())
	old := newTestSSHD(t, b.signer.PublicKey())
	b.writeKnownHosts(t, old.knownHostsLine("10.1.2.3:22", 0))
	// Even with TOFU, a changed key is never accepted.
	p := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial; c.TrustOnFirstUse = true })
	_, err := p.conn(planner.Host{Name: "web-1", Address: "10.1.2.3"}).Client(t.Context())
	var hk *HostKeyError
	if !errors.As(err, &hk) || len(hk.Known) != 1 {
		t.Fatalf("err = %v, want HostKeyError naming the recorded key", err)
	}
	oldFP, newFP := ssh.FingerprintSHA256(old.hostKeys[0].PublicKey()), ssh.FingerprintSHA256(sshd.hostKeys[0].PublicKey())
	for _, want := range []string{"HAS CHANGED", "web-1", oldFP, newFP} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestSSH_TrustOnFirstUseRecords(t *testing.T) {
	b := newSSHBundle(t)
	sshd := newTestSSHD(t, b.signer.PublicKey())
	p := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial; c.TrustOnFirstUse = true })
	cl, err := p.conn(planner.Host{Name: "web-1", Address: "10.1.2.3", Port: 2200}).Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	runEcho(t, cl)
	data, err := os.ReadFile(b.kh)
	if err != nil {
		t.Fatal(err)
	}
	if want := sshd.knownHostsLine("10.1.2.3:2200", 0); strings.TrimSpace(string(data)) != want {
		t.Fatalf("known_hosts = %q, want %q", data, want)
	}
	// Recorded: a strict pool now connects.
	strict := b.pool(t, func(c *Config) { c.DialFunc = sshd.dial })
	if _, err := strict.conn(planner.Host{Name: "web-1", Address: "10.1.2.3", Port: 2200}).Client(t.Context()); err != nil {
		t.Fatalf("after TOFU: %v", err)
	}
}

func TestSSH_JumpHost(t *testing.T) {
	b := newSSHBundle(t)
	jump := newTestSSHD(t, b.signer.PublicKey())
	target := newTestSSHD(t, b.signer.PublicKey())
	jumpAddr, targetAddr := jump.listen(), target.listen()
	me := currentUser(t)
	host := planner.Host{Name: "app-1", Address: hostOf(targetAddr), Port: portOf(targetAddr), Jump: me + "@" + jumpAddr}

	t.Run("both keys known", func(t *testing.T) {
		b.writeKnownHosts(t, jump.knownHostsLine(jumpAddr, 0), target.knownHostsLine(targetAddr, 0))
		p := b.pool(t, nil)
		cl, err := p.conn(host).Client(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		runEcho(t, cl)
	})
	t.Run("target key unknown", func(t *testing.T) {
		b.writeKnownHosts(t, jump.knownHostsLine(jumpAddr, 0))
		p := b.pool(t, nil)
		_, err := p.conn(host).Client(t.Context())
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Host != "app-1" {
			t.Fatalf("err = %v, want HostKeyError for app-1", err)
		}
	})
	t.Run("jump key unknown", func(t *testing.T) {
		b.writeKnownHosts(t, target.knownHostsLine(targetAddr, 0))
		p := b.pool(t, nil)
		_, err := p.conn(host).Client(t.Context())
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Addr != jumpAddr {
			t.Fatalf("err = %v, want HostKeyError for the jump host %s", err, jumpAddr)
		}
	})
}

func TestParseJump(t *testing.T) {
	for _, tc := range []struct{ in, user, addr string }{
		{"bastion", "root", "bastion:22"},
		{"ops@bastion:2222", "ops", "bastion:2222"},
		{"10.0.0.1", "root", "10.0.0.1:22"},
	} {
		u, a, err := parseJump(tc.in, "root")
		if err != nil || u != tc.user || a != tc.addr {
			t.Errorf("parseJump(%q) = %q %q %v, want %q %q", tc.in, u, a, err, tc.user, tc.addr)
		}
	}
	if _, _, err := parseJump("ops@", "root"); err == nil {
		t.Error("parseJump(ops@) did not fail")
	}
}

func TestSSH_KeyFileAndAgent(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshd := newTestSSHD(t, signer.PublicKey())
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(sshd.knownHostsLine("web-1:22", 0)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	connect := func(t *testing.T, mut func(*Config)) error {
		cfg := &Config{KnownHostsFile: kh, User: currentUser(t), DialFunc: sshd.dial}
		mut(cfg)
		p, err := newSSHPool(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer p.close()
		cl, err := p.conn(planner.Host{Name: "web-1"}).Client(t.Context())
		if err == nil {
			runEcho(t, cl)
		}
		return err
	}

	t.Run("key file", func(t *testing.T) {
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "id_ed25519")
		if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := connect(t, func(c *Config) { c.KeyFiles = []string{f} }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("encrypted key file named explicitly", func(t *testing.T) {
		block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "id_enc")
		if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		err = connect(t, func(c *Config) { c.KeyFiles = []string{f} })
		if err == nil || !strings.Contains(err.Error(), "agent") {
			t.Fatalf("err = %v, want advice to use the agent", err)
		}
	})
	t.Run("agent", func(t *testing.T) {
		kr := agent.NewKeyring()
		if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "agent.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _ = agent.ServeAgent(kr, c); c.Close() }()
			}
		}()
		if err := connect(t, func(c *Config) { c.AgentSocket = sock }); err != nil {
			t.Fatal(err)
		}
	})
}
