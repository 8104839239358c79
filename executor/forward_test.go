package executor

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// TestApply_LocalRegistry deploys an image from Kamal's local registry
// (registry.server: localhost:PORT): the registry listens on this machine's
// loopback only, so the server can pull it only through bosun's SSH remote
// forward; the forward is gone after the rollout. A local registry that is
// not there fails the rollout before any container is made.
func TestApply_LocalRegistry(t *testing.T) {
	en := newBedEnv(t, 1)
	s := en.bed.Servers[0]
	addr := testbed.LocalRegistry(t)
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	img, err := testbed.AppImage(t.Context(), "shop", "v1", testbed.AppOK)
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.PushImage(t.Context(), img, addr, "shop", "v1"); err != nil {
		t.Fatal(err)
	}
	reachable := func() bool {
		_, err := s.Run(t.Context(), "curl", "-sf", "--max-time", "5", "http://localhost:"+ps+"/v2/")
		return err == nil
	}
	if reachable() {
		t.Fatalf("the server reaches localhost:%s without a forward: the test proves nothing", ps)
	}

	spec := webSpec("localhost:" + ps + "/shop:v1")
	spec.Service = "shop"
	pol := planner.Service{LocalRegistryPort: port}
	en.mustApply(en.plan(spec, pol))
	if v := get(t, s.HTTPAddr); v != "v1" {
		t.Fatalf("proxy answers %s, want v1", v)
	}
	if out := s.Exec(t, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, "localhost:"+ps+"/shop:v1") {
		t.Errorf("the server has no image localhost:%s/shop:v1: %s", ps, out)
	}
	if reachable() {
		t.Errorf("localhost:%s still reaches the local registry after the rollout: the forward was left open", ps)
	}

	// Nothing listens on the port: the rollout fails at once, naming it,
	// and no container of the service is made.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, fps, _ := net.SplitHostPort(free.Addr().String())
	fport, _ := strconv.Atoi(fps)
	free.Close()
	other := webSpec("localhost:" + fps + "/other:v1")
	other.Service = "other"
	other.Proxy.Hosts = []string{"other.example.com"}
	_, err = en.apply(en.plan(other, planner.Service{LocalRegistryPort: fport}))
	if err == nil || !strings.Contains(err.Error(), "no registry listens on 127.0.0.1:"+fps) {
		t.Fatalf("apply with no local registry: %v; want it to say no registry listens on 127.0.0.1:%s", err, fps)
	}
	if out := strings.TrimSpace(s.Exec(t, "docker", "ps", "-aq", "--filter", "label="+LabelService+"=other")); out != "" {
		t.Errorf("containers of other were made: %s", out)
	}
}
