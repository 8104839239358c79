package proxy

import (
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bosunhq/bosun/internal/imagebuild"
)

// Image paths of the bosun-proxy container.
const (
	ImageBinaryPath = "/bosun"
	ImageStateDir   = "/var/lib/bosun-proxy" // mount a volume here: routes and certificates
	ImageTokenFile  = ImageStateDir + "/control-token"
	// ControlSocketDir is bind-mounted from the same path on the server;
	// the control API listens on ControlSocket in it, and nowhere else.
	ControlSocketDir = "/run/bosun-proxy"
	ControlSocket    = ControlSocketDir + "/control.sock"
	// ControlPort is the default TCP control port of `bosun proxy run`
	// outside the container (--control 127.0.0.1:7080).
	ControlPort = 7080
)

// ImageCmd is the image's default command. The control API listens only on
// a unix socket in ControlSocketDir, which the executor bind-mounts from
// the server and reaches through its SSH connection (streamlocal
// forwarding): no container on the bosun network can connect to it. The
// token comes from BOSUN_PROXY_TOKEN if set, else from the token file in
// the state volume, which is made on first start.
var ImageCmd = []string{
	"proxy", "run",
	"--http", ":80", "--https", ":443",
	"--control", "unix:" + ControlSocket,
	"--state", ImageStateDir,
	"--token-file", ImageTokenFile,
}

// Image builds the bosun-proxy image for linux/amd64 from a static bosun
// binary: no base image, one layer, entrypoint /bosun, command ImageCmd.
func Image(binaryPath string) (v1.Image, error) { return ImageArch(binaryPath, "amd64") }

// ImageArch is Image for a binary built for linux/arch.
func ImageArch(binaryPath, arch string) (v1.Image, error) {
	return imagebuild.FromBinary(imagebuild.Config{
		Binary: binaryPath,
		Path:   ImageBinaryPath,
		Cmd:    ImageCmd,
		Labels: map[string]string{"bosun.role": "proxy"},
		Ports:  []string{"80/tcp", "443/tcp"},
		Arch:   arch,
	})
}

// Index builds the multi-architecture proxy image (an OCI index) from
// static Linux bosun binaries by GOARCH, as `make release` publishes it:
// a server pulls the image of its own architecture. (Docker 20.10 refuses
// a Docker manifest list that comes out of an OCI layout, so the index is
// an OCI one.)
func Index(binaries map[string]string) (v1.ImageIndex, error) {
	arches := make([]string, 0, len(binaries))
	for a := range binaries {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	var adds []mutate.IndexAddendum
	for _, arch := range arches {
		bin, err := imagebuild.Inspect(binaries[arch])
		if err != nil {
			return nil, err
		}
		if err := bin.Runnable(arch); err != nil {
			return nil, fmt.Errorf("proxy image for linux/%s: %w", arch, err)
		}
		img, err := ImageArch(binaries[arch], arch)
		if err != nil {
			return nil, fmt.Errorf("proxy image for linux/%s: %w", arch, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}
