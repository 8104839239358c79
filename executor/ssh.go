package executor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/bosunhq/bosun/planner"
)

// DialFunc opens the transport to an SSH server at addr ("host:port").
// Production dials TCP; tests hand back one end of a socketpair whose other
// end is `sshd -i`.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// HostKeyError reports a host key that known_hosts does not vouch for: an
// unknown host (Known is empty) or a changed key (Known lists the recorded
// keys). The executor never connects in either case, unless
// Config.TrustOnFirstUse is set and the host is unknown.
type HostKeyError struct {
	Host        string   // the host's name in the plan
	Addr        string   // host:port dialled
	Fingerprint string   // SHA256 fingerprint of the key the server offered
	KeyType     string   // type of the offered key
	Known       []string // "SHA256:… (type) at FILE:LINE" for each recorded key; empty: unknown host
	File        string   // the known_hosts file consulted
}

func (e *HostKeyError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("host key of %s (%s) is unknown: the server offers %s %s; "+
			"if that fingerprint is right, add the key to %s (ssh-keyscan %s >> %s) or apply once with trust-on-first-use",
			e.Host, e.Addr, e.KeyType, e.Fingerprint, e.File, keyscanArgs(e.Addr), e.File)
	}
	return fmt.Sprintf("HOST KEY OF %s (%s) HAS CHANGED: known_hosts has %s, the server now offers %s %s; "+
		"someone may be intercepting the connection; if the server was really re-keyed, remove the old line from %s",
		e.Host, e.Addr, strings.Join(e.Known, ", "), e.KeyType, e.Fingerprint, e.File)
}

func keyscanArgs(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "22" {
		return addr
	}
	return "-p " + port + " " + host
}

// sshPool keeps one SSH connection per host, dialled on first use, kept
// alive, and redialled when it breaks.
type sshPool struct {
	cfg    *Config
	log    *slog.Logger
	auth   []ssh.AuthMethod
	khMu   sync.Mutex // guards reads and appends of the known_hosts file
	mu     sync.Mutex
	conns  map[string]*sshConn // by user@addr (jump hosts included)
	closed bool
}

// sshConn is the connection to one host. Its client is replaced when a
// keepalive fails or the transport closes.
type sshConn struct {
	pool   *sshPool
	name   string // host name for messages
	user   string
	addr   string // host:port
	jump   string // "" or the jump host spec
	dialMu sync.Mutex
	mu     sync.Mutex
	client *ssh.Client
	stop   chan struct{}
}

func newSSHPool(cfg *Config, log *slog.Logger) (*sshPool, error) {
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	return &sshPool{cfg: cfg, log: log, auth: auth, conns: map[string]*sshConn{}}, nil
}

// authMethods gathers the signers of the configured key files (or the
// default ~/.ssh/id_* that exist) and the SSH agent's.
func authMethods(cfg *Config) ([]ssh.AuthMethod, error) {
	signers := append([]ssh.Signer(nil), cfg.Signers...)
	files := cfg.KeyFiles
	explicit := len(files) > 0
	if !explicit && len(cfg.Signers) == 0 {
		if home, err := os.UserHomeDir(); err == nil {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				p := filepath.Join(home, ".ssh", n)
				if _, err := os.Stat(p); err == nil {
					files = append(files, p)
				}
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read ssh key %s: %w", f, err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) && !explicit {
				continue // an encrypted default key: the agent may hold it
			}
			if errors.As(err, &pp) {
				return nil, fmt.Errorf("ssh key %s is encrypted: add it to the ssh agent instead", f)
			}
			return nil, fmt.Errorf("parse ssh key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	var ag agent.ExtendedAgent
	if sock := cfg.AgentSocket; sock != "" {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("connect to ssh agent: %w", err)
		}
		ag = agent.NewClient(c)
	}
	if len(signers) == 0 && ag == nil {
		return nil, errors.New("no ssh key: give a key file or run an ssh agent (SSH_AUTH_SOCK)")
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := signers
		if ag != nil {
			as, err := ag.Signers()
			if err == nil {
				all = append(append([]ssh.Signer(nil), signers...), as...)
			}
		}
		return all, nil
	})}, nil
}

// hostAddr returns user and host:port for a plan host.
func (p *sshPool) hostAddr(h planner.Host) (user, addr string) {
	user = h.User
	if user == "" {
		user = p.cfg.User
	}
	if user == "" {
		user = "root"
	}
	host := h.Address
	if host == "" {
		host = h.Name
	}
	port := h.Port
	if port == 0 {
		port = 22
	}
	return user, net.JoinHostPort(host, strconv.Itoa(port))
}

// parseJump splits "[user@]host[:port]".
func parseJump(spec, defUser string) (user, addr string, err error) {
	user = defUser
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		user, spec = spec[:i], spec[i+1:]
	}
	if spec == "" || user == "" {
		return "", "", fmt.Errorf("jump host %q: want [user@]host[:port]", spec)
	}
	if _, _, err := net.SplitHostPort(spec); err != nil {
		spec = net.JoinHostPort(strings.Trim(spec, "[]"), "22")
	}
	return user, spec, nil
}

// conn returns the pooled connection of a host (not yet dialled).
func (p *sshPool) conn(h planner.Host) *sshConn {
	user, addr := p.hostAddr(h)
	key := user + "@" + addr + "|" + h.Jump
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[key]
	if !ok {
		name := h.Name
		if name == "" {
			name = addr
		}
		c = &sshConn{pool: p, name: name, user: user, addr: addr, jump: h.Jump, stop: make(chan struct{})}
		p.conns[key] = c
	}
	return c
}

// Client returns a live SSH client for the connection, dialling it when
// there is none.
func (c *sshConn) Client(ctx context.Context) (*ssh.Client, error) {
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	cl = c.client
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	cl, err := c.pool.dial(ctx, c)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.client = cl
	c.mu.Unlock()
	go c.keepalive(cl)
	go func() {
		_ = cl.Wait()
		c.drop(cl)
	}()
	return cl, nil
}

// drop forgets cl if it is still the current client, so that the next use
// redials.
func (c *sshConn) drop(cl *ssh.Client) {
	c.mu.Lock()
	if c.client == cl {
		c.client = nil
	}
	c.mu.Unlock()
	_ = cl.Close()
}

// keepalive sends keepalive@openssh.com requests; a request that fails or
// goes unanswered for an interval closes the client.
func (c *sshConn) keepalive(cl *ssh.Client) {
	iv := c.pool.cfg.KeepAlive
	if iv <= 0 {
		iv = 15 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		cur := c.client
		c.mu.Unlock()
		if cur != cl {
			return
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				continue
			}
			c.pool.log.WarnContext(context.Background(), "ssh keepalive failed", "host", c.name, "err", err)
		case <-time.After(iv):
			c.pool.log.WarnContext(context.Background(), "ssh keepalive unanswered", "host", c.name)
		case <-c.stop:
			return
		}
		c.drop(cl)
		return
	}
}

// Dial opens a stream to a unix socket or TCP address on the server,
// through this host's SSH connection; it redials once when the connection
// turns out to be dead.
func (c *sshConn) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		cl, err := c.Client(ctx)
		if err != nil {
			return nil, err
		}
		conn, err := cl.DialContext(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		var oc *ssh.OpenChannelError
		if errors.As(err, &oc) || ctx.Err() != nil || attempt > 0 {
			return nil, fmt.Errorf("open %s %s on %s: %w", network, addr, c.name, err)
		}
		c.drop(cl) // the transport failed: redial once
	}
}

// Close closes the connection and stops its keepalive.
func (c *sshConn) close() {
	c.mu.Lock()
	cl := c.client
	c.client = nil
	c.mu.Unlock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if cl != nil {
		_ = cl.Close()
	}
}

func (p *sshPool) close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[string]*sshConn{}
	p.closed = true
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

func (p *sshPool) knownHostsFile() string {
	if p.cfg.KnownHostsFile != "" {
		return p.cfg.KnownHostsFile
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".ssh", "known_hosts")
}

// dial opens the SSH connection of c, through its jump host if it has one.
func (p *sshPool) dial(ctx context.Context, c *sshConn) (*ssh.Client, error) {
	timeout := p.cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cc, err := p.clientConfig(ctx, c.name, c.user, c.addr, timeout)
	if err != nil {
		return nil, err
	}
	var raw net.Conn
	if c.jump != "" {
		ju, ja, err := parseJump(c.jump, c.user)
		if err != nil {
			return nil, err
		}
		jc := p.conn(planner.Host{Name: "jump host " + ja, Address: hostOf(ja), Port: portOf(ja), User: ju})
		raw, err = jc.Dial(ctx, "tcp", c.addr)
		if err != nil {
			return nil, fmt.Errorf("ssh to %s (%s) through %s: %w", c.name, c.addr, ja, err)
		}
	} else {
		dial := p.cfg.DialFunc
		if dial == nil {
			dial = func(ctx context.Context, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			}
		}
		raw, err = dial(ctx, c.addr)
		if err != nil {
			return nil, fmt.Errorf("ssh to %s (%s): %w", c.name, c.addr, err)
		}
	}
	// The handshake has no context: bound it by closing the transport.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(raw, c.addr, cc)
	stop()
	if err != nil {
		_ = raw.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh to %s (%s): %w", c.name, c.addr, ctx.Err())
		}
		return nil, fmt.Errorf("ssh to %s (%s): %w", c.name, c.addr, err)
	}
	p.log.DebugContext(ctx, "ssh connected", "host", c.name, "addr", c.addr)
	return ssh.NewClient(sc, chans, reqs), nil
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// clientConfig builds the SSH client config for one host, with a host key
// check against known_hosts and HostKeyAlgorithms limited to the key types
// known_hosts holds for it (otherwise the server may offer another type and
// knownhosts reports a mismatch).
func (p *sshPool) clientConfig(ctx context.Context, name, user, addr string, timeout time.Duration) (*ssh.ClientConfig, error) {
	file := p.knownHostsFile()
	algos, err := p.knownAlgorithms(file, addr)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              p.auth,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			return p.checkHostKey(ctx, name, addr, file, key)
		},
	}, nil
}

// hostKeyCallback loads known_hosts afresh (it may have been appended to).
func (p *sshPool) hostKeyCallback(file string) (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	return cb, nil
}

var probeKey = func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// zeroTCP stands in for the remote address: knownhosts wants a TCP address
// but prefers the host name, which is what we check.
var zeroTCP = &net.TCPAddr{IP: net.IPv4zero}

// knownAlgorithms returns the host key algorithms matching the key types
// known_hosts records for addr; nil (the defaults) for an unknown host.
func (p *sshPool) knownAlgorithms(file, addr string) ([]string, error) {
	p.khMu.Lock()
	cb, err := p.hostKeyCallback(file)
	p.khMu.Unlock()
	if err != nil {
		return nil, err
	}
	// A random key never matches: the error lists the recorded keys.
	var ke *knownhosts.KeyError
	if err := cb(addr, zeroTCP, probeKey); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		for _, a := range algorithmsForKeyType(w.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

func algorithmsForKeyType(t string) []string {
	switch t {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	default:
		return []string{t}
	}
}

// checkHostKey verifies key against known_hosts, recording it on first use
// when that is configured.
func (p *sshPool) checkHostKey(ctx context.Context, name, addr, file string, key ssh.PublicKey) error {
	p.khMu.Lock()
	defer p.khMu.Unlock()
	cb, err := p.hostKeyCallback(file)
	if err != nil {
		return err
	}
	err = cb(addr, zeroTCP, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return fmt.Errorf("check host key of %s: %w", name, err)
	}
	hk := &HostKeyError{Host: name, Addr: addr, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type(), File: file}
	for _, w := range ke.Want {
		hk.Known = append(hk.Known, fmt.Sprintf("%s (%s) at %s:%d", ssh.FingerprintSHA256(w.Key), w.Key.Type(), w.Filename, w.Line))
	}
	if len(ke.Want) > 0 || !p.cfg.TrustOnFirstUse {
		return hk
	}
	if err := appendKnownHost(file, addr, key); err != nil {
		return fmt.Errorf("record host key of %s: %w", name, err)
	}
	p.log.WarnContext(ctx, "host key trusted on first use", "host", name, "addr", addr, "fingerprint", hk.Fingerprint, "file", file)
	return nil
}

func appendKnownHost(file, addr string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	line := knownhostsLine(addr, key) + "\n"
	// A file without a trailing newline would glue our line to its last one.
	if data, err := os.ReadFile(file); err == nil && len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		line = "\n" + line
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, _ = w.WriteString(line)
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// knownhostsLine is the known_hosts line for key at addr.
func knownhostsLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}
