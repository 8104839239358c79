package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The fresh-machine check (`make fresh-check`): the README's commands run in
// a container that has only what a new machine of this project's kind has —
// Debian 12 with Go, gcc, git, make, PostgreSQL's binaries and the docker
// CLI; no dockerd, no sshd, no debootstrap — so that everything else they
// need must come from the project's own provisioning.

// LabelFreshCheck marks the container and volume of a fresh-machine check.
const LabelFreshCheck = "bosun.testbed.fresh-check"

// freshRecipe is the fresh machine's image. The docker CLI is the host's
// binary (a fresh machine has the CLI, not Debian's docker.io, which would
// bring dockerd), and PostgreSQL is Debian's postgresql-15 package with the
// host's links to its binaries in /usr/local/bin, if it has them. Go is not
// in the image: the host's GOROOT is mounted read-only at /usr/local/go.
func freshRecipe(dockerCLI string) *imageRecipe {
	r := &imageRecipe{
		what:       "the fresh-machine",
		repo:       "bosun-testbed-fresh",
		rootfsName: "fresh-rootfs-",
		suite:      "bookworm",
		args:       []string{"--variant=minbase", "--include=ca-certificates,git,make,gcc,libc6-dev,curl,postgresql-15"},
		overlay: []overlayFile{
			{path: "/usr/local/bin/docker", mode: 0o755, src: dockerCLI},
			// A fresh machine's apt has the release, its updates and the
			// security archive; debootstrap writes only the first.
			{path: "/etc/apt/sources.list", mode: 0o644, content: "# see /etc/apt/sources.list.d/debian.sources\n"},
			{path: "/etc/apt/sources.list.d/debian.sources", mode: 0o644, content: debianSources(debianMirror(), "bookworm")},
		},
		changes: []string{
			"ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			`CMD ["sleep", "infinity"]`,
		},
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		p := filepath.Join("/usr/local/bin", name)
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, "/usr/lib/postgresql/") {
			r.overlay = append(r.overlay, overlayFile{path: p, link: target})
		}
	}
	return r
}

// debianSources is a deb822 sources file for suite from mirror, its updates
// and its security archive (beside the mirror, as on deb.debian.org).
func debianSources(mirror, suite string) string {
	security := strings.TrimSuffix(strings.TrimSuffix(mirror, "/"), "/debian") + "/debian-security"
	return fmt.Sprintf(`# bosun fresh-machine check (internal/testbed/fresh.go)
Types: deb
URIs: %s
Suites: %s %s-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: %s
Suites: %s-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`, mirror, suite, suite, security, suite)
}

// freshRunArgs let dockerd run in the fresh machine and the test servers
// nest in it: the server flags (serverRunArgs) without published ports, and
// a volume instead of a tmpfs for /var/lib/docker (the test servers' image
// and the build caches live there).
var freshRunArgs = []string{
	"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
	"-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
	"--init",
}

// freshGoEnv are the go settings passed from the host (its user go env file
// is not in the fresh machine); GOTOOLCHAIN is always local, as Go is the
// mounted one.
var freshGoEnv = []string{"GOPROXY", "GOFLAGS", "GONOPROXY", "GONOSUMDB", "GOPRIVATE", "GOSUMDB", "GOINSECURE"}

// FreshCheckOptions configures FreshCheck.
type FreshCheckOptions struct {
	Repo     string     // a folder in the git checkout whose HEAD commit is tested
	Commands [][]string // run in order in the checkout; default make demo, make test
	Out      io.Writer  // the commands' output; nil discards it
	Logf     Logf
	Keep     bool // leave the container, its volume and the checkout for a look
}

// FreshCheck runs the README's commands on a fresh machine: a clean clone of
// Repo's HEAD commit, with a copy of the shared folder beside it as in CI,
// in a container made from the fresh-machine image (built with debootstrap
// and cached by its recipe's hash, like the server image) with the host's Go
// and CA bundle mounted read-only and a docker volume on /var/lib/docker.
// It returns the first command's failure. The container, volume and checkout
// are removed at the end, and by the next check when this one was killed.
func FreshCheck(ctx context.Context, opt FreshCheckOptions) (err error) {
	if len(opt.Commands) == 0 {
		opt.Commands = [][]string{{"make", "demo"}, {"make", "test"}}
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	logf := opt.Logf
	begin := time.Now()
	if err := EnsureDocker(ctx, logf); err != nil {
		return err
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		return fmt.Errorf("find the docker CLI: %w", err)
	}
	if cli, err = filepath.EvalSymlinks(cli); err != nil {
		return fmt.Errorf("find the docker CLI: %w", err)
	}
	goroot, err := goEnv(ctx, opt.Repo, "GOROOT")
	if err != nil {
		return err
	}
	sweepFreshChecks(ctx, logf)

	ref, err := freshRecipe(cli).ensure(ctx, logf)
	if err != nil {
		return err
	}
	work, commit, err := freshCheckout(ctx, opt.Repo)
	if err != nil {
		return err
	}
	logf.printf("testbed: fresh machine %s, checkout of %s in %s", ref, commit, work)

	id := "bosun-fresh-check-" + newRunID()
	labels := []string{"--label", LabelRun + "=" + id, "--label", LabelOwner + "=" + ownerID(os.Getpid()), "--label", LabelFreshCheck + "=1"}
	defer func() {
		if opt.Keep {
			logf.printf("testbed: kept container and volume %s and checkout %s", id, work)
			return
		}
		cctx := context.WithoutCancel(ctx)
		_, _ = docker(cctx, "rm", "-f", "-v", id)
		_, _ = docker(cctx, "volume", "rm", id)
		_ = os.RemoveAll(work)
	}()
	if _, err := docker(ctx, append(append([]string{"volume", "create"}, labels...), id)...); err != nil {
		return err
	}
	args := append([]string{"run", "-d", "--name", id, "--hostname", "fresh"}, labels...)
	args = append(args, freshRunArgs...)
	args = append(args,
		"-v", id+":/var/lib/docker",
		"-v", goroot+":/usr/local/go:ro",
		"-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
		"-v", work+":/work",
		"-w", "/work/bosun",
		"-e", "GOTOOLCHAIN=local")
	for _, k := range freshGoEnv {
		if v, err := goEnv(ctx, opt.Repo, k); err == nil && v != "" {
			args = append(args, "-e", k+"="+v)
		}
	}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v := os.Getenv(k); v != "" {
			args = append(args, "-e", k+"="+v)
		}
	}
	if _, err := docker(ctx, append(args, ref)...); err != nil {
		return err
	}
	logf.printf("testbed: fresh machine ready in %s", time.Since(begin).Round(time.Second))

	for _, c := range opt.Commands {
		start := time.Now()
		logf.printf("testbed: fresh machine: %s", strings.Join(c, " "))
		cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", id}, c...)...)
		cmd.Stdout, cmd.Stderr = opt.Out, opt.Out
		err := cmd.Run()
		took := time.Since(start).Round(time.Second)
		if err != nil {
			return fmt.Errorf("fresh machine: %s failed after %s: %w", strings.Join(c, " "), took, err)
		}
		logf.printf("testbed: fresh machine: %s passed in %s", strings.Join(c, " "), took)
	}
	logf.printf("testbed: fresh-check passed in %s", time.Since(begin).Round(time.Second))
	return nil
}

// freshCheckout clones the HEAD commit of the checkout at repo into a new
// folder WORK/bosun and copies the shared folder beside the checkout (the
// test fixtures in ../shared) to WORK/shared. Uncommitted changes are not
// in it.
func freshCheckout(ctx context.Context, repo string) (work, commit string, err error) {
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", firstWords(args, 2), err, tail(out))
		}
		return strings.TrimSpace(string(out)), nil
	}
	top, err := git(repo, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", err
	}
	if commit, err = git(top, "rev-parse", "HEAD"); err != nil {
		return "", "", err
	}
	if work, err = os.MkdirTemp("", "bosun-fresh-check-"); err != nil {
		return "", "", fmt.Errorf("create checkout dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(work)
		}
	}()
	dst := filepath.Join(work, "bosun")
	if _, err := git(work, "clone", "--quiet", "--no-checkout", top, dst); err != nil {
		return "", "", err
	}
	if _, err := git(dst, "fetch", "--quiet", top, commit); err != nil {
		return "", "", err
	}
	if _, err := git(dst, "checkout", "--quiet", "--detach", commit); err != nil {
		return "", "", err
	}
	shared, err := filepath.EvalSymlinks(filepath.Join(top, "..", "shared"))
	if err != nil {
		return "", "", fmt.Errorf("find the shared folder beside the checkout: %w", err)
	}
	if err := os.CopyFS(filepath.Join(work, "shared"), os.DirFS(shared)); err != nil {
		return "", "", fmt.Errorf("copy %s: %w", shared, err)
	}
	// MkdirTemp's 0700 would keep PostgreSQL, which the tests run as
	// another user, out of anything below.
	if err := os.Chmod(work, 0o755); err != nil {
		return "", "", fmt.Errorf("chmod checkout dir: %w", err)
	}
	return work, commit, nil
}

// sweepFreshChecks removes the containers and volumes of fresh-machine
// checks whose process is gone.
func sweepFreshChecks(ctx context.Context, logf Logf) {
	sweepStale(ctx, logf) // the containers, by their owner label
	out, err := docker(ctx, "volume", "ls", "--filter", "label="+LabelFreshCheck, "--format", "{{json .}}")
	if err != nil {
		return
	}
	for line := range strings.Lines(out) {
		var v struct{ Name, Labels string }
		if json.Unmarshal([]byte(line), &v) != nil {
			continue
		}
		for _, l := range strings.Split(v.Labels, ",") {
			if owner, ok := strings.CutPrefix(l, LabelOwner+"="); ok && !ownerAlive(owner) {
				logf.printf("testbed: removing volume %s of a dead fresh-machine check", v.Name)
				_, _ = docker(ctx, "volume", "rm", v.Name)
			}
		}
	}
}

// goEnv is `go env NAME` in dir.
func goEnv(ctx context.Context, dir, name string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", name)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go env %s: %w: %s", name, err, tail(ee.Stderr))
		}
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
