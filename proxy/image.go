package proxy

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bosunhq/bosun/internal/imagebuild"
)

// Image paths and ports of the bosun-proxy container.
const (
	ImageBinaryPath = "/bosun"
	ImageStateDir   = "/var/lib/bosun-proxy" // mount a volume here: routes and certificates
	ImageTokenFile  = ImageStateDir + "/control-token"
	ControlPort     = 7080 // publish only on the server's loopback: -p 127.0.0.1:7080:7080
)

// ImageCmd is the image's default command. The control API listens on all
// addresses inside the container's network namespace; the executor
// publishes it on the server's 127.0.0.1 only, and reaches it through its
// SSH connection. The token comes from BOSUN_PROXY_TOKEN if set, else from
// the token file in the state volume, which is made on first start.
var ImageCmd = []string{
	"proxy", "run",
	"--http", ":80", "--https", ":443",
	"--control", ":7080",
	"--state", ImageStateDir,
	"--token-file", ImageTokenFile,
}

// Image builds the bosun-proxy image from a static bosun binary (linux/amd64):
// no base image, one layer, entrypoint /bosun, command ImageCmd.
func Image(binaryPath string) (v1.Image, error) {
	return imagebuild.FromBinary(imagebuild.Config{
		Binary: binaryPath,
		Path:   ImageBinaryPath,
		Cmd:    ImageCmd,
		Labels: map[string]string{"bosun.role": "proxy"},
		Ports:  []string{"80/tcp", "443/tcp", "7080/tcp"},
	})
}
