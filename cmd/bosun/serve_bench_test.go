package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

// BenchmarkServe_pushToServer measures, with a config repository of 1,000
// services, the time from a push's webhook to bosun's first
// operation on a server (the first per-host event of the deployment), and
// to the new version serving on both of 2 test servers. 999 services are
// recorded as applied beforehand, so one service changes per push, as in a
// real fleet. Target (issue 5): first operation under 250 ms, median.
func BenchmarkServe_pushToServer(b *testing.B) {
	testbed.RequireDocker(b)
	bed := testbed.Start(b, testbed.Options{Servers: 2})
	images := []string{bed.PushApp(b, "shop", "v1", testbed.AppOK), bed.PushApp(b, "shop", "v2", testbed.AppOK)}
	proxyImage := bed.PushProxy(b)

	dir := b.TempDir()
	repoDir := filepath.Join(dir, "fleet")
	fleet := "servers:\n  far-1: {host: 10.0.0.1}\n  far-2: {host: 10.0.0.2}\n"
	for _, s := range bed.Servers {
		host, port, _ := strings.Cut(s.SSHAddr, ":")
		fleet += fmt.Sprintf("  %s: {host: %s, port: %s}\n", s.Name, host, port)
	}
	files := map[string]string{"fleet.yml": fleet}
	for i := range 999 {
		files[fmt.Sprintf("services/svc-%03d.yml", i)] = fmt.Sprintf("service: svc-%03d\nimage: registry.example.com/svc-%03d:v1\nservers: [far-1, far-2]\nproxy: {host: svc-%03d.example.com}\n", i, i, i)
	}
	shop := func(image string) string {
		return "service: shop\nimage: " + image + "\nservers: [server-1, server-2]\nproxy: {host: shop.test, healthcheck: {path: /up, interval: 1}}\ndrain_timeout: 1\n"
	}
	files["services/shop.yml"] = shop(images[0])
	first := testbed.Commit(b, repoDir, "change", files)

	// Record the 999 services as applied, as if deployed earlier.
	dbPath := filepath.Join(dir, "state.db")
	st, err := state.Open(context.Background(), "sqlite:///"+dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := st.SecretKey(context.Background())
	rf := repoFlags{repo: repoDir, path: "."}
	repo, _ := rf.open(context.Background())
	c, err := rf.read(repo, first, false)
	if err != nil {
		b.Fatal(err)
	}
	applied, err := describedState(context.Background(), planner.Config{SecretKey: key}, c, "fleet")
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range applied {
		if a.Service == "shop" {
			continue
		}
		spec, _ := json.Marshal(a.Spec)
		if err := st.PutApplied(context.Background(), state.Applied{Repo: "fleet", Service: a.Service, Role: a.Role, Host: a.Host, Version: a.Version, Commit: first, Spec: spec}); err != nil {
			b.Fatal(err)
		}
	}

	cfgPath := filepath.Join(dir, "bosun.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state: sqlite:///%s
data_dir: %s
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
log: {format: json, level: info}
repos: [{name: fleet, url: %s, branch: master, poll: 1h, forge_repo: acme/fleet}]
`, dbPath, filepath.Join(dir, "data"), bed.KeyPath, bed.KnownHostsPath, repoDir)), 0o644)
	d := startServe(b, cfgPath, map[string]string{"BOSUN_WEBHOOK_SECRET": hookSecret, "BOSUN_PROXY_IMAGE": proxyImage})
	servesEverywhere := func(version string) bool {
		for _, s := range bed.Servers {
			if !strings.Contains(serving(s.HTTPAddr, "shop.test"), version) {
				return false
			}
		}
		return true
	}
	waitFor(b, 3*time.Minute, "v1 serving", func() bool { return servesEverywhere("v1") })

	var toFirstOp, toServing []time.Duration
	prev := first
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		version := []string{"v2", "v1"}[i%2]
		sha := testbed.Commit(b, repoDir, "change", map[string]string{"services/shop.yml": shop(images[(i+1)%2])})
		t0 := time.Now() // the push has landed; its webhook goes now
		if code := d.hook(b, "push", fmt.Sprintf("bench-%d", i), pushEvent("acme/fleet", "master", prev, sha)); code != http.StatusAccepted {
			b.Fatalf("push: %d", code)
		}
		prev = sha
		waitFor(b, 2*time.Minute, version+" serving", func() bool { return servesEverywhere(version) })
		toServing = append(toServing, time.Since(t0))
		var dep state.Deployment
		waitFor(b, time.Minute, "the deployment to finish", func() bool {
			ds, err := st.ListDeployments(context.Background(), state.DeploymentFilter{Commit: sha})
			if err != nil || len(ds) == 0 || !ds[0].Status.Final() {
				return false
			}
			dep = ds[0]
			return true
		})
		evs, err := st.ListEvents(context.Background(), dep.ID)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Host != "" {
				toFirstOp = append(toFirstOp, ev.At.Sub(t0))
				break
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(median(toFirstOp).Seconds()*1000, "ms-to-first-op")
	b.ReportMetric(median(toServing).Seconds()*1000, "ms-to-serving")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
