package executor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bosunhq/bosun/internal/release"
	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/proxy"
)

// TestApply_ProxyWhateverTheBuild: the proxy on a server does not depend
// on how the local bosun was built. A bosun built with cgo (dynamically
// linked) or for another architecture deploys through the published proxy
// image of its release version; a development build that has none fails
// at once, before it changes anything on a server, naming the fix.
func TestApply_ProxyWhateverTheBuild(t *testing.T) {
	testbed.RequireDocker(t)
	en := newBedEnv(t, 3)
	s1, s2, s3 := en.bed.Servers[0], en.bed.Servers[1], en.bed.Servers[2]
	cgoBin := testbed.BuildBosun(t, "CGO_ENABLED=1")
	armBin := testbed.BuildBosun(t, "GOARCH=arm64")
	spec := webSpec(en.bed.PushApp(t, "web", "v1", testbed.AppOK))
	pol := planner.Service{RetainContainers: 3}

	// The test checks the premise: this is the binary the issue is about.
	if out := s1.Exec(t, "uname", "-m"); strings.TrimSpace(out) != "x86_64" {
		t.Skipf("servers are %s; the test expects amd64 servers", out)
	}

	for _, c := range []struct{ what, bin, want string }{
		{"cgo", cgoBin, "dynamically linked"},
		{"linux/arm64", armBin, "built for linux/arm64, the server is linux/amd64"},
	} {
		t.Run("a devel build with a "+c.what+" binary fails at once and leaves the server untouched", func(t *testing.T) {
			ex := en.newExecutor(func(cfg *Config) { cfg.ProxyBinary, cfg.Version = c.bin, "devel" })
			start := time.Now()
			_, err := ex.Apply(t.Context(), en.plan(spec, pol, s3.Name), ApplyOpts{})
			took := time.Since(start)
			if !errors.Is(err, ErrNoProxyImage) {
				t.Fatalf("err = %v, want ErrNoProxyImage", err)
			}
			for _, want := range []string{c.want, "CGO_ENABLED=0 GOOS=linux GOARCH=amd64", "BOSUN_PROXY_IMAGE"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if took > 10*time.Second {
				t.Errorf("failing took %s, want under 10 s", took)
			}
			if out := s3.Exec(t, "docker", "ps", "-aq"); strings.TrimSpace(out) != "" {
				t.Errorf("containers made on %s: %s", s3.Name, out)
			}
			if out, _ := s3.Run(t.Context(), "docker", "network", "ls", "-q", "--filter", "name=^"+NetworkName+"$"); strings.TrimSpace(out) != "" {
				t.Errorf("network %s made on %s", NetworkName, s3.Name)
			}
		})
	}

	// The published image, as `make release` writes and pushes it: an OCI
	// layout of the proxy index, pushed to the bed's registry.
	const pubVersion = "v9.9.9"
	dir := t.TempDir()
	idx, err := proxy.Index(map[string]string{"amd64": testbed.BosunBinary(t), "arm64": armBin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layout.Write(dir, idx); err != nil {
		t.Fatal(err)
	}
	if err := release.Push(t.Context(), dir, en.bed.RegistryPush+"/bosun-proxy:"+pubVersion, name.Insecure); err != nil {
		t.Fatal(err)
	}
	published := en.bed.Registry + "/bosun-proxy:" + pubVersion

	for _, c := range []struct {
		what, bin string
		s         *testbed.Server
	}{{"cgo", cgoBin, s1}, {"linux/arm64", armBin, s2}} {
		t.Run("a release built with a "+c.what+" binary deploys through the published image", func(t *testing.T) {
			ex := en.newExecutor(func(cfg *Config) {
				cfg.ProxyBinary, cfg.Version, cfg.ProxyRepository = c.bin, pubVersion, en.bed.Registry+"/bosun-proxy"
			})
			if _, err := ex.Apply(t.Context(), en.plan(spec, pol, c.s.Name), ApplyOpts{}); err != nil {
				t.Fatalf("apply: %v\n%s", err, en.out.String())
			}
			if img := strings.TrimSpace(c.s.Exec(t, "docker", "inspect", "--format", "{{.Config.Image}}", ProxyContainer)); img != published {
				t.Errorf("proxy on %s runs %s, want %s", c.s.Name, img, published)
			}
			if v := get(t, c.s.HTTPAddr); v != "v1" {
				t.Errorf("%s serves %q, want v1", c.s.Name, v)
			}
		})
	}

	t.Run("a static linux/amd64 binary is used as it is, tagged by its build", func(t *testing.T) {
		bin := testbed.BosunBinary(t)
		mk := func() *Executor {
			return en.newExecutor(func(cfg *Config) { cfg.ProxyBinary, cfg.Version = bin, pubVersion })
		}
		first := mk()
		if _, err := first.Apply(t.Context(), en.plan(webSpec(en.bed.PushApp(t, "web", "v2", testbed.AppOK)), pol, s1.Name), ApplyOpts{}); err != nil {
			t.Fatal(err)
		}
		img := strings.TrimSpace(s1.Exec(t, "docker", "inspect", "--format", "{{.Config.Image}}", ProxyContainer))
		if !strings.HasPrefix(img, proxyImageRepo+":") || img == published {
			t.Errorf("proxy on %s runs %s, want the image of the local binary", s1.Name, img)
		}
		// A second run of the same binary (a new CLI invocation) finds
		// the image on the server by its tag and builds nothing.
		second := mk()
		if _, err := second.Apply(t.Context(), en.plan(webSpec(en.bed.PushApp(t, "web", "v3", testbed.AppOK)), pol, s1.Name), ApplyOpts{}); err != nil {
			t.Fatal(err)
		}
		if second.proxyImg.img != nil {
			t.Errorf("the second executor built the proxy image although %s had it", s1.Name)
		}
		if v := get(t, s1.HTTPAddr); v != "v3" {
			t.Errorf("%s serves %q, want v3", s1.Name, v)
		}
	})
}

// TestApply_ProxyThatCannotStartFailsAtOnce: a proxy container that exits
// at start fails the step with its log lines, instead of a wait for the
// control token that ends at a timeout.
func TestApply_ProxyThatCannotStartFailsAtOnce(t *testing.T) {
	testbed.RequireDocker(t)
	en := newBedEnv(t, 1)
	s1 := en.bed.Servers[0]
	broken := en.bed.PushApp(t, "broken-proxy", "v1", testbed.AppCrash)
	ex := en.newExecutor(func(cfg *Config) { cfg.ProxyImage = broken })
	_, err := ex.Apply(t.Context(), en.plan(webSpec(en.bed.PushApp(t, "web", "v1", testbed.AppOK)), planner.Service{}), ApplyOpts{})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepProxy || se.Host != s1.Name {
		t.Fatalf("err = %v, want a proxy StepError on %s", err, s1.Name)
	}
	var down *proxyDownError
	if !errors.As(err, &down) {
		t.Errorf("err = %v, want the proxy container's exit", err)
	}
	if !strings.Contains(se.Logs, "crashing at start") || !strings.Contains(err.Error(), "crashing at start") {
		t.Errorf("error lacks the proxy's log lines: %v (logs %q)", err, se.Logs)
	}
}

// TestApply_ProxyControlNotOnTheNetwork: the proxy's control API is a unix
// socket on the server, reached over SSH: a container on the bosun network
// cannot connect to it, while one given the socket can.
func TestApply_ProxyControlNotOnTheNetwork(t *testing.T) {
	testbed.RequireDocker(t)
	en := newBedEnv(t, 1)
	s1 := en.bed.Servers[0]
	en.mustApply(en.plan(webSpec(en.bed.PushApp(t, "web", "v1", testbed.AppOK)), planner.Service{}))
	img := strings.TrimSpace(s1.Exec(t, "docker", "inspect", "--format", "{{.Config.Image}}", ProxyContainer))
	// bosun's own client in the proxy image, run as another container.
	client := func(args ...string) (string, error) {
		return s1.Run(t.Context(), append([]string{"docker", "run", "--rm", "--entrypoint", "/bosun", "-e", "BOSUN_PROXY_TOKEN=a-wrong-token"}, args...)...)
	}
	for addr, want := range map[string]string{
		ProxyContainer + ":7080": "connection refused", // no control port
		ProxyContainer + ":80":   "404",                // the HTTP port has no control API
	} {
		out, err := client("--network", NetworkName, img, "proxy", "list", "--control", addr)
		if err != nil {
			out += err.Error() // Run's error holds the command's output
		}
		if err == nil || !strings.Contains(out, want) || strings.Contains(out, "401") {
			t.Errorf("a container on the %s network calling a control API at %s: err %v, output %s; want %q", NetworkName, addr, err, out, want)
		}
	}
	// The same client with the socket mounted gets an answer (401: the
	// token is wrong), so the check above can tell reachable from not.
	out, err := client("--network", "none", "-v", proxy.ControlSocketDir+":"+proxy.ControlSocketDir, img, "proxy", "list", "--control", "unix:"+proxy.ControlSocket)
	if err != nil {
		out += err.Error()
	}
	if err == nil || !strings.Contains(out, "401") {
		t.Errorf("through the socket: err %v, output %s; want a 401 answer", err, out)
	}
}
