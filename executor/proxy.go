package executor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/proxy"
)

// Names of the proxy's Docker objects on a server.
const (
	ProxyContainer = "bosun-proxy"
	ProxyVolume    = "bosun-proxy" // routes, certificates and the control token
	proxyImageRepo = "bosun-proxy"
	labelProxy     = "bosun.proxy"
)

// proxyImage is the proxy image this executor installs: either a registry
// reference (Config.ProxyImage) or an image built from the bosun binary,
// loaded through the Engine API.
type proxyImage struct {
	once  sync.Once
	ref   string   // what the container runs
	img   v1.Image // nil for a registry reference
	err   error
	cfg   *Config
	cache map[string]bool // hosts known to have the image
}

func (pi *proxyImage) resolve() (string, error) {
	pi.once.Do(func() {
		if pi.cfg.ProxyImage != "" {
			pi.ref = pi.cfg.ProxyImage
			return
		}
		bin := pi.cfg.ProxyBinary
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				pi.err = fmt.Errorf("find bosun binary for the proxy image: %w", err)
				return
			}
			bin = exe
		}
		img, err := proxy.Image(bin)
		if err != nil {
			pi.err = fmt.Errorf("build proxy image from %s: %w", bin, err)
			return
		}
		d, err := img.Digest()
		if err != nil {
			pi.err = fmt.Errorf("digest proxy image: %w", err)
			return
		}
		pi.img, pi.ref = img, proxyImageRepo+":"+d.Hex[:12]
	})
	return pi.ref, pi.err
}

// ensureImage makes the proxy image present on the server.
func (pi *proxyImage) ensureImage(ctx context.Context, dc *client.Client, auth string) (string, error) {
	ref, err := pi.resolve()
	if err != nil {
		return "", err
	}
	if _, err := dc.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if pi.img == nil {
		if err := pullImage(ctx, dc, ref, auth); err != nil {
			return "", fmt.Errorf("pull %s: %w", ref, err)
		}
		return ref, nil
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, pi.img, pw)) }()
	resp, err := dc.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	pr.CloseWithError(errors.New("load finished"))
	if err != nil {
		return "", fmt.Errorf("load image %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if err := decodeProgress(resp.Body); err != nil {
		return "", fmt.Errorf("load image %s: %w", ref, err)
	}
	return ref, nil
}

// proxyOnHost is the proxy of one server: its container is running and its
// control API reachable through the SSH connection.
type proxyOnHost struct {
	client *proxy.Client
}

// ensureProxy starts bosun-proxy on the server if it is missing or
// stopped, and replaces it when it runs another image; routes live on the
// volume, so a replacement keeps them. The control token is made by the
// proxy in its volume on first start and read back through the Engine API
// (CopyFromContainer): it never appears on a command line or in the
// container's environment.
func (e *Executor) ensureProxy(ctx context.Context, h *hostConn) (*proxyOnHost, error) {
	h.proxyMu.Lock()
	defer h.proxyMu.Unlock()
	if h.proxy != nil {
		return h.proxy, nil
	}
	dc := h.docker
	ref, err := e.proxyImg.ensureImage(ctx, dc, "")
	if err != nil {
		return nil, err
	}
	info, err := dc.ContainerInspect(ctx, ProxyContainer)
	switch {
	case err == nil && info.Config != nil && info.Config.Image == ref:
		if info.State == nil || !info.State.Running {
			if err := dc.ContainerStart(ctx, ProxyContainer, container.StartOptions{}); err != nil {
				return nil, fmt.Errorf("start %s: %w", ProxyContainer, err)
			}
		}
	case err == nil:
		// Another bosun's proxy: replace it. Routes survive on the volume.
		e.log.Info("replacing proxy", "host", h.name, "old_image", info.Config.Image, "image", ref)
		if err := dc.ContainerRemove(ctx, ProxyContainer, container.RemoveOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("remove old %s: %w", ProxyContainer, err)
		}
		fallthrough
	case errdefs.IsNotFound(err):
		if err := e.createProxy(ctx, dc, ref); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("inspect %s: %w", ProxyContainer, err)
	}
	token, err := e.readProxyToken(ctx, dc)
	if err != nil {
		return nil, err
	}
	pc, err := proxy.NewClient(proxy.ClientConfig{
		Addr:     "127.0.0.1:" + strconv.Itoa(proxy.ControlPort),
		Token:    token,
		DialFunc: h.ssh.Dial,
	})
	if err != nil {
		return nil, err
	}
	if err := waitProxyUp(ctx, pc); err != nil {
		return nil, fmt.Errorf("proxy control api on %s: %w", h.name, err)
	}
	h.proxy = &proxyOnHost{client: pc}
	return h.proxy, nil
}

func (e *Executor) createProxy(ctx context.Context, dc *client.Client, ref string) error {
	httpPort, httpsPort := e.cfg.ProxyHTTPPort, e.cfg.ProxyHTTPSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if httpsPort == 0 {
		httpsPort = 443
	}
	ctrl := nat.Port(strconv.Itoa(proxy.ControlPort) + "/tcp")
	cfg := &container.Config{
		Image:        ref,
		Labels:       map[string]string{labelProxy: "true"},
		ExposedPorts: nat.PortSet{"80/tcp": {}, "443/tcp": {}, ctrl: {}},
	}
	hc := &container.HostConfig{
		NetworkMode:   NetworkName,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: ProxyVolume, Target: proxy.ImageStateDir}},
		PortBindings: nat.PortMap{
			"80/tcp":  {{HostPort: strconv.Itoa(httpPort)}},
			"443/tcp": {{HostPort: strconv.Itoa(httpsPort)}},
			// The control API is reachable only from the server itself.
			ctrl: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(proxy.ControlPort)}},
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}},
	}
	if _, err := dc.ContainerCreate(ctx, cfg, hc, &network.NetworkingConfig{}, nil, ProxyContainer); err != nil {
		return fmt.Errorf("create %s: %w", ProxyContainer, err)
	}
	if err := dc.ContainerStart(ctx, ProxyContainer, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", ProxyContainer, err)
	}
	return nil
}

// readProxyToken reads the control token from the proxy's volume. The
// proxy writes it at start, so it is retried briefly.
func (e *Executor) readProxyToken(ctx context.Context, dc *client.Client) (string, error) {
	var last error
	for i := 0; i < 100; i++ {
		rc, _, err := dc.CopyFromContainer(ctx, ProxyContainer, proxy.ImageTokenFile)
		if err == nil {
			tok, err := firstFileOfTar(rc)
			rc.Close()
			if err == nil && strings.TrimSpace(tok) != "" {
				return strings.TrimSpace(tok), nil
			}
			last = err
		} else {
			last = err
		}
		if err := sleepCtx(ctx, pollInterval(i)); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("read proxy control token: %w", last)
}

func firstFileOfTar(r io.Reader) (string, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", err
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(io.LimitReader(tr, 4096))
			return string(b), err
		}
	}
}

// waitProxyUp waits until the control API answers an authenticated call.
func waitProxyUp(ctx context.Context, pc *proxy.Client) error {
	var err error
	for i := 0; i < 150; i++ {
		if _, err = pc.List(ctx); err == nil {
			return nil
		}
		var ae *proxy.APIError
		if errors.As(err, &ae) {
			return err // it answered: a wrong token will not get better
		}
		if err := sleepCtx(ctx, pollInterval(i)); err != nil {
			return err
		}
	}
	return err
}

// proxyService is the proxy's name of a role's route.
func proxyService(service, role string) string { return service + "-" + role }

// deployRequest is the proxy switch to a role's container on the server.
func deployRequest(s *planner.Spec, ctrName string) proxy.DeployRequest {
	p := s.Proxy
	return proxy.DeployRequest{
		Service:         proxyService(s.Service, s.Role),
		Target:          ctrName + ":" + strconv.Itoa(p.AppPort),
		Hosts:           p.Hosts,
		PathPrefix:      p.PathPrefix,
		TLS:             p.SSL,
		HealthPath:      p.HealthPath,
		HealthInterval:  proxy.Duration(p.HealthInterval),
		HealthTimeout:   proxy.Duration(p.HealthTimeout),
		DeployTimeout:   proxy.Duration(s.DeployTimeout),
		DrainTimeout:    proxy.Duration(s.DrainTimeout),
		ResponseTimeout: proxy.Duration(p.ResponseTimeout),
	}
}

func isProxyNotFound(err error) bool { return errors.Is(err, proxy.ErrNotFound) }
