package executor

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// benchEnv is a bed with v1 of the web service applied everywhere.
func benchEnv(b *testing.B, servers int) (*bedEnv, string) {
	en := newBedEnv(b, servers)
	en.ex = en.newExecutor(func(c *Config) {
		c.Logger = slog.New(slog.DiscardHandler)
		c.Progress = nil
	})
	ref := en.bed.PushApp(b, "web", "v1", testbed.AppOK)
	en.mustApply(en.plan(iterSpec(ref, "warm"), planner.Service{RetainContainers: 3}))
	return en, ref
}

// iterSpec is the web spec with a distinct version per tag.
func iterSpec(ref, tag string) *planner.Spec {
	s := webSpec(ref)
	s.Env["ITER"] = tag
	return s
}

// BenchmarkApply_TwoServers measures a rollout of a new version to two
// servers and a rollback to a retained version, beside the floor: the same
// steps done by hand, one SSH connection per server, in parallel.
func BenchmarkApply_TwoServers(b *testing.B) {
	en, ref := benchEnv(b, 2)
	pol := planner.Service{RetainContainers: 3}

	b.Run("new-version/bosun", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			en.mustApply(en.plan(iterSpec(ref, "n"+strconv.Itoa(i)), pol))
		}
	})
	b.Run("new-version/floor", func(b *testing.B) {
		floorDeploy(b, en, ref, false)
	})

	// Two versions, both retained: each apply restarts the other one.
	en.mustApply(en.plan(iterSpec(ref, "a"), pol))
	en.mustApply(en.plan(iterSpec(ref, "b"), pol))
	b.Run("retained-version/bosun", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			tag := "a"
			if i%2 == 1 {
				tag = "b"
			}
			en.mustApply(en.plan(iterSpec(ref, tag), pol))
		}
	})
	b.Run("retained-version/floor", func(b *testing.B) {
		floorDeploy(b, en, ref, true)
	})
}

// BenchmarkApply_FanOut measures a rollout of a new version to 1, 4 and 16
// servers at once (boot.limit unset: one batch).
func BenchmarkApply_FanOut(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			en, ref := benchEnv(b, n)
			pol := planner.Service{RetainContainers: 3}
			b.Run("bosun", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					en.mustApply(en.plan(iterSpec(ref, "f"+strconv.Itoa(i)), pol))
				}
			})
			// The same machine's limit: the by-hand deploy to n servers.
			b.Run("floor", func(b *testing.B) { floorDeploy(b, en, ref, false) })
		})
	}
}

// floorDeploy is a deploy by hand: over one SSH connection per server, in
// parallel, one shell script that pulls, runs, waits for /up with curl from
// the server, and stops the previous container (retained: starts a stopped
// container instead of pulling and running a new one).
func floorDeploy(b *testing.B, en *bedEnv, ref string, retained bool) {
	ctx := context.Background()
	type conn struct {
		s   *testbed.Server
		run func(script string) error
	}
	var conns []conn
	for _, s := range en.bed.Servers {
		cl, err := s.Dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cl.Close() })
		conns = append(conns, conn{s: s, run: func(script string) error {
			sess, err := cl.NewSession()
			if err != nil {
				return err
			}
			defer sess.Close()
			out, err := sess.CombinedOutput(script)
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}})
	}
	const wait = `ip=$(docker inspect -f '{{.NetworkSettings.Networks.bosun.IPAddress}}' "$new")
until curl -sf "http://$ip/up" >/dev/null; do sleep 0.05; done
`
	if retained {
		// Two stopped floor containers to alternate between.
		for _, c := range conns {
			if err := c.run(`set -e
for n in floor-ra floor-rb; do docker run -d --name $n --network bosun ` + ref + ` >/dev/null; done
docker stop floor-rb >/dev/null`); err != nil {
				b.Fatal(err)
			}
		}
	}
	prev := ""
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.run(`docker rm -f $(docker ps -aq --filter name=floor-) >/dev/null 2>&1; true`)
		}
	})
	for i := 0; b.Loop(); i++ {
		var script string
		if retained {
			next, cur := "floor-rb", "floor-ra"
			if i%2 == 1 {
				next, cur = cur, next
			}
			script = "set -e\nnew=" + next + "\ndocker start $new >/dev/null\n" + wait + "docker stop " + cur + " >/dev/null\n"
		} else {
			name := "floor-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			script = "set -e\nnew=" + name + "\ndocker pull -q " + ref + " >/dev/null\ndocker run -d --name $new --network bosun -e ITER=" + strconv.Itoa(i) + " " + ref + " >/dev/null\n" + wait
			if prev != "" {
				script += "docker stop " + prev + " >/dev/null\n"
			}
			prev = name
		}
		var wg sync.WaitGroup
		errs := make([]error, len(conns))
		for j, c := range conns {
			wg.Add(1)
			go func() { defer wg.Done(); errs[j] = c.run(script) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
