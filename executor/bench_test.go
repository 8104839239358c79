package executor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/planner"
)

// benchEnv is a bed with v1 of the web service applied everywhere; cpus
// caps each server (testbed.Options.CPUs; 0: they share the machine).
func benchEnv(b *testing.B, servers int, cpus float64) (*bedEnv, string) {
	en := newBedEnvOpts(b, testbed.Options{Servers: servers, CPUs: cpus})
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
// steps done by hand, one SSH connection per server, in parallel; then
// both with the default health interval, without and with a paused
// standby (x-bosun.standby: paused).
func BenchmarkApply_TwoServers(b *testing.B) {
	en, ref := benchEnv(b, 2, 0)
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

	// As in the head-to-head with Kamal (issue 9): the proxy's default
	// health interval (1 s), so a first check that comes before the app
	// listens costs what the retry waits. "revert" goes back to the
	// previous, retained version, as reverting a commit does (Kamal's
	// `rollback`: 2.81 s median on these servers).
	dflt := func(tag string) *planner.Spec {
		s := iterSpec(ref, tag)
		s.Proxy.HealthInterval = planner.Duration(time.Second)
		return s
	}
	// timed applies the spec of tag(i) under pol once per iteration and
	// reports the distribution of the wall times.
	timed := func(name string, pol planner.Service, tag func(i int) string) {
		b.Run(name, func(b *testing.B) {
			var ts timings
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				en.mustApply(en.plan(dflt(tag(i)), pol))
				ts = append(ts, time.Since(start))
			}
			ts.report(b)
		})
	}
	// revert goes back and forth between two versions, both applied (and
	// so retained) first.
	revert := func(name string, pol planner.Service, a, c string) {
		en.mustApply(en.plan(dflt(a), pol))
		en.mustApply(en.plan(dflt(c), pol))
		timed(name, pol, func(i int) string {
			if i%2 == 1 {
				return c
			}
			return a
		})
	}
	timed("default-health/new-version/bosun", pol, func(i int) string { return "d" + strconv.Itoa(i) })
	revert("default-health/revert/bosun", pol, "ra", "rb")

	// The same with x-bosun.standby: paused: the version that served until
	// a switch waits paused, so a revert unpauses it rather than waiting for
	// `docker start` (0.5-0.8 s on these servers), and a new version pauses
	// the old one instead of stopping it (stopping the standby before).
	sb := planner.Service{RetainContainers: 3, Standby: planner.StandbyPaused}
	timed("standby/new-version/bosun", sb, func(i int) string { return "s" + strconv.Itoa(i) })
	revert("standby/revert/bosun", sb, "sa", "sb")
}

// timings are the wall times of a benchmark's iterations; report adds
// their distribution (ns/op is only the mean): median, the fastest and
// slowest, and the 90th percentile, in seconds.
type timings []time.Duration

func (ts timings) report(b *testing.B) {
	if len(ts) == 0 {
		return
	}
	s := append(timings(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))].Seconds() }
	med := s[len(s)/2].Seconds()
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]).Seconds() / 2
	}
	b.ReportMetric(med, "median-s")
	b.ReportMetric(s[0].Seconds(), "min-s")
	b.ReportMetric(at(0.9), "p90-s")
	b.ReportMetric(s[len(s)-1].Seconds(), "max-s")
	var lines []string
	for _, d := range ts {
		lines = append(lines, strconv.FormatFloat(d.Seconds(), 'f', 2, 64))
	}
	b.Logf("runs (s, in order): %s", strings.Join(lines, " "))
}

// BenchmarkApply_FanOut measures a rollout of a new version to 1, 4 and 16
// servers at once (boot.limit unset: one batch). The servers share this
// machine's cores: with 16 of them the machine runs out of CPU (see
// cpu-bound-s/op), so this shows the machine's limit more than the
// executor's; BenchmarkApply_FanOutOwnCPU shows the executor's.
func BenchmarkApply_FanOut(b *testing.B) {
	benchFanOut(b, 0)
}

// fanOutServerCPUs is the CPU cap of each server in
// BenchmarkApply_FanOutOwnCPU: 16 servers then need 1.6 of the machine's 2
// cores, which leaves bosun and the registry 0.4.
const fanOutServerCPUs = 0.1

// BenchmarkApply_FanOutOwnCPU is BenchmarkApply_FanOut with every server
// capped at fanOutServerCPUs, its dockerd and containers included, so that
// each has CPU of its own as real servers do and the servers together do
// not exceed the machine. What grows from 1 to 16 servers is then what the
// executor adds per server.
func BenchmarkApply_FanOutOwnCPU(b *testing.B) {
	if need := 16 * fanOutServerCPUs; need > float64(runtime.NumCPU())-0.4 {
		b.Skipf("16 servers at %.1f CPU need %.1f of this machine's %d cores, and bosun some", fanOutServerCPUs, need, runtime.NumCPU())
	}
	benchFanOut(b, fanOutServerCPUs)
}

func benchFanOut(b *testing.B, cpus float64) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			en, ref := benchEnv(b, n, cpus)
			pol := planner.Service{RetainContainers: 3}
			b.Run("bosun", func(b *testing.B) {
				cpu := startCPUMeter(b, en)
				for i := 0; b.Loop(); i++ {
					en.mustApply(en.plan(iterSpec(ref, "f"+strconv.Itoa(i)), pol))
				}
				cpu.report(b)
			})
			// The same machine's limit: the by-hand deploy to n servers.
			b.Run("floor", func(b *testing.B) {
				cpu := startCPUMeter(b, en)
				floorDeploy(b, en, ref, false)
				cpu.report(b)
			})
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

// cpuMeter measures the CPU time the whole machine spends (every process:
// bosun, the servers' sshd, dockerd, containerd and containers), from
// /proc/stat, this process's own (bosun's executor, or the floor's SSH
// client) and the test servers'. When the test servers share this
// machine's cores, CPU seconds per rollout divided by the number of cores
// is a lower bound on its wall time here, whatever the executor does.
type cpuMeter struct {
	machine, self, servers float64
	en                     *bedEnv
}

func startCPUMeter(b *testing.B, en *bedEnv) cpuMeter {
	return cpuMeter{machine: readMachineCPU(b), self: readSelfCPU(b), servers: readServersCPU(en), en: en}
}

// readServersCPU returns the CPU seconds the bed's server containers used
// (cgroup v1 cpuacct; with Options.CPUs their containers are inside), or
// -1 when that cannot be read.
func readServersCPU(en *bedEnv) float64 {
	var sum float64
	for _, s := range en.bed.Servers {
		data, err := os.ReadFile("/sys/fs/cgroup/cpuacct/docker/" + s.Container + "/cpuacct.usage")
		if err != nil {
			return -1
		}
		ns, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
		if err != nil {
			return -1
		}
		sum += ns / 1e9
	}
	return sum
}

// report adds machine-cpu-s/op; cpu-bound-s/op, that CPU time spread over
// all cores; self-cpu-s/op, this process's part; and, where the servers'
// cgroups can be read, servers-cpu-s/op: what the servers used, all of it
// when their containers are below them (Options.CPUs). /proc/stat counts in
// scheduler ticks, the cgroups in nanoseconds: for short bursts (a server
// throttled by its CPU cap) the first can come out lower.
func (m cpuMeter) report(b *testing.B) {
	if b.N == 0 {
		return
	}
	n := float64(b.N)
	machine := (readMachineCPU(b) - m.machine) / n
	b.ReportMetric(machine, "machine-cpu-s/op")
	b.ReportMetric(machine/float64(runtime.NumCPU()), "cpu-bound-s/op")
	b.ReportMetric((readSelfCPU(b)-m.self)/n, "self-cpu-s/op")
	if now := readServersCPU(m.en); now >= 0 && m.servers >= 0 {
		b.ReportMetric((now-m.servers)/n, "servers-cpu-s/op")
	}
}

// readSelfCPU returns this process's user and system CPU seconds.
func readSelfCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// readMachineCPU returns the busy seconds of all CPUs since boot.
func readMachineCPU(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("unexpected /proc/stat line %q", line)
	}
	var busy float64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for i, v := range f[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("parse /proc/stat: %v", err)
		}
		busy += n
	}
	return busy / 100 // USER_HZ
}
