package planner_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bosunhq/bosun/planner"
)

// benchRepo makes a config repository of n services on 3 hosts each (out of
// 30 servers): a third use a template, the rest are Kamal files.
func benchRepo(n int, tag string) fstest.MapFS {
	fsys := fstest.MapFS{}
	var fleet strings.Builder
	fleet.WriteString("servers:\n")
	for i := range 30 {
		fmt.Fprintf(&fleet, "  web-%d: {host: 10.0.%d.%d, tags: [rack-%d]}\n", i, i/10, i%10+10, i%10)
	}
	fleet.WriteString("defaults:\n  registry: {server: ghcr.io, username: acme, password: [REGISTRY_TOKEN]}\n")
	fsys["fleet.yml"] = &fstest.MapFile{Data: []byte(fleet.String())}
	fsys["templates/app.yml.tmpl"] = &fstest.MapFile{Data: []byte(`service: {{ .name }}
image: {{ .image }}
servers: {{ toJson .servers }}
proxy:
  host: {{ .name }}.example.com
  app_port: 3000
env:
  clear: {APP: {{ .name }}, RAILS_ENV: production}
  secret: [RAILS_MASTER_KEY]
`)}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		hosts := fmt.Sprintf("[web-%d, web-%d, web-%d]", i%30, (i+1)%30, (i+2)%30)
		var body string
		if i%3 == 0 {
			body = fmt.Sprintf("template: app\nvars:\n  name: %s\n  image: ghcr.io/acme/%s:%s\n  servers: %s\n", name, name, tag, hosts)
		} else {
			body = fmt.Sprintf(`service: %s
image: ghcr.io/acme/%s:%s
servers:
  web:
    hosts: %s
    options: {memory: 512m, cpus: 1}
proxy:
  host: %s.example.com
  healthcheck: {path: /health}
env:
  clear:
    RAILS_ENV: production
    LOG_LEVEL: info
  secret: [RAILS_MASTER_KEY, "DATABASE_URL:DB_URL"]
volumes: ["/var/lib/%s:/data"]
labels: {team: core}
`, name, name, tag, hosts, name, name)
		}
		fsys["services/"+name+".yml"] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

type mapSecrets map[string]string

func (m mapSecrets) LookupSecret(n string) (string, bool) { v, ok := m[n]; return v, ok }

// BenchmarkPlan plans n services × 3 hosts against an applied state where
// every target runs the previous image tag, so every target is diffed.
// cold: a new Planner each time (every file parsed); warm: one Planner,
// as the daemon keeps it (unchanged files are not parsed again).
func BenchmarkPlan(b *testing.B) {
	for _, mode := range []string{"cold", "warm"} {
		for _, n := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/services=%d", mode, n), func(b *testing.B) { benchPlan(b, n, mode == "warm") })
		}
	}
}

func benchPlan(b *testing.B, n int, warm bool) {
	{
		{
			cfg := planner.Config{SecretKey: goldenKey, RequireSecrets: true,
				Secrets: mapSecrets{"RAILS_MASTER_KEY": "m", "DB_URL": "postgres://x", "REGISTRY_TOKEN": "t"}}
			p := planner.New(cfg)
			// The applied state is the previous tag of every service: each
			// plan diffs every target.
			prev, err := p.Plan(b.Context(), benchRepo(n, "v1"), planner.Input{Repo: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			var applied []planner.Applied
			for _, c := range prev.Changes {
				applied = append(applied, planner.Applied{Target: c.Target, Version: c.Version, Spec: *c.Desired})
			}
			repo := benchRepo(n, "v2")
			b.ReportAllocs()
			b.ResetTimer()
			if warm {
				if _, err := p.Plan(b.Context(), repo, planner.Input{Repo: "bench", Applied: applied}); err != nil {
					b.Fatal(err)
				}
			}
			// Sample the heap while planning: peak-MB is the most heap the
			// plans used above what was live before them.
			runtime.GC()
			base := heapBytes()
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for {
					if h := heapBytes(); h > peak.Load() {
						peak.Store(h)
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			cpu0, child0 := cpuTime(), childCPUTime()
			defer func() {
				b.ReportMetric(float64((childCPUTime()-child0).Milliseconds())/float64(b.N), "child-cpu-ms/op")
				// CPU time is reported beside wall time because the machines
				// these run on are shared: wall time depends on the load.
				b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
				close(stop)
				<-sampled
				b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak-MB")
			}()
			b.ResetTimer()
			for b.Loop() {
				if !warm {
					p = planner.New(cfg)
				}
				pl, err := p.Plan(b.Context(), repo, planner.Input{Repo: "bench", Applied: applied})
				if err != nil {
					b.Fatal(err)
				}
				if len(pl.Changes) != 3*n {
					b.Fatalf("got %d changes, want %d", len(pl.Changes), 3*n)
				}
			}
		}
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPUTime is the CPU time of this process's ended children: the
// template render children, which Plan waits for.
func childCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
