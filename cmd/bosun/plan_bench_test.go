package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/watcher"
)

// writeFleetRepo commits a config repository of n services on 3 hosts, each
// proxied with its own host name, one clear env var and one secret.
func writeFleetRepo(b *testing.B, dir string, n int) {
	b.Helper()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		b.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		b.Fatal(err)
	}
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("fleet.yml", "servers:\n  web-1: {host: 10.0.0.1}\n  web-2: {host: 10.0.0.2}\n  web-3: {host: 10.0.0.3}\n")
	for i := range n {
		write(fmt.Sprintf("services/svc-%05d.yml", i), fmt.Sprintf(`service: svc-%05d
image: registry.example.com/team/svc-%05d:v1.2.3
servers: [web-1, web-2, web-3]
proxy:
  host: svc-%05d.example.com
  healthcheck: {path: /up}
env:
  clear: {APP_ENV: production, WORKERS: "4"}
  secret: [APP_SECRET]
`, i, i, i))
	}
	if err := wt.AddGlob("."); err != nil {
		b.Fatal(err)
	}
	if _, err := wt.Commit("fleet", &git.CommitOptions{Author: &object.Signature{Name: "b", Email: "b@example.com", When: time.Unix(1700000000, 0)}}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPlanFromCommit measures `bosun plan` from a git commit: open the
// repository, read the commit's tree, load and validate every service, and
// diff against an applied state that equals the commit but for one image.
// Target (issue 2): 10,000 services × 3 hosts in under 1 s and 256 MB.
func BenchmarkPlanFromCommit(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "clone")
			src := b.TempDir()
			writeFleetRepo(b, src, n)
			// Plan from a clone, as the daemon and CI checkouts do: its
			// objects come in one packfile, not one file each.
			if _, err := git.PlainClone(dir, false, &git.CloneOptions{URL: src, NoCheckout: true}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			secrets := mapSecrets{"APP_SECRET": "s3cret"}
			cfg := planner.Config{Secrets: secrets, SecretKey: []byte("bench-key")}

			// The applied state: everything as committed, then one service changed.
			repo, err := watcher.Open(ctx, dir)
			if err != nil {
				b.Fatal(err)
			}
			sha, _ := repo.Resolve("HEAD")
			fsys, _ := repo.FS(sha, ".")
			applied, err := describedState(ctx, cfg, commit{fsys: fsys, sha: sha}, "bench")
			if err != nil {
				b.Fatal(err)
			}
			applied[0].Spec.Image = strings.Replace(applied[0].Spec.Image, "v1.2.3", "v1.2.2", 1)
			applied[0].Version = applied[0].Spec.Version()

			var peak uint64 // the largest live heap seen right after a plan
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				repo, err := watcher.Open(ctx, dir)
				if err != nil {
					b.Fatal(err)
				}
				sha, err := repo.Resolve("HEAD")
				if err != nil {
					b.Fatal(err)
				}
				fsys, err := repo.FS(sha, ".")
				if err != nil {
					b.Fatal(err)
				}
				plan, err := planner.New(cfg).Plan(ctx, fsys, planner.Input{Repo: "bench", Commit: sha, Applied: applied})
				if err != nil {
					b.Fatal(err)
				}
				if plan.Empty() {
					b.Fatal("plan is empty; want one update")
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
		})
	}
}

type mapSecrets map[string]string

func (m mapSecrets) LookupSecret(name string) (string, bool) { v, ok := m[name]; return v, ok }
