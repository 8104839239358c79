package testbed

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The server image recipe. Any change to it changes the image tag (a hash of
// the recipe), so a stale image is never reused. The debootstrap part has its
// own hash: the root filesystem it makes is cached as a tarball, so a change
// to the entrypoint or a lost image costs an import, not a debootstrap.
var (
	debootstrapSuite    = "bookworm"
	debootstrapArgs     = []string{"--variant=minbase", "--include=openssh-server,docker.io,iproute2,ca-certificates,curl,procps"}
	serverImageRepo     = "bosun-testbed-server"
	serverEntrypoint    = "/usr/local/sbin/bosun-testbed-init"
	serverImageCacheDir = "/var/cache/bosun-testbed"
)

// entrypointScript starts a server: a fresh host key (never baked into the
// image, so servers don't share one), the authorised key from the
// environment, sshd in the background, then dockerd in the foreground trusting
// the bed's registry.
const entrypointScript = `#!/bin/sh
# bosun testbed server (internal/testbed/image.go)
set -eu
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
printf '%s\n' "${TESTBED_AUTHORIZED_KEY:?TESTBED_AUTHORIZED_KEY is not set}" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
/usr/sbin/sshd -E /var/log/sshd.log
set --
for r in ${TESTBED_INSECURE_REGISTRY:-}; do
	set -- "$@" "--insecure-registry=$r"
done
if [ -n "${TESTBED_NEST_CGROUPS:-}" ]; then
	# cgroup v1 without a cgroup namespace: dockerd would put its containers
	# beside this server's cgroup; below it, a CPU limit on the server
	# covers them too.
	own=$(sed -n 's/^[0-9]*:\(cpu\|cpu,cpuacct\|cpuacct,cpu\):\(\/.*\)$/\2/p' /proc/self/cgroup | head -n 1)
	if [ -n "$own" ] && [ "$own" != / ]; then
		set -- "$@" "--cgroup-parent=$own/containers"
	fi
fi
exec dockerd "$@"
`

// sshdConfig is read before Debian's defaults (its Include comes first, and
// sshd keeps the first value of a keyword). Only an ed25519 host key exists,
// so a client never meets a host key of an unexpected type.
const sshdConfig = `# bosun testbed server (internal/testbed/image.go)
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
MaxStartups 200
MaxSessions 200
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
`

type overlayFile struct {
	path    string // absolute, in the image
	mode    int64
	content string
}

var serverOverlay = []overlayFile{
	{serverEntrypoint, 0o755, entrypointScript},
	{"/etc/ssh/sshd_config.d/bosun-testbed.conf", 0o644, sshdConfig},
}

var serverImportChanges = []string{
	`ENTRYPOINT ["` + serverEntrypoint + `"]`,
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"EXPOSE 22 80 443",
}

func rootfsHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap\x00%s\x00%s\n", debootstrapSuite, strings.Join(debootstrapArgs, "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// ServerImage is the reference of the server image for the current recipe,
// "bosun-testbed-server:<hash>".
func ServerImage() string {
	h := sha256.New()
	fmt.Fprintf(h, "rootfs %s\n", rootfsHash())
	for _, f := range serverOverlay {
		fmt.Fprintf(h, "file %s %o %d\n%s\n", f.path, f.mode, len(f.content), f.content)
	}
	for _, c := range serverImportChanges {
		fmt.Fprintf(h, "change %s\n", c)
	}
	fmt.Fprintf(h, "strip /etc/ssh/ssh_host_*\n")
	return serverImageRepo + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// EnsureServerImage makes sure the server image of the current recipe is in
// the Docker daemon and returns its reference. It imports the cached root
// filesystem tarball, or first builds that with debootstrap (installing
// debootstrap if needed; about a minute). Concurrent callers in several
// processes are serialised by the harness lock.
func EnsureServerImage(ctx context.Context, logf Logf) (string, error) {
	ref := ServerImage()
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", ref); err == nil {
		return ref, nil
	}
	unlock, err := lockFile(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", ref); err == nil {
		return ref, nil
	}
	rootfs := filepath.Join(serverImageCacheDir, "rootfs-"+rootfsHash()+".tar")
	if _, err := os.Stat(rootfs); err != nil {
		start := time.Now()
		logf.printf("testbed: building the server root filesystem with debootstrap (about a minute, once per machine)")
		if err := buildRootfs(ctx, rootfs); err != nil {
			return "", err
		}
		logf.printf("testbed: root filesystem built in %s: %s", time.Since(start).Round(time.Second), rootfs)
	}
	start := time.Now()
	if err := importServerImage(ctx, rootfs, ref); err != nil {
		return "", err
	}
	logf.printf("testbed: imported %s in %s", ref, time.Since(start).Round(time.Millisecond))
	pruneOldServerImages(ctx, ref, rootfs)
	return ref, nil
}

// pruneOldServerImages removes server images and root filesystems of earlier
// recipes; an image still used by a container stays.
func pruneOldServerImages(ctx context.Context, keep, keepRootfs string) {
	out, err := docker(ctx, "images", serverImageRepo, "--format", "{{.Repository}}:{{.Tag}}")
	if err == nil {
		for _, old := range strings.Fields(out) {
			if old != keep {
				_, _ = docker(ctx, "rmi", old)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(serverImageCacheDir, "rootfs-*.tar"))
	for _, f := range files {
		if f != keepRootfs {
			_ = os.Remove(f)
		}
	}
}

// buildRootfs runs debootstrap into a temporary folder and tars the tree to
// dst.
func buildRootfs(ctx context.Context, dst string) error {
	if err := os.MkdirAll(serverImageCacheDir, 0o755); err != nil {
		return fmt.Errorf("create image cache: %w", err)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if err := aptInstall(ctx, "debootstrap"); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp(serverImageCacheDir, "rootfs-build-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "tree")
	logPath := filepath.Join(serverImageCacheDir, "debootstrap.log")
	args := append(append([]string{}, debootstrapArgs...), debootstrapSuite, tree, debianMirror())
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create debootstrap log: %w", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("debootstrap %s (log: %s): %w: %s", debootstrapSuite, logPath, err, tail(out))
	}
	// Package caches and lists only make the image bigger.
	for _, p := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		entries, _ := os.ReadDir(filepath.Join(tree, p))
		for _, e := range entries {
			if e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(tree, p, e.Name()))
			}
		}
	}
	tmp := dst + ".tmp"
	if out, err := exec.CommandContext(ctx, "tar", "-C", tree, "--numeric-owner", "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tar root filesystem: %w: %s", err, tail(out))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("store root filesystem: %w", err)
	}
	return nil
}

// debianMirror is the first Debian archive apt is configured with (the one
// known to be reachable), or deb.debian.org.
func debianMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, field := range strings.Fields(line) {
				if (strings.HasPrefix(field, "http://") || strings.HasPrefix(field, "https://")) &&
					strings.HasSuffix(strings.TrimSuffix(field, "/"), "/debian") {
					return field
				}
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// importServerImage streams the cached tree into `docker import`, leaving out
// the host keys the packages generated and adding the overlay files.
func importServerImage(ctx context.Context, rootfs, ref string) error {
	in, err := os.Open(rootfs)
	if err != nil {
		return fmt.Errorf("open root filesystem: %w", err)
	}
	defer in.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rewriteRootfs(pw, bufio.NewReaderSize(in, 1<<20))) }()
	args := []string{"import"}
	for _, c := range serverImportChanges {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = pr
	out, err := cmd.CombinedOutput()
	pr.Close()
	if err != nil {
		return fmt.Errorf("docker import %s: %w: %s", ref, err, tail(out))
	}
	return nil
}

func rewriteRootfs(w io.Writer, r io.Reader) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tr, tw := tar.NewReader(r), tar.NewWriter(bw)
	replaced := map[string]bool{}
	for _, f := range serverOverlay {
		replaced[strings.TrimPrefix(f.path, "/")] = true
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read root filesystem: %w", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if strings.HasPrefix(name, "etc/ssh/ssh_host_") || replaced[name] {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	epoch := time.Unix(0, 0)
	for _, f := range serverOverlay {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: "." + f.path, Mode: f.mode, Size: int64(len(f.content)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, f.content); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
