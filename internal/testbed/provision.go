package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Provisioning: the one way the harness gets a program onto the machine. A
// test, benchmark or the demo that needs a program the machine may lack
// (sshd, dockerd, debootstrap, PostgreSQL, wrk, chromium) asks for it here; when it is
// missing, the Debian package that brings it is installed with apt-get, as
// root, under the harness lock (so that the test binaries `go test ./...`
// runs in parallel install it once).

// sbinDirs are searched after PATH: a non-root PATH often lacks them, and
// the daemons' packages put their binaries there.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// EnsureCommand returns the path of the program name, installing the Debian
// package pkg with apt-get when it is in neither PATH nor an sbin folder.
// Installing needs root; without it the error says what to install.
func EnsureCommand(ctx context.Context, logf Logf, name, pkg string) (string, error) {
	return provision(ctx, logf, name, pkg, func() string { return lookCommand(name) })
}

// RequireCommand is EnsureCommand for a test: under -short it skips the
// test; when the program cannot be had it skips it, or fails it when
// BOSUN_TEST_REQUIRE=1.
func RequireCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; skipped under -short", name)
	}
	p, err := EnsureCommand(tbContext(t), t.Logf, name, pkg)
	if err != nil {
		if requireEnv() {
			t.Fatalf("BOSUN_TEST_REQUIRE=1 and no %s: %v", name, err)
		}
		t.Skipf("no %s (set BOSUN_TEST_REQUIRE=1 to fail instead): %v", name, err)
	}
	return p
}

// Chromium is the Debian package (and program) of the browser the
// dashboard's browser tests drive.
const Chromium = "chromium"

// RequireChromium is RequireCommand for Debian's chromium, which the
// dashboard's end-to-end tests drive (with chromedp): it installs the
// package when the machine lacks it, and returns the program's path.
func RequireChromium(t testing.TB) string {
	t.Helper()
	return RequireCommand(t, Chromium, Chromium)
}

func lookCommand(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// provision returns find()'s answer, installing pkg first when it has none.
// what names the thing find looks for, for messages.
func provision(ctx context.Context, logf Logf, what, pkg string, find func() string) (string, error) {
	if p := find(); p != "" {
		return p, nil
	}
	unlock, err := lockFile(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	return provisionLocked(ctx, logf, what, pkg, find)
}

// provisionLocked is provision for a caller that holds the harness lock.
func provisionLocked(ctx context.Context, logf Logf, what, pkg string, find func() string) (string, error) {
	if p := find(); p != "" { // another process installed it while we waited
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s not found, and installing it needs root: apt-get install %s", what, pkg)
	}
	start := time.Now()
	logf.printf("testbed: %s not found: installing %s with apt-get", what, pkg)
	if err := aptInstall(ctx, pkg); err != nil {
		return "", fmt.Errorf("install %s for %s: %w", pkg, what, err)
	}
	p := find()
	if p == "" {
		return "", fmt.Errorf("apt-get installed %s, but %s is still not found", pkg, what)
	}
	logf.printf("testbed: installed %s in %s: %s", pkg, time.Since(start).Round(time.Second), p)
	return p, nil
}

// aptInstall installs Debian packages. Callers hold the harness lock, so
// the harness runs one apt-get at a time; another apt-get on the machine
// may still hold dpkg's lock, which apt waits for, or the lists or archives
// lock, which apt does not wait for: that is retried.
func aptInstall(ctx context.Context, pkgs ...string) error {
	if err := aptGet(ctx, "update"); err != nil {
		return err
	}
	return aptGet(ctx, append([]string{"install", "-y"}, pkgs...)...)
}

func aptGet(ctx context.Context, args ...string) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if !strings.Contains(string(out), "Could not get lock") || time.Now().After(deadline) {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second): // apt has no wait for these locks
		}
	}
}
