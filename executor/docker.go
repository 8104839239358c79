package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"

	"github.com/bosunhq/bosun/planner"
)

// Labels bosun puts on every container it creates. Only containers carrying
// LabelService are ever stopped or removed by bosun.
const (
	LabelService = "bosun.service"
	LabelRole    = "bosun.role"
	LabelVersion = "bosun.version"
	LabelCommit  = "bosun.commit"
	LabelRepo    = "bosun.repo"
	LabelHost    = "bosun.host"

	// NetworkName is the Docker network bosun's containers and proxy share.
	NetworkName = "bosun"

	dockerSocket = "/var/run/docker.sock"
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	versionRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
)

// containerName is "<service>-<role>-<version>".
func containerName(service, role, version string) string {
	return service + "-" + role + "-" + version
}

// validateTarget checks every name that reaches a server, although the
// planner validated them already: a name is the only config value that ends
// up in a Docker object name.
func validateTarget(service, role, version string) error {
	if !nameRE.MatchString(service) {
		return fmt.Errorf("service name %q: want 1-63 of a-z, 0-9, '_', '.', '-'", service)
	}
	if !nameRE.MatchString(role) {
		return fmt.Errorf("role name %q: want 1-63 of a-z, 0-9, '_', '.', '-'", role)
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q: want letters, digits, '_', '.', '-'", version)
	}
	return nil
}

// newDockerClient talks to the server's Docker Engine through the SSH
// connection: every HTTP connection is a stream to /var/run/docker.sock
// forwarded over SSH. The host must stay unix:// (an http:// host makes the
// client resolve it instead of using our dialer).
func newDockerClient(c *sshConn) (*client.Client, error) {
	return client.NewClientWithOpts(
		client.WithHost("unix://"+dockerSocket),
		client.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.Dial(ctx, "unix", dockerSocket)
		}),
		client.WithAPIVersionNegotiation(),
	)
}

// createParams is what the executor knows about a container beyond its spec.
type createParams struct {
	Repo, Commit, Version, Host string
	Store                       string            // label bosun.store: the identity of the store whose rollout makes it
	Home                        string            // the SSH user's login folder, for planner.HomePrefix sources
	Env                         map[string]string // clear env plus resolved secrets
}

// needsHome reports whether s mounts a folder relative to the SSH user's
// home (planner.HomePrefix).
func needsHome(s *planner.Spec) bool {
	for _, v := range s.Volumes {
		if strings.HasPrefix(v.Source, planner.HomePrefix) {
			return true
		}
	}
	return false
}

// containerConfig maps a Spec onto Docker's create request. Nothing here is
// ever formatted into a shell command: each value goes into its own field.
func containerConfig(s *planner.Spec, p createParams) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        s.Cmd,
		User:       s.Options.User,
		WorkingDir: s.Options.Workdir,
		StopSignal: s.Options.StopSignal,
		Labels:     map[string]string{},
	}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, nil, nil, fmt.Errorf("env name %q", k)
		}
		cfg.Env = append(cfg.Env, k+"="+p.Env[k])
	}
	for k, v := range s.Labels {
		if strings.HasPrefix(k, "bosun.") {
			return nil, nil, nil, fmt.Errorf("label %q: the bosun. prefix is reserved", k)
		}
		cfg.Labels[k] = v
	}
	cfg.Labels[LabelService] = s.Service
	cfg.Labels[LabelRole] = s.Role
	cfg.Labels[LabelVersion] = p.Version
	cfg.Labels[LabelCommit] = p.Commit
	cfg.Labels[LabelRepo] = p.Repo
	cfg.Labels[LabelHost] = p.Host
	if p.Store != "" {
		cfg.Labels[LabelStore] = p.Store
	}
	if s.StopTimeout > 0 {
		secs := int(time.Duration(s.StopTimeout).Seconds())
		cfg.StopTimeout = &secs
	}
	if len(s.Health.Cmd) > 0 {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        s.Health.Cmd,
			Interval:    time.Duration(s.Health.Interval),
			Timeout:     time.Duration(s.Health.Timeout),
			Retries:     s.Health.Retries,
			StartPeriod: time.Duration(s.Health.StartPeriod),
		}
	}

	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(NetworkName),
		CapAdd:         s.Options.CapAdd,
		CapDrop:        s.Options.CapDrop,
		ExtraHosts:     s.Options.AddHosts,
		ReadonlyRootfs: s.Options.ReadOnly,
		Privileged:     s.Options.Privileged,
		GroupAdd:       s.Options.GroupAdd,
		SecurityOpt:    s.Options.SecurityOpt,
	}
	o := s.Options
	var err error
	switch o.PID {
	case "":
	case "host":
		hc.PidMode = "host"
	default:
		return nil, nil, nil, fmt.Errorf("options.pid %q: want host", o.PID)
	}
	if o.MemorySwap == "-1" {
		hc.MemorySwap = -1
	} else if o.MemorySwap != "" {
		if hc.MemorySwap, err = units.RAMInBytes(o.MemorySwap); err != nil {
			return nil, nil, nil, fmt.Errorf("options.memory_swap %q: %w", o.MemorySwap, err)
		}
	}
	for _, ms := range o.Mounts {
		pm, msg := planner.ParseMount(ms)
		if msg != "" {
			return nil, nil, nil, fmt.Errorf("options.mounts: %s", msg)
		}
		m := mount.Mount{Type: mount.Type(pm.Type), Source: pm.Source, Target: pm.Target, ReadOnly: pm.ReadOnly}
		switch pm.Type {
		case "bind":
			if pm.BindPropagation != "" {
				m.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(pm.BindPropagation)}
			}
		case "volume":
			if pm.VolumeDriver != "" || len(pm.VolumeOpts) > 0 || pm.VolumeNoCopy {
				m.VolumeOptions = &mount.VolumeOptions{NoCopy: pm.VolumeNoCopy}
				if pm.VolumeDriver != "" || len(pm.VolumeOpts) > 0 {
					m.VolumeOptions.DriverConfig = &mount.Driver{Name: pm.VolumeDriver, Options: pm.VolumeOpts}
				}
			}
		case "tmpfs":
			if pm.TmpfsSize != 0 || pm.TmpfsMode != 0 {
				m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: pm.TmpfsSize, Mode: os.FileMode(pm.TmpfsMode)}
			}
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	if o.Memory != "" {
		if hc.Memory, err = units.RAMInBytes(o.Memory); err != nil {
			return nil, nil, nil, fmt.Errorf("options.memory %q: %w", o.Memory, err)
		}
	}
	if o.MemoryReservation != "" {
		if hc.MemoryReservation, err = units.RAMInBytes(o.MemoryReservation); err != nil {
			return nil, nil, nil, fmt.Errorf("options.memory_reservation %q: %w", o.MemoryReservation, err)
		}
	}
	if o.CPUs != "" {
		f, err := strconv.ParseFloat(o.CPUs, 64)
		if err != nil || f <= 0 {
			return nil, nil, nil, fmt.Errorf("options.cpus %q: want a positive number", o.CPUs)
		}
		hc.NanoCPUs = int64(f * 1e9)
	}
	if o.ShmSize != "" {
		if hc.ShmSize, err = units.RAMInBytes(o.ShmSize); err != nil {
			return nil, nil, nil, fmt.Errorf("options.shm_size %q: %w", o.ShmSize, err)
		}
	}
	if o.PidsLimit != 0 {
		v := o.PidsLimit
		hc.PidsLimit = &v
	}
	if o.Init {
		v := true
		hc.Init = &v
	}
	hc.RestartPolicy, err = restartPolicy(o.Restart)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, u := range o.Ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("options.ulimits %q: %w", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	if len(o.Publish) > 0 {
		exposed, bindings, err := nat.ParsePortSpecs(o.Publish)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("options.publish: %w", err)
		}
		cfg.ExposedPorts, hc.PortBindings = exposed, bindings
	}
	for _, t := range o.Tmpfs {
		p, opts, _ := strings.Cut(t, ":")
		if !path.IsAbs(p) {
			return nil, nil, nil, fmt.Errorf("options.tmpfs %q: want an absolute path", t)
		}
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[p] = opts
	}
	for _, v := range s.Volumes {
		if rel, ok := strings.CutPrefix(v.Source, planner.HomePrefix); ok {
			if p.Home == "" {
				return nil, nil, nil, fmt.Errorf("volume %s:%s: the SSH user's home folder is not known", v.Source, v.Target)
			}
			v.Source = path.Join(p.Home, rel)
			if !strings.HasPrefix(v.Source, p.Home+"/") {
				return nil, nil, nil, fmt.Errorf("volume %s:%s: the source leaves the home folder", v.Source, v.Target)
			}
		}
		if !path.IsAbs(v.Target) {
			return nil, nil, nil, fmt.Errorf("volume target %q: want an absolute path", v.Target)
		}
		if path.IsAbs(v.Source) {
			// A host path as a bind in HostConfig.Binds, which (unlike
			// Mounts) creates a missing source directory as `docker run -v`
			// does. Colons would change the meaning of the entry.
			if strings.ContainsAny(v.Source+v.Target, ":,") {
				return nil, nil, nil, fmt.Errorf("volume %s:%s: paths may not contain ':' or ','", v.Source, v.Target)
			}
			b := v.Source + ":" + v.Target
			if v.ReadOnly {
				b += ":ro"
			}
			hc.Binds = append(hc.Binds, b)
			continue
		}
		if !nameRE.MatchString(strings.ToLower(v.Source)) {
			return nil, nil, nil, fmt.Errorf("volume name %q", v.Source)
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	if s.Logging != nil && s.Logging.Driver != "" {
		hc.LogConfig = container.LogConfig{Type: s.Logging.Driver, Config: s.Logging.Options}
	} else if s.Logging != nil && len(s.Logging.Options) > 0 {
		hc.LogConfig = container.LogConfig{Config: s.Logging.Options}
	}
	switch o.Network {
	case "host", "none":
		// Off bosun's network: no aliases, and Docker ignores ports.
		hc.NetworkMode = container.NetworkMode(o.Network)
		return cfg, hc, &network.NetworkingConfig{}, nil
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		NetworkName: {Aliases: containerAliases(s)},
	}}
	return cfg, hc, nc, nil
}

// containerAliases are the names a container answers to on its networks:
// <service>-<role>, an accessory's service name, and options.network-alias.
func containerAliases(s *planner.Spec) []string {
	aliases := []string{s.Service + "-" + s.Role}
	if s.Role == planner.AccessoryRole {
		// Kamal names an accessory's container <service>-<accessory>, and
		// apps reach it by that name (Rails' "use <service>-db").
		aliases = append(aliases, s.Service)
	}
	for _, a := range s.Options.NetworkAliases {
		if !slices.Contains(aliases, a) {
			aliases = append(aliases, a)
		}
	}
	return aliases
}

// extraNetwork is the network a container joins besides bosun's
// (options.network), or "".
func extraNetwork(s *planner.Spec) string {
	switch n := s.Options.Network; n {
	case "", NetworkName, "host", "none":
		return ""
	default:
		return n
	}
}

func restartPolicy(s string) (container.RestartPolicy, error) {
	name, count, _ := strings.Cut(s, ":")
	switch name {
	case "":
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}, nil
	case "no", "always", "unless-stopped":
		if count != "" {
			break
		}
		return container.RestartPolicy{Name: container.RestartPolicyMode(name)}, nil
	case "on-failure":
		rp := container.RestartPolicy{Name: container.RestartPolicyOnFailure}
		if count != "" {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				break
			}
			rp.MaximumRetryCount = n
		}
		return rp, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("options.restart %q: want no, always, unless-stopped or on-failure[:N]", s)
}

// resolveEnv merges clear env with secret values looked up by name. A
// missing secret is an error naming the secret, never its value.
func resolveEnv(s *planner.Spec, secrets SecretSource) (map[string]string, error) {
	env := make(map[string]string, len(s.Env)+len(s.Secrets))
	for k, v := range s.Env {
		env[k] = v
	}
	for k, ref := range s.Secrets {
		if secrets == nil {
			return nil, fmt.Errorf("secret %s for env %s: no secrets are available", ref.Name, k)
		}
		v, ok := secrets.LookupSecret(ref.Name)
		if !ok {
			return nil, fmt.Errorf("secret %s for env %s is not set", ref.Name, k)
		}
		env[k] = v
	}
	return env, nil
}

// registryAuth encodes the login for ImagePull; "" when no credentials.
func registryAuth(r *planner.Registry, secrets SecretSource) (string, error) {
	if r == nil || (r.Username == "" && r.UsernameSecret == "" && r.PasswordSecret == "") {
		return "", nil
	}
	lookup := func(name string) (string, error) {
		if secrets == nil {
			return "", fmt.Errorf("registry secret %s: no secrets are available", name)
		}
		v, ok := secrets.LookupSecret(name)
		if !ok {
			return "", fmt.Errorf("registry secret %s is not set", name)
		}
		return v, nil
	}
	user := r.Username
	if r.UsernameSecret != "" {
		v, err := lookup(r.UsernameSecret)
		if err != nil {
			return "", err
		}
		user = v
	}
	var pass string
	if r.PasswordSecret != "" {
		v, err := lookup(r.PasswordSecret)
		if err != nil {
			return "", err
		}
		pass = v
	}
	server, _, _ := strings.Cut(r.Server, "/") // a registry path (host/team) is not part of the login
	return registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: pass, ServerAddress: server})
}

// pullImage pulls ref and reads the progress stream to its end, returning
// the error the daemon reports in it.
func pullImage(ctx context.Context, dc *client.Client, ref, auth string) error {
	rc, err := dc.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return err
	}
	defer rc.Close()
	return decodeProgress(rc)
}

// decodeProgress reads a Docker JSON progress stream (pull, load) to its
// end and returns the first error the daemon reports in it.
func decodeProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pollInterval backs off from 50ms to 500ms.
func pollInterval(i int) time.Duration {
	return min(time.Duration(i+1)*50*time.Millisecond, 500*time.Millisecond)
}

// ensureNetwork creates the bosun network when it is missing.
func ensureNetwork(ctx context.Context, dc *client.Client) error {
	_, err := dc.NetworkInspect(ctx, NetworkName, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if !errdefs.IsNotFound(err) {
		return err
	}
	_, err = dc.NetworkCreate(ctx, NetworkName, network.CreateOptions{Driver: "bridge", Labels: map[string]string{"bosun.managed": "true"}})
	if err != nil && errdefs.IsConflict(err) {
		return nil // created by a concurrent apply
	}
	return err
}

// listRole lists every container (running or not) bosun made for one role
// of one service on this host, newest first.
func listRole(ctx context.Context, dc *client.Client, service, role string) ([]container.Summary, error) {
	key := LabelService
	if service != "" {
		key += "=" + service
	}
	f := filters.NewArgs(filters.Arg("label", key))
	if role != "" {
		f.Add("label", LabelRole+"="+role)
	}
	cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Created > cs[j].Created })
	return cs, nil
}

// lastLogs returns the last n lines of a container's stdout and stderr.
func lastLogs(ctx context.Context, dc *client.Client, id string, n int) string {
	rc, err := dc.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	lr := &io.LimitedReader{R: rc, N: 64 << 10}
	_, _ = stdcopy.StdCopy(&out, &out, lr)
	logs := out.String()
	if lr.N == 0 {
		// Cut at the limit: the last line may be cut inside a secret value,
		// whose prefix redaction would not find. Drop it.
		logs = logs[:max(strings.LastIndexByte(logs, '\n'), 0)]
	}
	return strings.TrimRight(logs, "\n")
}

// pauseStandby makes a container that served until now the warm standby
// of its role (x-bosun.standby: paused): its restart policy set to "no"
// first, so that a restart of dockerd or the server never brings a second
// version up beside the serving one, then its processes frozen. Its memory
// stays in use; a revert unpauses it (unpauseStandby).
func pauseStandby(ctx context.Context, dc *client.Client, id string) error {
	if _, err := dc.ContainerUpdate(ctx, id, container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}}); err != nil {
		return fmt.Errorf("set restart policy of %s to no: %w", shortID(id), err)
	}
	if err := dc.ContainerPause(ctx, id); err != nil {
		return fmt.Errorf("pause %s: %w", shortID(id), err)
	}
	return nil
}

// unpauseStandby brings a paused standby back: its processes thawed, then
// the spec's restart policy restored.
func unpauseStandby(ctx context.Context, dc *client.Client, name string, spec *planner.Spec) error {
	if err := dc.ContainerUnpause(ctx, name); err != nil {
		return fmt.Errorf("unpause %s: %w", name, err)
	}
	return restoreRestart(ctx, dc, name, spec, nil)
}

// restoreRestart gives a container its spec's restart policy back (a
// standby's was set to "no" when it was paused, and stays so once it is
// stopped). With has set (the container's inspected policy), nothing is
// sent when it is the spec's already.
func restoreRestart(ctx context.Context, dc *client.Client, name string, spec *planner.Spec, has *container.RestartPolicy) error {
	want, err := restartPolicy(spec.Options.Restart)
	if err != nil {
		return err
	}
	if has != nil && *has == want {
		return nil
	}
	if _, err := dc.ContainerUpdate(ctx, name, container.UpdateConfig{RestartPolicy: want}); err != nil {
		return fmt.Errorf("restore restart policy of %s: %w", name, err)
	}
	return nil
}

// restartOf is an inspected container's restart policy, nil when unknown.
func restartOf(info container.InspectResponse) *container.RestartPolicy {
	if info.ContainerJSONBase == nil || info.HostConfig == nil {
		return nil
	}
	return &info.HostConfig.RestartPolicy
}

// isPaused reports whether an inspected container is paused.
func isPaused(info container.InspectResponse) bool {
	return info.ContainerJSONBase != nil && info.State != nil && info.State.Paused
}
