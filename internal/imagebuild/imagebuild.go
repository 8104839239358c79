// Package imagebuild assembles container images with no base image: one
// layer holding one static binary. bosun uses it for its own proxy image,
// which the executor loads onto servers, and the testbed for its app images.
// It never talks to a registry or a Docker daemon.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Config describes the image to build.
type Config struct {
	Binary     string            // path of a static binary on this machine
	Path       string            // where it lives in the image, e.g. "/bosun"
	Entrypoint []string          // defaults to []string{Path}
	Cmd        []string          // arguments after the entrypoint
	Env        []string          // "K=V"
	Labels     map[string]string // image labels
	Ports      []string          // exposed ports, e.g. "80/tcp"
	Arch       string            // GOARCH of Binary, the image's architecture; default "amd64"
}

// FromBinary builds a one-layer image for linux/cfg.Arch holding cfg.Binary.
// Timestamps are fixed, so the same binary gives the same image digest.
func FromBinary(cfg Config) (v1.Image, error) {
	if cfg.Path == "" || !path.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("image path %q must be absolute", cfg.Path)
	}
	data, err := os.ReadFile(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	// The tmp folder lets programs that expect one work in an empty image.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: cfg.Path[1:], Mode: 0o755, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = cfg.Arch, "linux"
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = cfg.Entrypoint
	if len(cf.Config.Entrypoint) == 0 {
		cf.Config.Entrypoint = []string{cfg.Path}
	}
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = cfg.Env
	cf.Config.Labels = cfg.Labels
	if len(cfg.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}
