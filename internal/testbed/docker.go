package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Logf receives progress messages of the harness (image builds, provisioning,
// start times). testing.TB's Logf fits; nil discards them.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

const (
	// lockPath serialises provisioning (apt-get, dockerd) and builds of the
	// images across processes (go test runs packages in parallel).
	lockPath = "/var/lock/bosun-testbed.lock"
	// dockerdLog is where a dockerd started by the harness writes its log.
	dockerdLog = "/var/log/bosun-testbed-dockerd.log"
)

// requireEnv reports whether BOSUN_TEST_REQUIRE=1 is set: then a missing
// service fails a test instead of skipping it.
func requireEnv() bool { return os.Getenv("BOSUN_TEST_REQUIRE") == "1" }

// RequireDocker makes sure a Docker daemon answers, provisioning one if
// needed (see EnsureDocker). Under -short it skips the test. When no daemon
// can be had it skips the test, or fails it when BOSUN_TEST_REQUIRE=1.
func RequireDocker(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs dockerd; skipped under -short")
	}
	if err := EnsureDocker(t.Context(), t.Logf); err != nil {
		if requireEnv() {
			t.Fatalf("BOSUN_TEST_REQUIRE=1 and no docker daemon: %v", err)
		}
		t.Skipf("no docker daemon (set BOSUN_TEST_REQUIRE=1 to fail instead): %v", err)
	}
}

// EnsureDocker returns nil when a Docker daemon answers the docker CLI. If
// none does and DOCKER_HOST is unset, it installs Debian's docker.io when
// the docker CLI or dockerd is missing (see EnsureCommand), starts dockerd in the background (its log in
// /var/log/bosun-testbed-dockerd.log; it outlives this process so that other
// test binaries can use it) and waits until it answers. Concurrent callers in
// several processes are serialised by a lock file.
func EnsureDocker(ctx context.Context, logf Logf) error {
	if dockerAnswers(ctx) == nil {
		return nil
	}
	if os.Getenv("DOCKER_HOST") != "" {
		return fmt.Errorf("docker daemon at DOCKER_HOST=%s does not answer", os.Getenv("DOCKER_HOST"))
	}
	unlock, err := lockFile(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if dockerAnswers(ctx) == nil { // another process provisioned it while we waited
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("dockerd is not running and provisioning it needs root")
	}
	// Debian's docker.io brings both the CLI and the daemon.
	if _, err := provisionLocked(ctx, logf, "docker", "docker.io", func() string { return lookCommand("docker") }); err != nil {
		return err
	}
	dockerd, err := provisionLocked(ctx, logf, "dockerd", "docker.io", func() string { return lookCommand("dockerd") })
	if err != nil {
		return err
	}
	if dockerAnswers(ctx) == nil { // with systemd, the package started its service
		return nil
	}
	start := time.Now()
	exited, err := startDockerd(dockerd)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := dockerAnswers(ctx)
		if err == nil {
			logf.printf("testbed: dockerd started in %s (log: %s)", time.Since(start).Round(time.Millisecond), dockerdLog)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for dockerd (log: %s): %w", dockerdLog, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case werr := <-exited:
			log, _ := os.ReadFile(dockerdLog)
			return fmt.Errorf("start dockerd: exited: %v: %s", werr, tail(log))
		case <-time.After(200 * time.Millisecond): // polling the socket: dockerd gives no other signal
		}
	}
}

func dockerAnswers(ctx context.Context) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("no docker CLI in PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := docker(ctx, "version", "--format", "{{.Server.Version}}")
	return err
}

// startDockerd starts dockerd in its own session, so that it outlives this
// process and does not get the terminal's signals. The channel receives its
// exit status should it exit while this process runs.
func startDockerd(dockerd string) (<-chan error, error) {
	// A dockerd killed with its machine session leaves its pid file; a
	// pid that now names another process would stop the new one.
	for _, pidFile := range []string{"/var/run/docker.pid", "/var/run/docker/containerd/containerd.pid"} {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && syscall.Kill(pid, 0) != nil {
				_ = os.Remove(pidFile)
			}
		}
	}
	log, err := os.OpenFile(dockerdLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open dockerd log: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(dockerd)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies; it normally outlives us
	return exited, nil
}

// lockFile takes the machine-wide harness lock, waiting for ctx.
func lockFile(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	return flockWait(ctx, lockPath)
}

// flockWait takes an exclusive flock on the file at path (creating it),
// waiting for ctx; several test binaries provision one machine at once.
func flockWait(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond): // flock has no wait with a deadline
		}
	}
}

// docker runs the docker CLI and returns its trimmed stdout; the error
// carries stderr.
func docker(ctx context.Context, args ...string) (string, error) {
	return dockerIn(ctx, nil, args...)
}

func dockerIn(ctx context.Context, stdin *bytes.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", firstWords(args, 2), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func firstWords(args []string, n int) string {
	if len(args) > n {
		args = args[:n]
	}
	return strings.Join(args, " ")
}

// tail returns the last lines of a command's output for an error message.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// tbContext is the context of the testing.TB wrappers. It is not
// t.Context(), which is cancelled before cleanups run, so that Exec, Pause
// and the rest work in a t.Cleanup too (a failing test dumping a server's
// state); the test's own timeout still ends a stuck call.
func tbContext(t testing.TB) context.Context {
	return context.WithoutCancel(t.Context())
}
