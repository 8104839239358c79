package imagebuild

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestInspect_thisTestBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Inspect(exe)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("ELF and Mach-O only")
	}
	if b.OS != runtime.GOOS || b.Arch != runtime.GOARCH {
		t.Errorf("Inspect says %s/%s, want %s/%s", b.OS, b.Arch, runtime.GOOS, runtime.GOARCH)
	}
	if runtime.GOOS == "linux" && b.BuildID == "" {
		t.Error("no Go build ID read from the ELF note")
	}
	if b.Size <= 0 || len(b.Key()) != 64 {
		t.Errorf("size %d key %q", b.Size, b.Key())
	}
}

func TestBinary_Runnable(t *testing.T) {
	for _, c := range []struct {
		b    Binary
		arch string
		want string // "" runnable
	}{
		{Binary{Path: "b", OS: "linux", Arch: "amd64", Static: true}, "amd64", ""},
		{Binary{Path: "b", OS: "linux", Arch: "amd64", Static: false}, "amd64", "dynamically linked"},
		{Binary{Path: "b", OS: "linux", Arch: "amd64", Static: true}, "arm64", "built for linux/amd64, the server is linux/arm64"},
		{Binary{Path: "b", OS: "darwin", Arch: "arm64"}, "arm64", "built for darwin/arm64"},
		{Binary{Path: "b"}, "amd64", "not a Linux executable"},
	} {
		err := c.b.Runnable(c.arch)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v on %s: %v, want %q", c.b, c.arch, err, c.want)
		}
	}
}

func TestInspect_notAnExecutable(t *testing.T) {
	f := t.TempDir() + "/x"
	if err := os.WriteFile(f, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(f); err == nil {
		t.Error("a shell script passed as an executable")
	}
}
