package testbed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Labels on everything a bed starts on the host's dockerd.
const (
	// LabelRun holds the run id of the bed; Close removes by it.
	LabelRun = "bosun.testbed"
	// LabelOwner holds "<pid>-<process start time>" of the process that
	// started the bed; a later run removes what a dead owner left behind.
	LabelOwner = "bosun.testbed.owner"
)

// Options says what Start and Launch build.
type Options struct {
	Servers int               // number of servers; 0 means 1
	Dir     string            // where the key and known_hosts go; "" is a temp dir removed by Close (Start: t.TempDir())
	Logf    Logf              // progress messages; Start uses t.Logf
	Labels  map[string]string // more labels on every container and network (cmd/testbed marks its beds)
	// CPUs, when above 0, caps each server (sshd, dockerd and the
	// containers it runs, which are put below the server's cgroup) at that
	// many CPUs, as `docker run --cpus`. Servers on one machine otherwise
	// share its cores; with a cap whose sum stays below the machine's
	// cores, each server has CPU of its own, as real servers do.
	CPUs float64
}

// Bed is a set of running test servers and the registry they pull from.
// Its fields are set by Launch and never change afterwards.
type Bed struct {
	Servers        []*Server
	KeyPath        string     // private key (ed25519, OpenSSH format) authorised for root on every server
	Signer         ssh.Signer `json:"-"`
	KnownHostsPath string     // a line per server: "[127.0.0.1]:PORT ssh-ed25519 KEY server-N"
	Registry       string     // "GATEWAY:PORT" as the servers see it (trusted as insecure by their dockerds)
	RegistryPush   string     // "127.0.0.1:PORT": the same registry on loopback, where the host pushes
	// PrivateRegistry is the same registry as the servers see it on
	// another port that demands a login: RegistryUser and RegistryPassword
	// (HTTP basic auth, as a private registry). Images pushed with PushApp
	// are there too, under this address.
	PrivateRegistry  string
	RegistryUser     string
	RegistryPassword string `json:"-"`

	RunID     string        // value of the bosun.testbed label on every container and network
	Network   string        // name of the test network
	Gateway   string        // the test network's gateway address (the host, seen from the servers)
	Image     string        // the server image used
	StartTime time.Duration // wall time of Launch once dockerd and the server image were there

	reg         *hostRegistry
	tempDir     string // removed by Close when Launch made it
	logf        Logf
	extraLabels map[string]string
	cpus        float64
	closeMu     sync.Mutex
	closed      bool
}

// Server is one test server: a container with sshd and its own dockerd.
type Server struct {
	Name      string // "server-1" …; also the server's host name
	SSHAddr   string // 127.0.0.1:PORT published from the server's port 22
	HTTPAddr  string // 127.0.0.1:PORT published from the server's port 80 (the bosun-proxy)
	HTTPSAddr string // 127.0.0.1:PORT published from the server's port 443
	Container string // docker container id
	IP        string // address on the test network (server to server)
	HostKey   string // the server's ssh-ed25519 host key, authorized_keys format

	bed *Bed
}

// Start launches a bed for a test and closes it at t.Cleanup. It calls
// RequireDocker first, so under -short the test is skipped.
func Start(t testing.TB, opt Options) *Bed {
	t.Helper()
	RequireDocker(t)
	if opt.Logf == nil {
		opt.Logf = t.Logf
	}
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	b, err := launch(t.Context(), opt)
	if err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	t.Cleanup(func() {
		b.logf = nil // t.Logf may not be called after the test's cleanup
		if err := b.Close(); err != nil {
			t.Errorf("close testbed: %v", err)
		}
	})
	return b
}

// Launch starts a bed: a labelled test network, a registry served by this
// process, an SSH key pair, and opt.Servers servers started in parallel. It
// returns once every server's sshd answers with its host key and accepts the
// key, and every inner dockerd answers. The caller must Close the bed; on
// error Launch removes what it started. When no Docker daemon answers, it
// provisions one first (EnsureDocker).
func Launch(ctx context.Context, opt Options) (*Bed, error) {
	if err := EnsureDocker(ctx, opt.Logf); err != nil {
		return nil, err
	}
	return launch(ctx, opt)
}

// launch is Launch once Docker answers.
func launch(ctx context.Context, opt Options) (_ *Bed, err error) {
	if opt.Servers <= 0 {
		opt.Servers = 1
	}
	image, err := EnsureServerImage(ctx, opt.Logf)
	if err != nil {
		return nil, err
	}
	sweepStale(ctx, opt.Logf)
	begin := time.Now()
	b := &Bed{RunID: newRunID(), Image: image, logf: opt.Logf, extraLabels: opt.Labels, cpus: opt.CPUs}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	dir := opt.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bosun-testbed-"); err != nil {
			return nil, fmt.Errorf("create testbed dir: %w", err)
		}
		b.tempDir = dir
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create testbed dir: %w", err)
	}
	authorized, err := b.writeKey(dir)
	if err != nil {
		return nil, err
	}
	if err := b.createNetwork(ctx); err != nil {
		return nil, err
	}
	if b.reg, err = startRegistry(b.Gateway); err != nil {
		return nil, err
	}
	b.Registry, b.RegistryPush = b.reg.addr, b.reg.pushAddr
	b.PrivateRegistry, b.RegistryUser, b.RegistryPassword = b.reg.privateAddr, b.reg.user, b.reg.pass

	b.Servers = make([]*Server, opt.Servers)
	errs := make([]error, opt.Servers)
	var wg sync.WaitGroup
	for i := range b.Servers {
		wg.Go(func() {
			b.Servers[i], errs[i] = b.startServer(ctx, i+1, authorized)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var kh strings.Builder
	for _, s := range b.Servers {
		kh.WriteString(s.knownHostsLine())
	}
	b.KnownHostsPath = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(b.KnownHostsPath, []byte(kh.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	b.StartTime = time.Since(begin)
	opt.Logf.printf("testbed: %d servers ready in %s (run %s, registry %s)", len(b.Servers), b.StartTime.Round(time.Millisecond), b.RunID, b.Registry)
	return b, nil
}

// Close removes every container and network of the bed (by its label),
// stops its registry and removes the temp dir Launch made. It is safe to call
// more than once.
func (b *Bed) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.reg != nil {
		b.reg.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := RemoveByLabel(ctx, LabelRun+"="+b.RunID)
	if b.tempDir != "" {
		if rerr := os.RemoveAll(b.tempDir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove testbed dir: %w", rerr))
		}
	}
	return err
}

// RemoveByLabel force-removes the containers, then the networks, carrying
// label (a docker filter: "key" or "key=value"). Removing everything labelled
// bosun.testbed removes every bed on the machine.
func RemoveByLabel(ctx context.Context, label string) error {
	var errs []error
	thawServers(ctx, label)
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label="+label)
	if err != nil {
		errs = append(errs, err)
	} else if f := strings.Fields(ids); len(f) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, f...)...); err != nil {
			errs = append(errs, err)
		}
	}
	nets, err := docker(ctx, "network", "ls", "-q", "--filter", "label="+label)
	if err != nil {
		errs = append(errs, err)
	} else if f := strings.Fields(nets); len(f) > 0 {
		if _, err := docker(ctx, append([]string{"network", "rm"}, f...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// thawServers unpauses the containers paused inside each running server
// carrying label (an app's warm standby, x-bosun.standby: paused). A frozen
// process cannot die, so a server with one inside never exits when it is
// killed: its removal fails with "did not receive an exit event" and the
// server stays up until its frozen cgroup is thawed by hand. Errors are
// ignored: a container that is no server has no docker to ask.
func thawServers(ctx context.Context, label string) {
	out, err := docker(ctx, "ps", "-q", "--filter", "label="+label, "--filter", "status=running")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range strings.Fields(out) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = docker(ctx, "exec", id, "sh", "-c", `p=$(docker ps -q --filter status=paused 2>/dev/null); [ -z "$p" ] || docker unpause $p >/dev/null`)
		}()
	}
	wg.Wait()
}

// sweepStale removes the containers and networks of beds whose owner process
// is gone (a test binary killed before its cleanup ran).
func sweepStale(ctx context.Context, logf Logf) {
	owners := map[string]bool{}
	for _, kind := range [][]string{{"ps", "-a"}, {"network", "ls"}} {
		out, err := docker(ctx, append(kind, "--filter", "label="+LabelOwner, "--format", `{{.Label "`+LabelOwner+`"}}`)...)
		if err != nil {
			continue
		}
		for _, o := range strings.Fields(out) {
			owners[o] = true
		}
	}
	for o := range owners {
		if ownerAlive(o) {
			continue
		}
		logf.printf("testbed: removing leftovers of dead owner %s", o)
		_ = RemoveByLabel(ctx, LabelOwner+"="+o)
	}
}

// ownerID identifies this process: its pid and start time, so a reused pid
// is not taken for the same owner.
func ownerID(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + "-" + f[19] // starttime, field 22 of stat
}

func ownerAlive(owner string) bool {
	pid, _, ok := strings.Cut(owner, "-")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil {
		return true // not ours to judge
	}
	if err := syscall.Kill(n, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return ownerID(n) == owner
}

func newRunID() string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return "tb" + strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(r[:])
}

func (b *Bed) labels() []string {
	l := []string{"--label", LabelRun + "=" + b.RunID, "--label", LabelOwner + "=" + ownerID(os.Getpid())}
	for k, v := range b.extraLabels {
		l = append(l, "--label", k+"="+v)
	}
	return l
}

// writeKey makes the bed's key pair, writes the private key to dir and
// returns the public key in authorized_keys format.
func (b *Bed) writeKey(dir string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate ssh key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "bosun testbed "+b.RunID)
	if err != nil {
		return "", fmt.Errorf("marshal ssh key: %w", err)
	}
	b.KeyPath = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(b.KeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("write ssh key: %w", err)
	}
	if b.Signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return "", fmt.Errorf("make ssh signer: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " bosun-testbed"
	if err := os.WriteFile(b.KeyPath+".pub", []byte(authorized+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write ssh public key: %w", err)
	}
	return authorized, nil
}

// createNetwork makes a bridge network on a free /24 of 10.213.0.0/16
// (clear of the host's routes and of other beds: docker refuses overlaps, and
// the next candidate is tried).
func (b *Bed) createNetwork(ctx context.Context) error {
	routes := hostRoutes()
	var seed [2]byte
	_, _ = rand.Read(seed[:])
	start := int(binary.BigEndian.Uint16(seed[:]))
	b.Network = "bosun-testbed-" + b.RunID
	var lastErr error
	for i := range 256 {
		third := (start + i) % 256
		subnet := netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", third))
		if overlapsAny(subnet, routes) {
			continue
		}
		gw := fmt.Sprintf("10.213.%d.1", third)
		args := append([]string{"network", "create", "--driver", "bridge", "--subnet", subnet.String(), "--gateway", gw}, b.labels()...)
		_, err := docker(ctx, append(args, b.Network)...)
		if err == nil {
			b.Gateway = gw
			return nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			return fmt.Errorf("create test network: %w", err)
		}
	}
	return fmt.Errorf("create test network: no free /24 in 10.213.0.0/16: %w", lastErr)
}

func overlapsAny(p netip.Prefix, routes []netip.Prefix) bool {
	for _, r := range routes {
		if r.Bits() > 0 && r.Overlaps(p) {
			return true
		}
	}
	return false
}

// hostRoutes reads the host's IPv4 routes (a docker network on a routed
// subnet would cut the host off from it).
func hostRoutes() []netip.Prefix {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		var a, m [4]byte
		binary.LittleEndian.PutUint32(a[:], uint32(dst))
		binary.LittleEndian.PutUint32(m[:], uint32(mask))
		bits := 0
		for _, x := range m {
			for x&0x80 != 0 {
				bits++
				x <<= 1
			}
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked())
	}
	return out
}

// serverRunArgs are the flags that let dockerd run inside the container
// (--privileged is refused on these machines; --init reaps sshd's children).
var serverRunArgs = []string{
	"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
	"-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
	"--tmpfs", "/var/lib/docker:exec",
	"--init",
	"-p", "127.0.0.1::22", "-p", "127.0.0.1::80", "-p", "127.0.0.1::443",
}

func (b *Bed) startServer(ctx context.Context, n int, authorized string) (*Server, error) {
	s := &Server{Name: "server-" + strconv.Itoa(n), bed: b}
	args := []string{"run", "-d", "--name", b.Network + "-" + s.Name, "--hostname", s.Name, "--network", b.Network,
		"-e", "TESTBED_AUTHORIZED_KEY=" + authorized, "-e", "TESTBED_INSECURE_REGISTRY=" + b.Registry + " " + b.PrivateRegistry}
	if b.cpus > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(b.cpus, 'f', -1, 64), "-e", "TESTBED_NEST_CGROUPS=1")
	}
	args = append(append(append(args, b.labels()...), serverRunArgs...), b.Image)
	id, err := docker(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.Container = id
	var info []struct {
		NetworkSettings struct {
			Ports    map[string][]struct{ HostIP, HostPort string }
			Networks map[string]struct{ IPAddress string }
		}
	}
	out, err := docker(ctx, "inspect", id)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", s.Name, err)
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
		return nil, fmt.Errorf("inspect %s: decode: %v", s.Name, err)
	}
	port := func(p string) string {
		for _, b := range info[0].NetworkSettings.Ports[p] {
			if b.HostIP == "127.0.0.1" {
				return net.JoinHostPort(b.HostIP, b.HostPort)
			}
		}
		return ""
	}
	s.SSHAddr, s.HTTPAddr, s.HTTPSAddr = port("22/tcp"), port("80/tcp"), port("443/tcp")
	s.IP = info[0].NetworkSettings.Networks[b.Network].IPAddress
	if s.SSHAddr == "" || s.HTTPAddr == "" || s.HTTPSAddr == "" {
		return nil, fmt.Errorf("start %s: ports not published: %s", s.Name, out)
	}
	if err := s.waitSSH(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	if err := s.waitDocker(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// waitSSH retries an SSH handshake with the bed's key until sshd answers
// (the published port accepts connections before sshd listens), and records
// the host key it offers the first time.
func (s *Server) waitSSH(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, key, err := s.handshake(ctx)
		if err == nil {
			c.Close()
			if s.HostKey == "" {
				s.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			}
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := docker(context.Background(), "exec", s.Container, "tail", "-n", "20", "/var/log/sshd.log")
			return fmt.Errorf("wait for sshd on %s (%s): %w; sshd log: %s", s.Name, s.SSHAddr, err, logs)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for sshd on %s: %w", s.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond): // sshd gives no signal when it listens
		}
	}
}

// handshake dials the server's sshd; a host key other than the recorded one
// (once there is one) is refused.
func (s *Server) handshake(ctx context.Context) (*ssh.Client, ssh.PublicKey, error) {
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(s.bed.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			if s.HostKey != "" && strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) != s.HostKey {
				return fmt.Errorf("host key of %s changed", s.Name)
			}
			return nil
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}
	c, err := dialSSH(ctx, s.SSHAddr, cfg, 5*time.Second)
	return c, got, err
}

// dialSSH connects and completes the SSH handshake within limit and ctx.
// ssh.ClientConfig.Timeout bounds only the TCP connect, and the published
// port accepts connections even when sshd is gone or the server paused
// (docker-proxy answers on the host), so the handshake needs a deadline of
// its own.
func dialSSH(ctx context.Context, addr string, cfg *ssh.ClientConfig, limit time.Duration) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// waitDocker waits, over SSH as bosun will reach it, until the server's
// dockerd answers.
func (s *Server) waitDocker(ctx context.Context) error {
	c, _, err := s.handshake(ctx)
	if err != nil {
		return fmt.Errorf("ssh to %s: %w", s.Name, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session on %s: %w", s.Name, err)
	}
	defer sess.Close()
	// Polls inside the server: dockerd gives no signal when its socket is up.
	out, err := sess.CombinedOutput(`timeout 90 sh -c 'until docker version >/dev/null 2>&1; do sleep 0.1; done'`)
	if err != nil {
		logs, _ := docker(context.Background(), "logs", "--tail", "20", s.Container)
		return fmt.Errorf("wait for dockerd on %s: %w: %s; container log: %s", s.Name, err, out, logs)
	}
	return nil
}

func (s *Server) knownHostsLine() string {
	return knownhosts.Normalize(s.SSHAddr) + " " + s.HostKey + " " + s.Name + "\n"
}

// Run runs a command in the server (docker exec, not SSH: it works with sshd
// stopped) and returns its stdout; the error carries stderr.
func (s *Server) Run(ctx context.Context, args ...string) (string, error) {
	out, err := docker(ctx, append([]string{"exec", s.Container}, args...)...)
	if err != nil {
		return out, fmt.Errorf("run %q on %s: %w", strings.Join(args, " "), s.Name, err)
	}
	return out, nil
}

// Exec runs a command in the server like Run and fails the test on error.
func (s *Server) Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Run(tbContext(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// StopSSH kills every sshd process of the server, the listener and open
// sessions alike: the server becomes unreachable over SSH.
func (s *Server) StopSSH(t testing.TB) {
	t.Helper()
	if _, err := s.Run(tbContext(t), "pkill", "-KILL", "-x", "sshd"); err != nil {
		t.Fatalf("stop sshd: %v", err)
	}
}

// StartSSH starts sshd again (same host key) and waits until it answers.
func (s *Server) StartSSH(t testing.TB) {
	t.Helper()
	if _, err := s.Run(tbContext(t), "/usr/sbin/sshd", "-E", "/var/log/sshd.log"); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	if err := s.waitSSH(tbContext(t), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Pause freezes every process of the server (docker pause): connections to
// it hang rather than fail, as with a host that dropped off the network.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if _, err := docker(tbContext(t), "pause", s.Container); err != nil {
		t.Fatalf("pause %s: %v", s.Name, err)
	}
}

// Unpause resumes a paused server.
func (s *Server) Unpause(t testing.TB) {
	t.Helper()
	if _, err := docker(tbContext(t), "unpause", s.Container); err != nil {
		t.Fatalf("unpause %s: %v", s.Name, err)
	}
}

// HostKeyCallback checks host keys against the bed's known_hosts file.
func (b *Bed) HostKeyCallback() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(b.KnownHostsPath)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	return cb, nil
}

// Dial opens an SSH connection to the server as root with the bed's key,
// checking its host key against the bed's known_hosts file. The handshake
// must complete within 15 s and ctx.
func (s *Server) Dial(ctx context.Context) (*ssh.Client, error) {
	if s.bed == nil || s.bed.Signer == nil {
		return nil, fmt.Errorf("ssh to %s: server not from Launch in this process (use KeyPath and KnownHostsPath)", s.Name)
	}
	cb, err := s.bed.HostKeyCallback()
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              "root",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.bed.Signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           10 * time.Second,
	}
	c, err := dialSSH(ctx, s.SSHAddr, cfg, 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s (%s): %w", s.Name, s.SSHAddr, err)
	}
	return c, nil
}
