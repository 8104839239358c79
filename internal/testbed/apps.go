package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bosunhq/bosun/internal/imagebuild"
	"github.com/bosunhq/bosun/proxy" // proxy's in-package tests must not import testbed (cycle); proxy_test may
)

// AppKind is the behaviour baked into a sample app image.
type AppKind int

const (
	AppOK        AppKind = iota // healthy: GET /up answers 200
	AppUnhealthy                // runs, but GET /up answers 500
	AppCrash                    // exits at once with a log line
)

// String returns the APP_MODE the kind bakes into the image.
func (k AppKind) String() string {
	switch k {
	case AppOK:
		return "ok"
	case AppUnhealthy:
		return "unhealthy"
	case AppCrash:
		return "crash"
	}
	return "AppKind(" + strconv.Itoa(int(k)) + ")"
}

// SampleAppPort is the port the sample app listens on in its container.
const SampleAppPort = 80

var (
	repoNameRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// PushApp builds the sample app image for version and kind (APP_VERSION and
// APP_MODE in its config) and pushes it to the bed's registry. It returns
// the reference the servers pull, "REGISTRY/name:version".
func (b *Bed) PushApp(t testing.TB, name, version string, kind AppKind) string {
	t.Helper()
	ref, err := b.PushAppContext(tbContext(t), name, version, kind)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// PushAppContext is PushApp for callers without a testing.TB.
func (b *Bed) PushAppContext(ctx context.Context, name, version string, kind AppKind) (string, error) {
	if kind < AppOK || kind > AppCrash {
		return "", fmt.Errorf("push app %s:%s: unknown kind %d", name, version, kind)
	}
	img, err := AppImage(ctx, name, version, kind)
	if err != nil {
		return "", err
	}
	return b.Push(ctx, img, name, version)
}

// AppImage builds the sample app image for version and kind (APP_VERSION
// and APP_MODE in its config), for a test that pushes it elsewhere than to
// the bed's registry (PushImage).
func AppImage(ctx context.Context, name, version string, kind AppKind) (v1.Image, error) {
	bin, err := sampleAppBinary(ctx)
	if err != nil {
		return nil, err
	}
	img, err := imagebuild.FromBinary(imagebuild.Config{
		Binary: bin,
		Path:   "/sampleapp",
		Env:    []string{"APP_VERSION=" + version, "APP_MODE=" + kind.String(), "PORT=" + strconv.Itoa(SampleAppPort)},
		Labels: map[string]string{"bosun.testbed.app": name},
		Ports:  []string{strconv.Itoa(SampleAppPort) + "/tcp"},
	})
	if err != nil {
		return nil, fmt.Errorf("build app image %s:%s: %w", name, version, err)
	}
	return img, nil
}

// KamalProxyImage is the repository and tag PushKamalProxy pushes, as
// Kamal 2.12 runs them.
const KamalProxyImage = "basecamp/kamal-proxy:v0.9.2"

// PushKamalProxy pushes a stand-in for Kamal's proxy image to the bed's
// registry as REGISTRY/basecamp/kamal-proxy:v0.9.2, labelled as Kamal's
// (org.opencontainers.image.title=kamal-proxy): the sample app binary as a
// reverse proxy to $PROXY_TO on ports 80 and 443. It returns the reference
// the servers pull.
func (b *Bed) PushKamalProxy(t testing.TB) string {
	t.Helper()
	ref, err := b.PushKamalProxyContext(tbContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// PushKamalProxyContext is PushKamalProxy for callers without a testing.TB.
func (b *Bed) PushKamalProxyContext(ctx context.Context) (string, error) {
	bin, err := sampleAppBinary(ctx)
	if err != nil {
		return "", err
	}
	img, err := imagebuild.FromBinary(imagebuild.Config{
		Binary: bin,
		Path:   "/kamal-proxy",
		Labels: map[string]string{"org.opencontainers.image.title": "kamal-proxy"},
		Ports:  []string{"80/tcp", "443/tcp"},
	})
	if err != nil {
		return "", fmt.Errorf("build kamal-proxy stand-in: %w", err)
	}
	repo, tag, _ := strings.Cut(KamalProxyImage, ":")
	return b.Push(ctx, img, repo, tag)
}

// PushProxy pushes bosun's proxy image (proxy.Image of the bosun binary
// built by BosunBinary) to the bed's registry as "REGISTRY/bosun-proxy:test"
// and returns that reference.
func (b *Bed) PushProxy(t testing.TB) string {
	t.Helper()
	ref, err := b.PushProxyContext(tbContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// PushProxyContext is PushProxy for callers without a testing.TB.
func (b *Bed) PushProxyContext(ctx context.Context) (string, error) {
	bin, err := BosunBinaryContext(ctx)
	if err != nil {
		return "", err
	}
	img, err := proxy.Image(bin)
	if err != nil {
		return "", fmt.Errorf("build proxy image: %w", err)
	}
	return b.Push(ctx, img, "bosun-proxy", "test")
}

// PushImage writes img as repo:tag to the plain-HTTP registry at addr
// ("HOST:PORT").
func PushImage(ctx context.Context, img v1.Image, addr, repo, tag string) error {
	if !repoNameRE.MatchString(repo) || !tagRE.MatchString(tag) {
		return fmt.Errorf("push %s:%s: invalid repository name or tag", repo, tag)
	}
	dst, err := name.NewTag(addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return fmt.Errorf("push %s:%s: %w", repo, tag, err)
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s:%s to %s: %w", repo, tag, addr, err)
	}
	return nil
}

// Push writes img to the bed's registry as name:tag and returns the
// reference the servers pull, "REGISTRY/name:tag". The push goes to
// RegistryPush (loopback); the same storage answers at Registry. It works on
// a Bed decoded from cmd/testbed's state file too, while that bed is up.
func (b *Bed) Push(ctx context.Context, img v1.Image, repo, tag string) (string, error) {
	if !repoNameRE.MatchString(repo) || !tagRE.MatchString(tag) {
		return "", fmt.Errorf("push %s:%s: invalid repository name or tag", repo, tag)
	}
	if err := PushImage(ctx, img, b.RegistryPush, repo, tag); err != nil {
		return "", err
	}
	return b.Registry + "/" + repo + ":" + tag, nil
}

var (
	buildMu    sync.Mutex
	buildDir   string
	builtBins  = map[string]string{}
	moduleRoot string
)

// sampleAppBinary builds internal/testbed/sampleapp as a static binary once
// per process and returns its path.
func sampleAppBinary(ctx context.Context) (string, error) {
	return buildStatic(ctx, "./internal/testbed/sampleapp", "sampleapp")
}

// BosunBinary builds ./cmd/bosun as a static binary (CGO_ENABLED=0) once per
// process and returns its path.
func BosunBinary(t testing.TB) string {
	t.Helper()
	p, err := BosunBinaryContext(tbContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BosunBinaryContext is BosunBinary for callers without a testing.TB.
func BosunBinaryContext(ctx context.Context) (string, error) {
	return buildStatic(ctx, "./cmd/bosun", "bosun")
}

// BuildBosun builds bosun with the given extra environment (for example
// "CGO_ENABLED=1", or "GOOS=darwin", "GOARCH=arm64"), once per process and
// environment, and returns its path: for tests of what a user's own build
// of bosun does. With no env it is BosunBinary.
func BuildBosun(t testing.TB, env ...string) string {
	t.Helper()
	p, err := buildWith(tbContext(t), "./cmd/bosun", "bosun", env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// buildStatic builds a package of this module with CGO_ENABLED=0 into a
// per-process folder, once per process. A failed build is retried by the
// next call.
func buildStatic(ctx context.Context, pkg, out string) (string, error) {
	return buildWith(ctx, pkg, out, nil)
}

// buildWith is buildStatic with env added after CGO_ENABLED=0 GOOS=linux
// GOARCH=amd64 (so it overrides them).
func buildWith(ctx context.Context, pkg, out string, env []string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg
	if len(env) > 0 {
		key += " " + strings.Join(env, " ")
		out += "-" + strings.NewReplacer("=", "-", "/", "-", " ", "-").Replace(strings.Join(env, "-"))
	}
	if p, ok := builtBins[key]; ok {
		return p, nil
	}
	root, err := findModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		parent := filepath.Join(os.TempDir(), "bosun-testbed-bin")
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", fmt.Errorf("create build dir: %w", err)
		}
		sweepBuildDirs(parent)
		buildDir = filepath.Join(parent, ownerID(os.Getpid()))
		if err := os.MkdirAll(buildDir, 0o755); err != nil {
			return "", fmt.Errorf("create build dir: %w", err)
		}
	}
	dst := filepath.Join(buildDir, out)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dst, pkg)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s %v: %w: %s", pkg, env, err, tail(b))
	}
	builtBins[key] = dst
	return dst, nil
}

// sweepBuildDirs removes build folders of processes that are gone.
func sweepBuildDirs(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if e.IsDir() && !ownerAlive(e.Name()) {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// findModuleRoot finds bosun's module root: from the working directory (a
// test runs in its package folder), else from this source file's location.
func findModuleRoot(ctx context.Context) (string, error) {
	if moduleRoot != "" {
		return moduleRoot, nil
	}
	isBosun := func(dir string) bool {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.HasPrefix(strings.TrimSpace(string(data)), "module github.com/bosunhq/bosun\n")
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err == nil {
		if dir := filepath.Dir(strings.TrimSpace(string(out))); isBosun(dir) {
			moduleRoot = dir
			return dir, nil
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); isBosun(dir) {
			moduleRoot = filepath.Clean(dir)
			return moduleRoot, nil
		}
	}
	return "", fmt.Errorf("find bosun's module root: run from inside its work tree")
}
