// Package release builds what `make release` publishes: static bosun
// binaries for every supported platform with their SHA-256 checksums, and
// the multi-architecture proxy image (an OCI image layout holding one
// image per Linux architecture and an index over them) that servers pull
// when the local bosun binary cannot serve as their proxy. It runs `go
// build`; it never publishes anything by itself (Push does, when asked).
package release

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bosunhq/bosun/proxy"
)

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the release's binaries: Linux servers and laptops, Macs.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}, {"darwin", "amd64"}}

// Options are one release build.
type Options struct {
	Version   string     // stamped as main.version, e.g. v0.4.0; required
	Revision  string     // stamped as main.revision (the commit); required
	Out       string     // output folder, made if missing
	Module    string     // the module root to build in; default "."
	Platforms []Platform // default Platforms
	Log       io.Writer  // progress lines; nil: none
}

// Artifacts are the files Build wrote.
type Artifacts struct {
	Binaries  map[Platform]string // path by platform
	Checksums string              // SHA256SUMS, in sha256sum's format
	ProxyOCI  string              // OCI image layout of the proxy image index (linux platforms)
}

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`)

// BinaryName is the release file name of bosun for a platform.
func BinaryName(version string, p Platform) string {
	return "bosun-" + version + "-" + p.OS + "-" + p.Arch
}

// Build builds the release into opt.Out.
func Build(ctx context.Context, opt Options) (*Artifacts, error) {
	if !versionRE.MatchString(opt.Version) || !versionRE.MatchString(opt.Revision) {
		return nil, fmt.Errorf("release: version %q and revision %q must be 1-64 of A-Z a-z 0-9 . + _ -", opt.Version, opt.Revision)
	}
	if opt.Module == "" {
		opt.Module = "."
	}
	plats := opt.Platforms
	if len(plats) == 0 {
		plats = Platforms
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", args...)
		}
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opt.Out)
	if err != nil {
		return nil, err
	}
	a := &Artifacts{Binaries: map[Platform]string{}}
	ldflags := "-s -w -X main.version=" + opt.Version + " -X main.revision=" + opt.Revision
	for _, p := range plats {
		dst := filepath.Join(out, BinaryName(opt.Version, p))
		logf("release: go build %s → %s", p, dst)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", dst, "./cmd/bosun")
		cmd.Dir = opt.Module
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build bosun for %s: %w: %s", p, err, strings.TrimSpace(string(b)))
		}
		a.Binaries[p] = dst
	}
	if a.Checksums, err = writeChecksums(out, a.Binaries); err != nil {
		return nil, err
	}
	linux := map[string]string{}
	for p, path := range a.Binaries {
		if p.OS == "linux" {
			linux[p.Arch] = path
		}
	}
	if len(linux) > 0 {
		idx, err := proxy.Index(linux)
		if err != nil {
			return nil, err
		}
		a.ProxyOCI = filepath.Join(out, "bosun-proxy-"+opt.Version+"-oci")
		if err := os.RemoveAll(a.ProxyOCI); err != nil {
			return nil, err
		}
		logf("release: proxy image (%d architectures) → %s", len(linux), a.ProxyOCI)
		if _, err := layout.Write(a.ProxyOCI, idx); err != nil {
			return nil, fmt.Errorf("write proxy image layout: %w", err)
		}
	}
	return a, nil
}

// writeChecksums writes SHA256SUMS beside the binaries.
func writeChecksums(dir string, bins map[Platform]string) (string, error) {
	var lines []string
	for _, path := range bins {
		sum, err := fileSHA256(path)
		if err != nil {
			return "", err
		}
		lines = append(lines, sum+"  "+filepath.Base(path))
	}
	sort.Strings(lines)
	dst := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(dst, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReader(f)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyChecksums checks every line of a SHA256SUMS file against the files
// beside it.
func VerifyChecksums(sums string) error {
	data, err := os.ReadFile(sums)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		want, file, ok := strings.Cut(line, "  ")
		if !ok {
			return fmt.Errorf("%s: bad line %q", sums, line)
		}
		got, err := fileSHA256(filepath.Join(filepath.Dir(sums), file))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: sha256 %s, SHA256SUMS says %s", file, got, want)
		}
	}
	return nil
}

// Push uploads the proxy image index in an OCI layout to ref (e.g.
// ghcr.io/bosunhq/bosun-proxy:v0.4.0), with the credentials of the
// docker CLI's config (docker login).
func Push(ctx context.Context, layoutDir, ref string, opts ...name.Option) error {
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	// layout.Write made the proxy index the layout's own index.json: its
	// manifests are the per-architecture images.
	proxyIdx := idx
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return err
	}
	return remote.WriteIndex(tag, proxyIdx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}
