package executor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// Kamal's names and labels on a server (docs/migrating-from-kamal.md):
// its proxy is the container kamal-proxy, whose image carries the label
// org.opencontainers.image.title=kamal-proxy; an app container is named
// <service>-<role>[-<destination>]-<version> and labelled service, role
// and destination; an accessory container is named <service>-<accessory>
// and labelled service with that same name.
const (
	KamalProxyContainer = "kamal-proxy"
	labelImageTitle     = "org.opencontainers.image.title"
	kamalLabelService   = "service"
	kamalLabelRole      = "role"
	kamalLabelDest      = "destination"
)

// kamalContainer is a container Kamal made, found by its name and labels.
type kamalContainer struct {
	ID, Name, Image, State     string
	Service, Role, Destination string
	HasRole                    bool // an app role's container; else an accessory's
}

func (k kamalContainer) running() bool { return k.State == "running" || k.State == "restarting" }

func (k kamalContainer) String() string { return k.Name + " (" + k.State + ")" }

// kamalHost is what Kamal left on one server, surveyed before the
// rollouts, and what the takeover does there.
type kamalHost struct {
	host  string
	proxy *kamalContainer // nil: no kamal-proxy
	apps  []kamalContainer
	// takeover: kamal-proxy runs and the plan routes to this host. Its
	// bosun-proxy then starts without ports; new containers are
	// health-checked and routed there while Kamal serves, and
	// finishTakeovers moves the ports once every service is rolled out.
	takeover bool

	mu       sync.Mutex
	deferred []string         // running Kamal containers to stop once bosun-proxy holds the ports
	staged   []planner.Change // targets routed behind the unpublished proxy
}

// match returns Kamal's containers of a target: an app role's with the
// plan's destination, or an accessory's (bosun's accessory services are
// named as Kamal's accessory containers).
func (kh *kamalHost) match(ch planner.Change, dest string) []kamalContainer {
	if kh == nil {
		return nil
	}
	var out []kamalContainer
	for _, k := range kh.apps {
		if k.Service != ch.Service {
			continue
		}
		if ch.Role == planner.AccessoryRole {
			if !k.HasRole {
				out = append(out, k)
			}
			continue
		}
		if k.HasRole && k.Role == ch.Role && k.Destination == dest {
			out = append(out, k)
		}
	}
	return out
}

// isKamalProxy reports whether a container named kamal-proxy runs Kamal's
// proxy image: its image's title label, or an image repository named
// kamal-proxy (basecamp/kamal-proxy:v0.9.2).
func isKamalProxy(labels map[string]string, image string) bool {
	if labels[labelImageTitle] == "kamal-proxy" {
		return true
	}
	repo := image
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo == "kamal-proxy" || strings.HasSuffix(repo, "/kamal-proxy")
}

// kamalOf reads Kamal's labels off a container; ok is false when the
// container is not shaped like one of Kamal's app or accessory containers.
func kamalOf(c container.Summary) (kamalContainer, bool) {
	name := strings.TrimPrefix(firstName(c.Names), "/")
	svc := c.Labels[kamalLabelService]
	if svc == "" || c.Labels[LabelService] != "" {
		return kamalContainer{}, false
	}
	k := kamalContainer{ID: c.ID, Name: name, Image: c.Image, State: c.State, Service: svc}
	role, hasRole := c.Labels[kamalLabelRole]
	if hasRole && role != "" {
		dest, hasDest := c.Labels[kamalLabelDest]
		prefix := svc + "-" + role + "-"
		if dest != "" {
			prefix += dest + "-"
		}
		if !hasDest || !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
			return kamalContainer{}, false
		}
		k.Role, k.Destination, k.HasRole = role, dest, true
		return k, true
	}
	if name != svc {
		return kamalContainer{}, false
	}
	return k, true
}

// takeovers finds, per host and once per Apply, what Kamal left there
// (surveyHost), on the first target a rollout takes to the host, after the
// service's lock and before anything on the host changes. Hosts are
// surveyed where the plan creates a target, and every host of the plan
// with RemoveKamal (those no rollout touched at the end, in finish).
type takeovers struct {
	e      *Executor
	plan   *planner.Plan
	opts   ApplyOpts
	routes map[string]bool // host -> the plan routes to it (a proxied create or update)
	survey map[string]bool // hosts to survey

	mu    sync.Mutex
	hosts map[string]*surveyed
}

type surveyed struct {
	once sync.Once
	kh   *kamalHost // nil: Kamal left nothing there
	err  error
}

func (e *Executor) newTakeovers(plan *planner.Plan, opts ApplyOpts) *takeovers {
	tk := &takeovers{e: e, plan: plan, opts: opts, routes: map[string]bool{}, survey: map[string]bool{}, hosts: map[string]*surveyed{}}
	for _, ch := range plan.Changes {
		if _, ok := plan.Hosts[ch.Host]; !ok || ch.Action == planner.ActionRemove {
			continue
		}
		if ch.Action == planner.ActionCreate || opts.RemoveKamal {
			tk.survey[ch.Host] = true
		}
		if (ch.Action == planner.ActionCreate || ch.Action == planner.ActionUpdate) && ch.Desired != nil && ch.Desired.Proxy != nil {
			tk.routes[ch.Host] = true
		}
	}
	return tk
}

// get surveys a host once (hc connected) and returns what Kamal left
// there, or why a takeover there is refused.
func (tk *takeovers) get(ctx context.Context, host string, hc *hostConn) (*kamalHost, error) {
	if tk == nil || !tk.survey[host] {
		return nil, nil
	}
	tk.mu.Lock()
	sv := tk.hosts[host]
	if sv == nil {
		sv = &surveyed{}
		tk.hosts[host] = sv
	}
	tk.mu.Unlock()
	sv.once.Do(func() {
		sv.kh, sv.err = tk.e.surveyHost(ctx, tk.plan, host, hc, tk.routes[host])
		if sv.kh != nil {
			tk.e.announce(ctx, sv.kh, tk.opts)
		}
	})
	return sv.kh, sv.err
}

// peek returns a host's survey if it was made and found something.
func (tk *takeovers) peek(host string) *kamalHost {
	if tk == nil {
		return nil
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if sv := tk.hosts[host]; sv != nil {
		return sv.kh
	}
	return nil
}

// surveyHost looks at what Kamal left on a host, by names and labels
// only; nil when it left nothing. It refuses a takeover whose outcome is
// unclear: a container named kamal-proxy that is not Kamal's proxy,
// another container on the proxy's ports, or Kamal apps behind kamal-proxy
// that this plan does not deploy there (moving the ports would cut them
// off).
func (e *Executor) surveyHost(ctx context.Context, plan *planner.Plan, host string, hc *hostConn, routes bool) (*kamalHost, error) {
	cs, err := hc.docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("%s: list containers: %w", host, err)
	}
	httpPort, httpsPort := e.proxyPorts()
	kh := &kamalHost{host: host}
	var holders []string
	for _, c := range cs {
		name := strings.TrimPrefix(firstName(c.Names), "/")
		if name == ProxyContainer || c.Labels[LabelService] != "" {
			continue // bosun's own
		}
		if name == KamalProxyContainer {
			if !isKamalProxy(c.Labels, c.Image) {
				return nil, fmt.Errorf("%s: a container named %s runs image %s, which is not Kamal's proxy (no label %s=kamal-proxy): bosun cannot tell whether to take over from it; rename or remove it, then apply again",
					host, KamalProxyContainer, c.Image, labelImageTitle)
			}
			kh.proxy = &kamalContainer{ID: c.ID, Name: name, Image: c.Image, State: c.State}
			continue
		}
		if k, ok := kamalOf(c); ok {
			kh.apps = append(kh.apps, k)
		}
		if c.State == "running" {
			for _, p := range c.Ports {
				if p.PublicPort != 0 && (int(p.PublicPort) == httpPort || int(p.PublicPort) == httpsPort) && p.Type == "tcp" {
					holders = append(holders, fmt.Sprintf("%s (port %d)", name, p.PublicPort))
					break
				}
			}
		}
	}
	sort.Slice(kh.apps, func(i, j int) bool { return kh.apps[i].Name < kh.apps[j].Name })
	if kh.proxy == nil && len(kh.apps) == 0 {
		return nil, nil
	}
	if routes && len(holders) > 0 {
		return nil, fmt.Errorf("%s: %s published by %s, which is neither kamal-proxy nor bosun-proxy: bosun-proxy could not take the ports; stop it first",
			host, portsText(httpPort, httpsPort), strings.Join(holders, ", "))
	}
	kh.takeover = routes && kh.proxy != nil && kh.proxy.running()
	if kh.takeover {
		covered := map[planner.Target]bool{}
		for _, ch := range plan.Changes {
			if ch.Host == host && ch.Action != planner.ActionRemove {
				covered[ch.Target] = true
			}
		}
		var cut []string
		for _, k := range kh.apps {
			if !k.running() || !k.HasRole {
				continue
			}
			if k.Destination != plan.Destination || !covered[planner.Target{Service: k.Service, Role: k.Role, Host: host}] {
				what := k.Service + "/" + k.Role
				if k.Destination != "" {
					what += " (destination " + k.Destination + ")"
				}
				cut = append(cut, what+" in "+k.Name)
			}
		}
		if len(cut) > 0 {
			return nil, fmt.Errorf("%s: takeover from Kamal refused: kamal-proxy there also serves %s, which this plan does not deploy to %s, and moving ports 80/443 to bosun-proxy would cut it off. "+
				"Add those services to the config repository (for a destination: bosun apply --destination), or stop them with Kamal first (kamal app stop)",
				host, strings.Join(cut, ", "), host)
		}
	}
	return kh, nil
}

func portsText(http, https int) string { return fmt.Sprintf("port %d or %d is", http, https) }

// proxyPorts are the server ports bosun-proxy publishes.
func (e *Executor) proxyPorts() (int, int) {
	httpPort, httpsPort := e.cfg.ProxyHTTPPort, e.cfg.ProxyHTTPSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if httpsPort == 0 {
		httpsPort = 443
	}
	return httpPort, httpsPort
}

// Takeover is what taking a server over from Kamal found and did.
type Takeover struct {
	Host       string
	Found      []string      // kamal-proxy and Kamal's containers, each "name (state)"
	PortsMoved bool          // bosun-proxy took the ports from kamal-proxy
	Switch     time.Duration // from stopping kamal-proxy to Docker publishing bosun-proxy's ports
	ProxyStop  time.Time     // when kamal-proxy was told to stop (its listeners close then)
	Stopped    []string      // Kamal's containers stopped (and kept)
	Removed    []string      // removed (ApplyOpts.RemoveKamal)
	Kept       []string      // left as they are, each with why
	Err        error
}

func (kh *kamalHost) found() []string {
	var out []string
	if kh.proxy != nil {
		out = append(out, kh.proxy.Name+" ("+kh.proxy.Image+", "+kh.proxy.State+")")
	}
	for _, k := range kh.apps {
		out = append(out, k.String())
	}
	return out
}

// hostEvent reports a host-wide step (no service) to the progress
// callback and the log.
func (e *Executor) hostEvent(ctx context.Context, host string, st EventStatus, msg string) {
	ev := Event{Time: time.Now().UTC(), Host: host, Step: StepTakeover, Status: st, Message: msg}
	e.emitMu.Lock()
	if e.cfg.Progress != nil {
		e.cfg.Progress(ev)
	}
	e.emitMu.Unlock()
	e.log.InfoContext(ctx, "takeover", "host", host, "status", string(st), "msg", msg)
}

// announce says what the survey found on a host and what will happen to
// it.
func (e *Executor) announce(ctx context.Context, kh *kamalHost, opts ApplyOpts) {
	then := "Kamal's containers of the services deployed here are stopped once bosun's serve, and kept"
	if kh.takeover {
		then = "new containers are started and health-checked behind bosun-proxy without ports, then kamal-proxy is stopped and bosun-proxy takes its ports; " + then
	}
	if opts.RemoveKamal {
		then += ", then removed (--remove-kamal)"
	} else {
		then += " (bosun apply --remove-kamal removes them)"
	}
	e.hostEvent(ctx, kh.host, StatusStarted, "found "+strings.Join(kh.found(), ", ")+": "+then)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// finishTakeovers runs once every service is rolled out. On each host in
// takeover it moves the ports from kamal-proxy to bosun-proxy, unless a
// service with changes there failed (then kamal-proxy keeps serving, and
// the targets routed behind the unpublished proxy are forgotten, so that
// the next apply deploys them again); then it stops Kamal's containers
// that the move left serving nothing. With RemoveKamal it removes
// kamal-proxy and Kamal's stopped containers of the plan's targets.
func (tk *takeovers) finish(ctx context.Context, res *Result) error {
	e, plan, opts := tk.e, tk.plan, tk.opts
	if opts.RemoveKamal {
		// Hosts no rollout touched (nothing to change there).
		for _, h := range sortedKeys(tk.survey) {
			hc, err := e.host(plan.Hosts[h])
			if err == nil {
				err = hc.connect(ctx)
			}
			if err == nil {
				_, err = tk.get(ctx, h, hc)
			}
			if err != nil {
				tk.mu.Lock()
				if tk.hosts[h] == nil {
					tk.hosts[h] = &surveyed{err: err}
					tk.hosts[h].once.Do(func() {})
				}
				tk.mu.Unlock()
			}
		}
	}
	failed := map[string]error{}
	for i := range res.Services {
		if sr := &res.Services[i]; sr.Err != nil {
			failed[sr.Service] = sr.Err
		}
	}
	var errs []error
	bg := context.WithoutCancel(ctx)
	tk.mu.Lock()
	hosts := map[string]*surveyed{}
	for h, sv := range tk.hosts {
		hosts[h] = sv
	}
	tk.mu.Unlock()
	for _, h := range sortedKeys(hosts) {
		sv := hosts[h]
		if sv.kh == nil && sv.err == nil {
			continue
		}
		if sv.kh == nil {
			// The refusal or connection failure failed the host's
			// rollouts already; with RemoveKamal it is said here.
			if opts.RemoveKamal {
				res.Takeovers = append(res.Takeovers, Takeover{Host: h, Err: sv.err})
				errs = append(errs, fmt.Errorf("takeover of %s: %w", h, sv.err))
			}
			continue
		}
		kh := sv.kh
		t := Takeover{Host: h, Found: kh.found()}
		hc, err := e.host(plan.Hosts[h])
		if err != nil {
			t.Err = err
		}
		if t.Err == nil && kh.takeover {
			t.Err = e.moveOrForget(ctx, plan, kh, hc, failed, res, &t)
		}
		if t.Err == nil && opts.RemoveKamal {
			e.removeKamal(bg, plan, kh, hc, failed, &t)
		} else if t.Err == nil && kh.proxy != nil && !kh.takeover && kh.proxy.running() {
			t.Kept = append(t.Kept, KamalProxyContainer+": still running (this plan routes nothing to "+h+")")
		}
		if t.Err != nil {
			errs = append(errs, fmt.Errorf("takeover of %s: %w", h, t.Err))
			e.hostEvent(ctx, h, StatusFailed, t.Err.Error())
		} else {
			e.hostEvent(ctx, h, StatusOK, t.summary())
		}
		res.Takeovers = append(res.Takeovers, t)
	}
	return errors.Join(errs...)
}

func (t *Takeover) summary() string {
	var parts []string
	if t.PortsMoved {
		parts = append(parts, fmt.Sprintf("bosun-proxy took the ports from kamal-proxy in %s", t.Switch.Round(time.Millisecond)))
	}
	if len(t.Stopped) > 0 {
		parts = append(parts, "stopped and kept "+strings.Join(t.Stopped, ", "))
	}
	if len(t.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(t.Removed, ", "))
	}
	if len(t.Kept) > 0 {
		parts = append(parts, "kept "+strings.Join(t.Kept, "; "))
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, "; ")
}

// moveOrForget finishes a host in takeover: the port move when every
// service with changes there rolled out, else kamal-proxy keeps serving.
func (e *Executor) moveOrForget(ctx context.Context, plan *planner.Plan, kh *kamalHost, hc *hostConn, failed map[string]error, res *Result, t *Takeover) error {
	bg := context.WithoutCancel(ctx)
	kh.mu.Lock()
	staged := append([]planner.Change(nil), kh.staged...)
	deferred := append([]string(nil), kh.deferred...)
	kh.mu.Unlock()
	var why error
	for _, ch := range plan.Changes {
		if ch.Host == kh.host && failed[ch.Service] != nil {
			why = fmt.Errorf("service %s failed there", ch.Service)
			break
		}
	}
	if why == nil && ctx.Err() != nil {
		why = ctx.Err()
	}
	if why == nil && len(staged) == 0 {
		why = errors.New("no proxied role was routed behind bosun-proxy")
	}
	if why == nil {
		at, d, err := e.moveProxyPorts(ctx, hc, kh.proxy)
		if err == nil {
			t.PortsMoved, t.Switch, t.ProxyStop = true, d, at
			for _, id := range deferred {
				if err := hc.docker.ContainerStop(bg, id, container.StopOptions{}); err != nil && !isNotFound(err) {
					t.Kept = append(t.Kept, fmt.Sprintf("%s: stop failed: %v", kh.nameOf(id), err))
					continue
				}
				t.Stopped = append(t.Stopped, kh.nameOf(id))
			}
			return nil
		}
		why = err
	}
	// kamal-proxy still serves: what was routed behind bosun-proxy is not
	// deployed, and the next apply must deploy it again.
	if st := e.cfg.Store; st != nil {
		for _, ch := range staged {
			sctx, cancel := state.Detached(ctx)
			err := st.DeleteApplied(sctx, plan.Repo, ch.Service, ch.Role, ch.Host)
			cancel()
			if err != nil {
				e.log.ErrorContext(ctx, "forget a target kamal-proxy still serves", "service", ch.Service, "host", ch.Host, "err", err)
			}
		}
	}
	err := fmt.Errorf("ports not moved from kamal-proxy (%w): Kamal still serves %s, and bosun's new containers there get no traffic; the next bosun apply deploys them again", why, kh.host)
	for i := range res.Services {
		sr := &res.Services[i]
		for _, ch := range staged {
			if ch.Service == sr.Service && sr.Err == nil {
				sr.Status, sr.Err = state.StatusFailed, err
				break
			}
		}
	}
	return err
}

func (kh *kamalHost) nameOf(id string) string {
	for _, k := range kh.apps {
		if k.ID == id {
			return k.Name
		}
	}
	return shortID(id)
}

// moveProxyPorts gives bosun-proxy the ports kamal-proxy holds, with as
// little as possible between kamal-proxy closing its listeners and
// bosun-proxy answering (the listener gap):
//
//  1. Before the gap, the unpublished bosun-proxy is replaced by one created
//     with the ports but attached only to TakeoverNetwork, an internal
//     network, where Docker publishes nothing (it has no gateway), so it
//     starts while kamal-proxy holds the ports. bosun's running containers
//     join that network too, so its health checks of its routes (loaded
//     from its volume) pass, and its control API is awaited.
//  2. The gap: kamal-proxy is stopped (kamalProxyStopTimeout for in-flight
//     requests), and bosun-proxy is connected to the bosun network, which
//     gives it a gateway: Docker publishes its ports then. No container
//     starts in the gap.
//
// When Docker does not publish the ports on the connect, bosun-proxy is
// made again on the bosun network and started (the slower way); if it does
// not come up, kamal-proxy is started again. It returns when kamal-proxy was
// told to stop and the time from then to bosun-proxy serving the ports.
func (e *Executor) moveProxyPorts(ctx context.Context, hc *hostConn, kp *kamalContainer) (time.Time, time.Duration, error) {
	var zero time.Time
	bg := context.WithoutCancel(ctx)
	dc := hc.docker
	src, err := e.proxySource(ctx, hc)
	if err != nil {
		return zero, 0, err
	}
	restage := func() {
		_ = dc.ContainerRemove(bg, ProxyContainer, container.RemoveOptions{Force: true})
		_ = e.createProxy(bg, dc, src.ref, false, true)
	}
	prep := time.Now()
	if err := e.joinTakeoverNetwork(bg, dc); err != nil {
		return zero, 0, err
	}
	if err := dc.ContainerRemove(bg, ProxyContainer, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		return zero, 0, fmt.Errorf("remove the unpublished %s: %w", ProxyContainer, err)
	}
	if err := e.createProxyOn(bg, dc, src.ref, TakeoverNetwork, true, true); err != nil {
		restage()
		return zero, 0, err
	}
	pc, err := e.proxyClient(bg, hc, 0)
	if err != nil {
		restage()
		return zero, 0, fmt.Errorf("%s with the ports, before the switch: %w", ProxyContainer, err)
	}
	stopWait := kamalProxyStopTimeout
	start := time.Now()
	if err := dc.ContainerStop(bg, kp.ID, container.StopOptions{Timeout: &stopWait}); err != nil {
		restage()
		return zero, 0, fmt.Errorf("stop %s: %w", KamalProxyContainer, err)
	}
	stopped := time.Now()
	how := "network connect"
	err = dc.NetworkConnect(bg, NetworkName, ProxyContainer, &network.EndpointSettings{})
	if err == nil {
		err = proxyPublishes(bg, dc)
	}
	if err != nil {
		// The slower way: a container start with the ports.
		e.log.WarnContext(ctx, "ports not published on network connect; starting bosun-proxy again on the bosun network", "host", hc.name, "err", err)
		how = "container start"
		_ = dc.ContainerRemove(bg, ProxyContainer, container.RemoveOptions{Force: true})
		if err = e.createProxy(bg, dc, src.ref, true, true); err == nil {
			pc, err = e.proxyClient(bg, hc, 0)
		}
		if err != nil {
			_ = dc.ContainerStop(bg, ProxyContainer, container.StopOptions{})
			_ = dc.ContainerStart(bg, kp.ID, container.StartOptions{})
			restage()
			return zero, 0, fmt.Errorf("%s with the ports: %w", ProxyContainer, err)
		}
	}
	d := time.Since(start)
	e.log.DebugContext(ctx, "proxy ports moved", "host", hc.name, "how", how, "prepare", start.Sub(prep), "kamal_stop", stopped.Sub(start), "bosun_ports", time.Since(stopped))
	hc.proxyMu.Lock()
	hc.proxy = &proxyOnHost{client: pc}
	hc.proxyMu.Unlock()
	return start, d, nil
}

// kamalProxyStopTimeout is how long kamal-proxy has to finish in-flight
// requests when the ports move (docker stop -t): its listeners are closed
// all that time, so it bounds the listener gap.
const kamalProxyStopTimeout = 3

// TakeoverNetwork is the internal Docker network bosun-proxy starts on
// before it takes kamal-proxy's ports (moveProxyPorts). It stays: the
// proxy and the containers of the takeover remain attached to it until they
// are replaced.
const TakeoverNetwork = "bosun-takeover"

// joinTakeoverNetwork creates TakeoverNetwork (internal) when missing and
// connects bosun's running containers to it, so that a proxy attached only
// there reaches them by name.
func (e *Executor) joinTakeoverNetwork(ctx context.Context, dc *client.Client) error {
	if _, err := dc.NetworkInspect(ctx, TakeoverNetwork, network.InspectOptions{}); errdefs.IsNotFound(err) {
		_, err = dc.NetworkCreate(ctx, TakeoverNetwork, network.CreateOptions{Driver: "bridge", Internal: true, Labels: map[string]string{"bosun.managed": "true"}})
		if err != nil && !errdefs.IsConflict(err) {
			return fmt.Errorf("create network %s: %w", TakeoverNetwork, err)
		}
	} else if err != nil {
		return fmt.Errorf("inspect network %s: %w", TakeoverNetwork, err)
	}
	ctrs, err := dc.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelService), filters.Arg("network", NetworkName))})
	if err != nil {
		return fmt.Errorf("list bosun's containers: %w", err)
	}
	for _, c := range ctrs {
		if c.NetworkSettings != nil {
			if _, ok := c.NetworkSettings.Networks[TakeoverNetwork]; ok {
				continue
			}
		}
		if err := dc.NetworkConnect(ctx, TakeoverNetwork, c.ID, &network.EndpointSettings{}); err != nil && !errdefs.IsPermissionDenied(err) {
			return fmt.Errorf("connect %s to network %s: %w", strings.TrimPrefix(firstName(c.Names), "/"), TakeoverNetwork, err)
		}
	}
	return nil
}

// proxyPublishes checks that Docker published bosun-proxy's ports.
func proxyPublishes(ctx context.Context, dc *client.Client) error {
	info, err := dc.ContainerInspect(ctx, ProxyContainer)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", ProxyContainer, err)
	}
	if info.NetworkSettings == nil || len(info.NetworkSettings.Ports["80/tcp"]) == 0 || len(info.NetworkSettings.Ports["443/tcp"]) == 0 {
		return errors.New("docker did not publish its ports on network connect")
	}
	return nil
}

// removeKamal removes kamal-proxy (once it serves nothing) and Kamal's
// stopped containers of the plan's targets on the host, except those of
// services that failed. Kamal's data directories, volumes and network stay.
func (e *Executor) removeKamal(ctx context.Context, plan *planner.Plan, kh *kamalHost, hc *hostConn, failed map[string]error, t *Takeover) {
	dc := hc.docker
	keep := func(what, why string) { t.Kept = append(t.Kept, what+": "+why) }
	for _, ch := range plan.Changes {
		if ch.Host != kh.host || ch.Action == planner.ActionRemove {
			continue
		}
		for _, k := range kh.match(ch, plan.Destination) {
			if failed[ch.Service] != nil {
				keep(k.Name, "service "+ch.Service+" failed")
				continue
			}
			info, err := dc.ContainerInspect(ctx, k.ID)
			if isNotFound(err) {
				continue
			}
			if err == nil && info.State != nil && info.State.Running {
				keep(k.Name, "still running")
				continue
			}
			if err := dc.ContainerRemove(ctx, k.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
				keep(k.Name, "remove failed: "+err.Error())
				continue
			}
			t.Removed = append(t.Removed, k.Name)
		}
	}
	if kh.proxy == nil {
		return
	}
	info, err := dc.ContainerInspect(ctx, kh.proxy.ID)
	switch {
	case isNotFound(err):
	case err == nil && info.State != nil && info.State.Running:
		keep(KamalProxyContainer, "still running (this plan routes nothing to "+kh.host+")")
	default:
		if err := dc.ContainerRemove(ctx, kh.proxy.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
			keep(KamalProxyContainer, "remove failed: "+err.Error())
			return
		}
		t.Removed = append(t.Removed, KamalProxyContainer)
	}
}
