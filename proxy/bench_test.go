package proxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkProxy measures one small GET through the proxy on kept-alive
// connections, with the access log on (to io.Discard): the request path's
// cost and allocations.
func BenchmarkProxy(b *testing.B) {
	h := startProxy(b, Config{AccessLog: io.Discard})
	mustDeploy(b, h, deployReq("web", newBackend(b, "A")))
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "http://" + h.httpAddr + "/"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkTableMatch measures route lookup in a table of 100 services.
func BenchmarkTableMatch(b *testing.B) {
	services := map[string]*service{}
	for i := range 100 {
		name := "svc" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		req := DeployRequest{Service: name, Target: "t:1", Hosts: []string{name + ".example.com"}}.withDefaults()
		services[name] = &service{req: req}
	}
	tab, err := buildTable(services)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if tab.match(normalizeHost("svcbc.example.com"), "/x") == nil {
			b.Fatal("no match")
		}
	}
}
