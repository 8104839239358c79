package imagebuild

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Binary is what Inspect found out about an executable file.
type Binary struct {
	Path    string
	OS      string // GOOS: "linux" for ELF, "darwin" for Mach-O, "" when neither
	Arch    string // GOARCH: "amd64", "arm64", … ("" when unknown)
	Static  bool   // no program interpreter and no shared libraries needed
	BuildID string // the Go build ID, "" when the file has none
	Size    int64
}

// Key identifies the build cheaply (no hash of the whole file): the Go
// build ID with the file size and architecture, hashed. Two builds of
// different sources or flags have different build IDs; the size catches a
// file changed after the build.
func (b Binary) Key() string {
	h := sha256.Sum256([]byte(b.BuildID + "\x00" + strconv.FormatInt(b.Size, 10) + "\x00" + b.OS + "/" + b.Arch))
	return hex.EncodeToString(h[:])
}

// Runnable says why the binary cannot run as a container's only file on a
// linux/arch server, or nil when it can: it must be a Linux ELF executable
// for arch with no program interpreter (PT_INTERP) and no shared libraries
// (DT_NEEDED), as CGO_ENABLED=0 builds are.
func (b Binary) Runnable(arch string) error {
	switch {
	case b.OS != "linux":
		what := "not a Linux executable"
		if b.OS != "" {
			what = "built for " + b.OS + "/" + b.Arch
		}
		return fmt.Errorf("%s is %s", b.Path, what)
	case b.Arch != arch:
		return fmt.Errorf("%s is built for linux/%s, the server is linux/%s", b.Path, b.Arch, arch)
	case !b.Static:
		return fmt.Errorf("%s is dynamically linked (built with cgo), and the proxy image has no C library", b.Path)
	}
	return nil
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
	elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
}

var machoArch = map[macho.Cpu]string{macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64"}

// Inspect reads the headers of the executable at path (ELF or Mach-O); it
// does not read the whole file.
func Inspect(path string) (Binary, error) {
	b := Binary{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return b, err
	}
	b.Size = fi.Size()
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		b.OS, b.Arch = "linux", elfArch[f.Machine]
		if b.Arch == "" {
			b.Arch = f.Machine.String()
		}
		if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
			return b, fmt.Errorf("%s is an ELF file of type %s, not an executable", path, f.Type)
		}
		interp := false
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				interp = true
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return b, fmt.Errorf("read dynamic section of %s: %w", path, err)
		}
		b.Static = !interp && len(libs) == 0
		if s := f.Section(".note.go.buildid"); s != nil {
			if data, err := s.Data(); err == nil {
				b.BuildID = noteBuildID(data, f.ByteOrder)
			}
		}
		return b, nil
	}
	if f, err := macho.Open(path); err == nil {
		defer f.Close()
		b.OS, b.Arch = "darwin", machoArch[f.Cpu]
		return b, nil
	}
	if _, err := macho.OpenFat(path); err == nil {
		b.OS = "darwin"
		return b, nil
	}
	return b, errors.New(path + " is neither an ELF nor a Mach-O executable")
}

// noteBuildID reads the Go build ID from an ELF note: namesz, descsz,
// type (4), name "Go\x00\x00", then the ID.
func noteBuildID(data []byte, bo binary.ByteOrder) string {
	if len(data) < 16 {
		return ""
	}
	namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
	if namesz != 4 || typ != 4 || !bytes.Equal(data[12:16], []byte("Go\x00\x00")) || uint64(len(data)) < 16+uint64(descsz) {
		return ""
	}
	return string(data[16 : 16+descsz])
}
