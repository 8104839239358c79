package release

import (
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

const (
	testVersion  = "v0.0.0-releasetest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

var (
	buildOnce sync.Once
	built     *Artifacts
	buildErr  error
)

// release builds the release once per test binary: four cross builds of
// bosun take minutes on a cold build cache.
func release(t *testing.T) *Artifacts {
	t.Helper()
	if testing.Short() {
		t.Skip("builds bosun for four platforms")
	}
	buildOnce.Do(func() {
		dir, err := filepathTemp()
		if err != nil {
			buildErr = err
			return
		}
		built, buildErr = Build(t.Context(), Options{Version: testVersion, Revision: testRevision, Out: dir, Module: "../.."})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func TestRelease_binariesAreStatic(t *testing.T) {
	a := release(t)
	if len(a.Binaries) != len(Platforms) {
		t.Fatalf("%d binaries, want %d", len(a.Binaries), len(Platforms))
	}
	for _, p := range Platforms {
		path := a.Binaries[p]
		if filepath.Base(path) != BinaryName(testVersion, p) {
			t.Errorf("%s: file %s, want %s", p, filepath.Base(path), BinaryName(testVersion, p))
		}
		switch p.OS {
		case "linux":
			checkELF(t, path, p.Arch)
		case "darwin":
			checkMachO(t, path, p.Arch)
		}
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["GOOS"] != p.OS || settings["GOARCH"] != p.Arch {
			t.Errorf("%s: build settings CGO_ENABLED=%q GOOS=%q GOARCH=%q, want 0 %s %s", path, settings["CGO_ENABLED"], settings["GOOS"], settings["GOARCH"], p.OS, p.Arch)
		}
	}
	if err := VerifyChecksums(a.Checksums); err != nil {
		t.Error(err)
	}
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkELF: a Linux executable for arch with no program interpreter and
// no shared library: it runs in an image that holds nothing else.
func checkELF(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != elfMachine[arch] || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s: machine %s OS ABI %s, want %s", path, f.Machine, f.OSABI, elfMachine[arch])
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: dynamically linked", path, p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", path, libs)
	}
}

var machoCPU = map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}

// checkMachO: a macOS executable for arch that links only the system
// libraries every Mac has (Go links libSystem on macOS even without cgo),
// nothing from Homebrew or a C toolchain.
func checkMachO(t *testing.T, path, arch string) {
	t.Helper()
	f, err := macho.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Cpu != machoCPU[arch] || f.Type != macho.TypeExec {
		t.Errorf("%s: cpu %s type %d, want %s executable", path, f.Cpu, f.Type, machoCPU[arch])
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		if !strings.HasPrefix(l, "/usr/lib/") && !strings.HasPrefix(l, "/System/Library/") {
			t.Errorf("%s links %s, which is not part of macOS", path, l)
		}
	}
}

func TestRelease_versionIsStamped(t *testing.T) {
	a := release(t)
	bin, ok := a.Binaries[Platform{runtime.GOOS, runtime.GOARCH}]
	if !ok {
		t.Skipf("no release binary runs on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("bosun version: %v: %s", err, out)
	}
	want := "bosun " + testVersion + " (commit " + testRevision[:12]
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("bosun version printed %q, want it to start with %q", out, want)
	}
}

func TestRelease_proxyImageLayout(t *testing.T) {
	a := release(t)
	p, err := layout.FromPath(a.ProxyOCI)
	if err != nil {
		t.Fatal(err)
	}
	// The layout's index.json is the proxy index (as Push uploads it).
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != m.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("image for %s says %s/%s", got[len(got)-1], cf.OS, cf.Architecture)
		}
	}
	if strings.Join(got, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("proxy index platforms %v, want linux/amd64 linux/arm64", got)
	}
}

var tempDir string

// filepathTemp is a folder for the build that outlives the first test
// (t.TempDir would be removed after it); TestMain removes it.
func filepathTemp() (string, error) {
	var err error
	tempDir, err = os.MkdirTemp("", "bosun-release-test-")
	return tempDir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tempDir != "" {
		os.RemoveAll(tempDir)
	}
	os.Exit(code)
}
