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

// An image recipe: a Debian root filesystem made by debootstrap, with files
// added and some left out, imported with `docker import`. Any change to it
// changes the image tag (a hash of the recipe), so a stale image is never
// reused. The debootstrap part has its own hash: the root filesystem it makes
// is cached as a tarball, so a change to the overlay or a lost image costs an
// import, not a debootstrap.
type imageRecipe struct {
	what        string        // for messages: "the server", "the fresh-machine"
	repo        string        // image repository; the tag is the recipe's hash
	rootfsName  string        // the cached tarball: <cacheDir>/<rootfsName><hash>.tar
	suite       string        // debootstrap's suite
	args        []string      // debootstrap's flags
	overlay     []overlayFile // added to (or replacing in) the tree
	changes     []string      // docker import --change
	stripPrefix []string      // paths in the tree left out (no leading /)
}

// imageCacheDir holds the root filesystem tarballs.
const imageCacheDir = "/var/cache/bosun-testbed"

// serverRecipe is the test server: sshd, dockerd and a few tools.
var serverRecipe = &imageRecipe{
	what:       "the server",
	repo:       "bosun-testbed-server",
	rootfsName: "rootfs-",
	suite:      "bookworm",
	args:       []string{"--variant=minbase", "--include=openssh-server,docker.io,iproute2,ca-certificates,curl,procps"},
	overlay: []overlayFile{
		{path: serverEntrypoint, mode: 0o755, content: entrypointScript},
		{path: "/etc/ssh/sshd_config.d/bosun-testbed.conf", mode: 0o644, content: sshdConfig},
	},
	changes: []string{
		`ENTRYPOINT ["` + serverEntrypoint + `"]`,
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"EXPOSE 22 80 443",
	},
	// The packages leave host keys in the tree; every server makes its own.
	stripPrefix: []string{"etc/ssh/ssh_host_"},
}

const serverEntrypoint = "/usr/local/sbin/bosun-testbed-init"

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

// overlayFile is a file of the image that debootstrap does not make: its
// content, a file copied from the host (src), or a symbolic link.
type overlayFile struct {
	path    string // absolute, in the image
	mode    int64
	content string
	src     string // when set, the content is this host file's
	link    string // when set, a symbolic link to this target
}

// hashTo writes what identifies the file to the recipe hash. A file copied
// from the host counts by its content's digest.
func (f overlayFile) hashTo(w io.Writer) error {
	switch {
	case f.link != "":
		fmt.Fprintf(w, "link %s %s\n", f.path, f.link)
	case f.src != "":
		in, err := os.Open(f.src)
		if err != nil {
			return fmt.Errorf("read %s for the image: %w", f.src, err)
		}
		defer in.Close()
		h := sha256.New()
		if _, err := io.Copy(h, in); err != nil {
			return fmt.Errorf("read %s for the image: %w", f.src, err)
		}
		fmt.Fprintf(w, "file %s %o sha256:%x\n", f.path, f.mode, h.Sum(nil))
	default:
		fmt.Fprintf(w, "file %s %o %d\n%s\n", f.path, f.mode, len(f.content), f.content)
	}
	return nil
}

func (r *imageRecipe) rootfsHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap\x00%s\x00%s\n", r.suite, strings.Join(r.args, "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (r *imageRecipe) rootfsPath() string {
	return filepath.Join(imageCacheDir, r.rootfsName+r.rootfsHash()+".tar")
}

// ref is the image reference of the recipe, "REPO:<hash>".
func (r *imageRecipe) ref() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "rootfs %s\n", r.rootfsHash())
	for _, f := range r.overlay {
		if err := f.hashTo(h); err != nil {
			return "", err
		}
	}
	for _, c := range r.changes {
		fmt.Fprintf(h, "change %s\n", c)
	}
	for _, p := range r.stripPrefix {
		fmt.Fprintf(h, "strip /%s*\n", p)
	}
	return r.repo + ":" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// ServerImage is the reference of the server image for the current recipe,
// "bosun-testbed-server:<hash>".
func ServerImage() string {
	ref, err := serverRecipe.ref()
	if err != nil {
		panic(err) // the server recipe has no host files
	}
	return ref
}

// EnsureServerImage makes sure the server image of the current recipe is in
// the Docker daemon and returns its reference. It imports the cached root
// filesystem tarball, or first builds that with debootstrap (installing
// debootstrap if needed; about a minute). Concurrent callers in several
// processes are serialised by the harness lock.
func EnsureServerImage(ctx context.Context, logf Logf) (string, error) {
	return serverRecipe.ensure(ctx, logf)
}

// ensure makes sure the recipe's image is in the Docker daemon and returns
// its reference (see EnsureServerImage).
func (r *imageRecipe) ensure(ctx context.Context, logf Logf) (string, error) {
	ref, err := r.ref()
	if err != nil {
		return "", err
	}
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
	rootfs := r.rootfsPath()
	if _, err := os.Stat(rootfs); err != nil {
		start := time.Now()
		logf.printf("testbed: building %s root filesystem with debootstrap (a minute or two, once per machine)", r.what)
		if err := r.buildRootfs(ctx, logf, rootfs); err != nil {
			return "", err
		}
		logf.printf("testbed: root filesystem built in %s: %s", time.Since(start).Round(time.Second), rootfs)
	}
	start := time.Now()
	if err := r.importImage(ctx, rootfs, ref); err != nil {
		return "", err
	}
	logf.printf("testbed: imported %s in %s", ref, time.Since(start).Round(time.Millisecond))
	r.pruneOld(ctx, ref, rootfs)
	return ref, nil
}

// pruneOld removes the recipe's images and root filesystems of earlier
// versions; an image still used by a container stays.
func (r *imageRecipe) pruneOld(ctx context.Context, keep, keepRootfs string) {
	out, err := docker(ctx, "images", r.repo, "--format", "{{.Repository}}:{{.Tag}}")
	if err == nil {
		for _, old := range strings.Fields(out) {
			if old != keep {
				_, _ = docker(ctx, "rmi", old)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(imageCacheDir, r.rootfsName+"*.tar"))
	for _, f := range files {
		if f != keepRootfs {
			_ = os.Remove(f)
		}
	}
}

// buildRootfs runs debootstrap into a temporary folder and tars the tree to
// dst. The caller holds the harness lock.
func (r *imageRecipe) buildRootfs(ctx context.Context, logf Logf, dst string) error {
	if err := os.MkdirAll(imageCacheDir, 0o755); err != nil {
		return fmt.Errorf("create image cache: %w", err)
	}
	debootstrap, err := provisionLocked(ctx, logf, "debootstrap", "debootstrap", func() string { return lookCommand("debootstrap") })
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(imageCacheDir, "rootfs-build-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "tree")
	logPath := filepath.Join(imageCacheDir, "debootstrap.log")
	args := append(append([]string{}, r.args...), r.suite, tree, debianMirror())
	cmd := exec.CommandContext(ctx, debootstrap, args...)
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create debootstrap log: %w", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("debootstrap %s (log: %s): %w: %s", r.suite, logPath, err, tail(out))
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

// importImage streams the cached tree into `docker import`, leaving out the
// stripped paths and adding the overlay files.
func (r *imageRecipe) importImage(ctx context.Context, rootfs, ref string) error {
	in, err := os.Open(rootfs)
	if err != nil {
		return fmt.Errorf("open root filesystem: %w", err)
	}
	defer in.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.rewriteRootfs(pw, bufio.NewReaderSize(in, 1<<20))) }()
	args := []string{"import"}
	for _, c := range r.changes {
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

func (r *imageRecipe) rewriteRootfs(w io.Writer, rd io.Reader) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tr, tw := tar.NewReader(rd), tar.NewWriter(bw)
	replaced := map[string]bool{}
	for _, f := range r.overlay {
		replaced[strings.TrimPrefix(f.path, "/")] = true
	}
	stripped := func(name string) bool {
		for _, p := range r.stripPrefix {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return replaced[name]
	}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read root filesystem: %w", err)
		}
		if stripped(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	for _, f := range r.overlay {
		if err := f.writeTo(tw); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// writeTo adds the file to a tar stream.
func (f overlayFile) writeTo(tw *tar.Writer) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: "." + f.path, Mode: f.mode, ModTime: time.Unix(0, 0)}
	switch {
	case f.link != "":
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		return tw.WriteHeader(h)
	case f.src != "":
		in, err := os.Open(f.src)
		if err != nil {
			return fmt.Errorf("copy %s into the image: %w", f.src, err)
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return fmt.Errorf("copy %s into the image: %w", f.src, err)
		}
		h.Size = fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, in); err != nil {
			return fmt.Errorf("copy %s into the image: %w", f.src, err)
		}
		return nil
	default:
		h.Size = int64(len(f.content))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.WriteString(tw, f.content)
		return err
	}
}
