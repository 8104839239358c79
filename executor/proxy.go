package executor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
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

	"github.com/bosunhq/bosun/internal/imagebuild"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/proxy"
)

// Names of the proxy's Docker objects on a server.
const (
	ProxyContainer = "bosun-proxy"
	ProxyVolume    = "bosun-proxy" // routes, certificates and the control token
	proxyImageRepo = "bosun-proxy"
	labelProxy     = "bosun.proxy"
	// proxyLayout is the labelProxy value of a proxy container made the
	// way createProxy makes it now; one with another value is replaced.
	// "2": the control API on a unix socket, no TCP control port.
	proxyLayout = "2"
	// labelProxyPublish is "none" on a proxy started without published
	// ports while kamal-proxy still holds them (a takeover, kamal.go); a
	// proxy without it publishes 80/443.
	labelProxyPublish = "bosun.proxy.publish"
	proxyUnpublished  = "none"
)

// DefaultProxyRepository is where `make release` publishes the proxy image,
// tagged with bosun's version (Config.ProxyRepository overrides it).
const DefaultProxyRepository = "ghcr.io/bosunhq/bosun-proxy"

// ErrNoProxyImage means no proxy image can be put on a server: the local
// bosun binary cannot run there and no published or configured image
// stands in for it. The message says how to fix it.
var ErrNoProxyImage = errors.New("no proxy image for the server")

// releaseVersionRE matches release versions, which have a published proxy
// image; Go pseudo-versions (v0.0.0-20260101120000-abcdef123456) and
// devel builds have none.
var (
	releaseVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	pseudoVersionRE  = regexp.MustCompile(`[0-9]{14}-[0-9a-f]{12}$`)
)

// proxyImage decides, per server architecture, which proxy image the
// executor installs, in this order: Config.ProxyImage (pulled); an image
// built from the local bosun binary (loaded through the Engine API) when
// that binary is a static Linux executable of the server's architecture,
// checked on the real file with debug/elf; the published image of this
// bosun's release version (pulled). The local image is tagged by the
// binary's Go build ID (and size), read from its headers, so it is known
// without building it: it is built only for a server that lacks it.
type proxyImage struct {
	cfg *Config

	once   sync.Once
	bin    imagebuild.Binary
	binErr error

	mu  sync.Mutex
	img v1.Image // built from bin on first load
}

// proxySource is where one server's proxy image comes from.
type proxySource struct {
	ref  string
	load bool // build from the local binary and load it; else pull ref
}

// local inspects the bosun binary the proxy image would be built from.
func (pi *proxyImage) local() (imagebuild.Binary, error) {
	pi.once.Do(func() {
		path := pi.cfg.ProxyBinary
		if path == "" {
			exe, err := os.Executable()
			if err != nil {
				pi.binErr = fmt.Errorf("find the bosun binary: %w", err)
				return
			}
			path = exe
		}
		pi.bin, pi.binErr = imagebuild.Inspect(path)
	})
	return pi.bin, pi.binErr
}

// published is the release proxy image of this bosun, or "" for a devel
// build.
func (pi *proxyImage) published() string {
	v := pi.cfg.Version
	if !releaseVersionRE.MatchString(v) || pseudoVersionRE.MatchString(v) {
		return ""
	}
	repo := pi.cfg.ProxyRepository
	if repo == "" {
		repo = DefaultProxyRepository
	}
	return repo + ":" + v
}

// preflight fails at once, before any server is reached, when no server
// can get a proxy: the local binary is no static Linux executable and no
// image stands in for it. Which architecture a static Linux binary fits
// is known only from the server (forArch).
func (pi *proxyImage) preflight() error {
	if pi.cfg.ProxyImage != "" || pi.published() != "" {
		return nil
	}
	bin, err := pi.local()
	if err == nil && bin.OS == "linux" && bin.Static {
		return nil
	}
	if err == nil {
		err = bin.Runnable(bin.Arch)
	}
	return pi.noImage(err, "")
}

// forArch is the proxy image for a linux/arch server.
func (pi *proxyImage) forArch(arch string) (proxySource, error) {
	if pi.cfg.ProxyImage != "" {
		return proxySource{ref: pi.cfg.ProxyImage}, nil
	}
	bin, err := pi.local()
	if err == nil {
		err = bin.Runnable(arch)
	}
	if err == nil {
		return proxySource{ref: proxyImageRepo + ":" + bin.Key()[:12], load: true}, nil
	}
	if pub := pi.published(); pub != "" {
		return proxySource{ref: pub}, nil
	}
	return proxySource{}, pi.noImage(err, arch)
}

func (pi *proxyImage) noImage(why error, arch string) error {
	if arch == "" {
		arch = "amd64" // or arm64: the servers' architecture
	}
	v := pi.cfg.Version
	if v == "" {
		v = "devel"
	}
	return fmt.Errorf("%w: %v, and bosun %s is a development build with no published proxy image. "+
		"Fix: build a static Linux bosun for the servers, `CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -o bosun-linux-%s ./cmd/bosun`, "+
		"and set BOSUN_PROXY_BINARY to that file (or run it, on Linux); or set BOSUN_PROXY_IMAGE to a bosun proxy image (e.g. %s:vX.Y.Z)",
		ErrNoProxyImage, why, v, arch, arch, DefaultProxyRepository)
}

// image builds the proxy image from the local binary, once.
func (pi *proxyImage) image() (v1.Image, error) {
	pi.mu.Lock()
	defer pi.mu.Unlock()
	if pi.img != nil {
		return pi.img, nil
	}
	img, err := proxy.ImageArch(pi.bin.Path, pi.bin.Arch)
	if err != nil {
		return nil, fmt.Errorf("build proxy image from %s: %w", pi.bin.Path, err)
	}
	pi.img = img
	return img, nil
}

// proxySource decides the server's proxy image (once per connection): it
// reads the server's architecture from the Engine API. It changes nothing
// on the server.
func (e *Executor) proxySource(ctx context.Context, h *hostConn) (proxySource, error) {
	h.proxyMu.Lock()
	defer h.proxyMu.Unlock()
	if h.proxySrc.ref != "" {
		return h.proxySrc, nil
	}
	arch := ""
	if e.cfg.ProxyImage == "" {
		v, err := h.docker.ServerVersion(ctx)
		if err != nil {
			return proxySource{}, fmt.Errorf("read the architecture of %s: %w", h.name, err)
		}
		if v.Os != "linux" {
			return proxySource{}, fmt.Errorf("%s runs Docker on %s/%s; bosun-proxy needs a Linux server", h.name, v.Os, v.Arch)
		}
		arch = v.Arch
	}
	src, err := e.proxyImg.forArch(arch)
	if err != nil {
		return proxySource{}, fmt.Errorf("%s (linux/%s): %w", h.name, arch, err)
	}
	h.proxySrc = src
	return src, nil
}

// ensureImage makes the proxy image present on the server.
func (pi *proxyImage) ensureImage(ctx context.Context, dc *client.Client, src proxySource) error {
	ref := src.ref
	if _, err := dc.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if !src.load {
		if err := pullImage(ctx, dc, ref, ""); err != nil {
			return fmt.Errorf("pull proxy image %s: %w", ref, err)
		}
		return nil
	}
	img, err := pi.image()
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	resp, err := dc.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	pr.CloseWithError(errors.New("load finished"))
	if err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if err := decodeProgress(resp.Body); err != nil {
		return fmt.Errorf("load image %s: %w", ref, err)
	}
	return nil
}

// proxyOnHost is the proxy of one server: its container is running and its
// control API reachable through the SSH connection.
type proxyOnHost struct {
	client *proxy.Client
}

// ensureProxy starts bosun-proxy on the server if it is missing or
// stopped, and replaces it when it runs another image or was made another
// way (labelProxy); routes live on the volume, so a replacement keeps them.
// The control token is made by the proxy in its volume on first start and
// read back through the Engine API (CopyFromContainer): it never appears on
// a command line or in the container's environment. A proxy container that
// exits or restarts while this waits for it fails at once with a
// *proxyDownError carrying its last log lines.
func (e *Executor) ensureProxy(ctx context.Context, h *hostConn) (*proxyOnHost, error) {
	return e.ensureProxyMode(ctx, h, true)
}

// ensureProxyMode is ensureProxy for a proxy that publishes its ports, or
// (publish false, during a takeover from Kamal) one that does not: it
// health-checks and routes to new containers while kamal-proxy still
// serves, and moveProxyPorts gives it the ports afterwards. A running proxy
// of the other mode is replaced; routes survive on the volume.
func (e *Executor) ensureProxyMode(ctx context.Context, h *hostConn, publish bool) (*proxyOnHost, error) {
	src, err := e.proxySource(ctx, h)
	if err != nil {
		return nil, err
	}
	h.proxyMu.Lock()
	defer h.proxyMu.Unlock()
	if h.proxy != nil {
		return h.proxy, nil
	}
	dc := h.docker
	if err := e.proxyImg.ensureImage(ctx, dc, src); err != nil {
		return nil, err
	}
	ref := src.ref
	restarts := 0
	info, err := dc.ContainerInspect(ctx, ProxyContainer)
	switch {
	case err == nil && info.Config != nil && info.Config.Image == ref && info.Config.Labels[labelProxy] == proxyLayout &&
		(info.Config.Labels[labelProxyPublish] != proxyUnpublished) == publish:
		restarts = info.RestartCount
		if info.State == nil || !info.State.Running {
			if err := dc.ContainerStart(ctx, ProxyContainer, container.StartOptions{}); err != nil {
				return nil, fmt.Errorf("start %s: %w", ProxyContainer, err)
			}
		}
	case err == nil:
		// Another bosun's proxy: replace it. Routes survive on the volume.
		e.log.InfoContext(ctx, "replacing proxy", "host", h.name, "old_image", info.Config.Image, "image", ref)
		if err := dc.ContainerRemove(ctx, ProxyContainer, container.RemoveOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("remove old %s: %w", ProxyContainer, err)
		}
		fallthrough
	case errdefs.IsNotFound(err):
		if err := e.createProxy(ctx, dc, ref, publish, true); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("inspect %s: %w", ProxyContainer, err)
	}
	pc, err := e.proxyClient(ctx, h, restarts)
	if err != nil {
		return nil, err
	}
	h.proxy = &proxyOnHost{client: pc}
	return h.proxy, nil
}

// proxyClient reads the running proxy's control token and waits until its
// control API answers, as long as the container runs (and restarted no
// more than restarts times).
func (e *Executor) proxyClient(ctx context.Context, h *hostConn, restarts int) (*proxy.Client, error) {
	dc := h.docker
	alive := func() error { return proxyAlive(ctx, dc, restarts) }
	token, err := e.readProxyToken(ctx, dc, alive)
	if err != nil {
		return nil, err
	}
	pc, err := proxy.NewClient(proxy.ClientConfig{
		Addr:     "unix:" + proxy.ControlSocket,
		Token:    token,
		DialFunc: h.ssh.Dial,
	})
	if err != nil {
		return nil, err
	}
	if err := waitProxyUp(ctx, pc, alive); err != nil {
		return nil, fmt.Errorf("proxy control api on %s: %w", h.name, err)
	}
	return pc, nil
}

// proxyDownError is a proxy container that exited or restarted while the
// executor waited for it to come up.
type proxyDownError struct {
	err  error
	logs string // its last log lines
}

func (e *proxyDownError) Error() string { return e.err.Error() }
func (e *proxyDownError) Unwrap() error { return e.err }

// proxyAlive returns a *proxyDownError when the proxy container is not
// running, is restarting, or restarted more often than restarts.
func proxyAlive(ctx context.Context, dc *client.Client, restarts int) error {
	info, err := dc.ContainerInspect(ctx, ProxyContainer)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", ProxyContainer, err)
	}
	s := info.State
	if s != nil && s.Running && !s.Restarting && info.RestartCount <= restarts {
		return nil
	}
	what := "exited"
	if s != nil && (s.Restarting || info.RestartCount > restarts) {
		what = "keeps restarting"
	}
	code := 0
	if s != nil {
		code = s.ExitCode
	}
	bg := context.WithoutCancel(ctx)
	return &proxyDownError{
		err:  fmt.Errorf("%s container %s (exit code %d) before its control API answered", ProxyContainer, what, code),
		logs: lastLogs(bg, dc, ProxyContainer, logLines),
	}
}

// createProxy creates bosun-proxy on the bosun network, publishing its
// ports unless publish is false, and starts it when start is true.
func (e *Executor) createProxy(ctx context.Context, dc *client.Client, ref string, publish, start bool) error {
	return e.createProxyOn(ctx, dc, ref, NetworkName, publish, start)
}

// createProxyOn is createProxy on Docker network net.
func (e *Executor) createProxyOn(ctx context.Context, dc *client.Client, ref, net string, publish, start bool) error {
	httpPort, httpsPort := e.cfg.ProxyHTTPPort, e.cfg.ProxyHTTPSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if httpsPort == 0 {
		httpsPort = 443
	}
	cfg := &container.Config{
		Image:        ref,
		Labels:       map[string]string{labelProxy: proxyLayout},
		ExposedPorts: nat.PortSet{"80/tcp": {}, "443/tcp": {}},
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(net),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: ProxyVolume, Target: proxy.ImageStateDir}},
		// The control API's unix socket, on the server's filesystem: the
		// executor reaches it over SSH, and no container on the bosun
		// network can (there is no TCP control port). Binds, unlike a bind
		// Mount, create the folder on the server when it is missing.
		Binds: []string{proxy.ControlSocketDir + ":" + proxy.ControlSocketDir},
		PortBindings: nat.PortMap{
			"80/tcp":  {{HostPort: strconv.Itoa(httpPort)}},
			"443/tcp": {{HostPort: strconv.Itoa(httpsPort)}},
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}},
	}
	if !publish {
		cfg.Labels[labelProxyPublish] = proxyUnpublished
		hc.PortBindings = nil
	}
	if _, err := dc.ContainerCreate(ctx, cfg, hc, &network.NetworkingConfig{}, nil, ProxyContainer); err != nil {
		return fmt.Errorf("create %s: %w", ProxyContainer, err)
	}
	if !start {
		return nil
	}
	if err := dc.ContainerStart(ctx, ProxyContainer, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", ProxyContainer, err)
	}
	return nil
}

// readProxyToken reads the control token from the proxy's volume. The
// proxy writes it at start, so it is retried briefly, as long as alive
// says the container runs.
func (e *Executor) readProxyToken(ctx context.Context, dc *client.Client, alive func() error) (string, error) {
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
		if err := alive(); err != nil {
			return "", err
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

// waitProxyUp waits until the control API answers an authenticated call,
// as long as alive says the container runs.
func waitProxyUp(ctx context.Context, pc *proxy.Client, alive func() error) error {
	var err error
	for i := 0; i < 150; i++ {
		if _, err = pc.List(ctx); err == nil {
			return nil
		}
		var ae *proxy.APIError
		if errors.As(err, &ae) {
			return err // it answered: a wrong token will not get better
		}
		if aerr := alive(); aerr != nil {
			return aerr
		}
		if err := sleepCtx(ctx, pollInterval(i)); err != nil {
			return err
		}
	}
	return err
}

// proxyService is the proxy's name of a role's route.
func proxyService(service, role string) string { return service + "-" + role }

// tlsCert is a custom certificate's PEM and key, resolved from the
// secrets the spec names.
type tlsCert struct{ certPEM, keyPEM string }

// resolveCertificate looks up the secrets of the spec's custom TLS
// certificate and checks that the pair belongs together, covers the
// route's hosts and is valid now (proxy.ParseCertificate), so that a bad
// certificate fails the host before anything on it changes. The zero
// tlsCert when the spec has none. Errors name secrets, never values.
func resolveCertificate(s *planner.Spec, secrets SecretSource) (tlsCert, error) {
	if s.Proxy == nil || s.Proxy.Certificate == nil {
		return tlsCert{}, nil
	}
	c := s.Proxy.Certificate
	var vals [2]string
	for i, name := range []string{c.CertificatePEM.Name, c.PrivateKeyPEM.Name} {
		if secrets == nil {
			return tlsCert{}, fmt.Errorf("secret %s of proxy.ssl: no secrets are available", name)
		}
		v, ok := secrets.LookupSecret(name)
		if !ok {
			return tlsCert{}, fmt.Errorf("secret %s of proxy.ssl is not set", name)
		}
		vals[i] = v
	}
	if _, err := proxy.ParseCertificate(vals[0], vals[1], s.Proxy.Hosts); err != nil {
		return tlsCert{}, fmt.Errorf("proxy.ssl (secrets %s and %s): %w", c.CertificatePEM.Name, c.PrivateKeyPEM.Name, err)
	}
	return tlsCert{certPEM: vals[0], keyPEM: vals[1]}, nil
}

// deployRequest is the proxy switch to a role's container on the server.
func deployRequest(s *planner.Spec, ctrName string, cert tlsCert) proxy.DeployRequest {
	p := s.Proxy
	return proxy.DeployRequest{
		TLSCertificate:  cert.certPEM,
		TLSKey:          cert.keyPEM,
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
