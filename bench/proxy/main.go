// Command bench measures bosun's proxy beside a direct connection and
// beside Caddy: requests per second and latency under wrk, and failed
// requests per route switch under load. bench/proxy/run.sh builds what it
// needs and runs it; `bench target ADDR NAME` is the tiny target server it
// starts. All traffic stays on 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/proxy"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "target" {
		serveTarget(os.Args[2], os.Args[3])
		return
	}
	if err := runBench(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serveTarget answers a small body on every path: the target behind each
// proxy (and hit directly for the baseline).
func serveTarget(addr, name string) {
	body := []byte("hello from " + name + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Target", name)
		w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "target:", err)
		os.Exit(1)
	}
}

var (
	bosunBin  = flag.String("bosun", "bin/bosun", "bosun binary")
	caddyBin  = flag.String("caddy", "caddy", "caddy v2.11.9 binary")
	wrkBin    = flag.String("wrk", "", "wrk binary (default: wrk from PATH, installed with Debian's wrk package when missing)")
	conns     = flag.Int("c", 64, "connections")
	threads   = flag.Int("t", 2, "wrk threads")
	duration  = flag.Duration("d", 8*time.Second, "duration of each wrk run")
	rounds    = flag.Int("rounds", 5, "rounds of (direct, bosun, caddy); the median is reported")
	switches  = flag.Int("switches", 40, "route switches under load, per proxy")
	accessLog = flag.Bool("access-log", true, "bosun writes its JSON access log (to /dev/null)")
	outJSON   = flag.String("json", "", "also write the results here as JSON")
)

type result struct {
	Name     string  `json:"name"`
	CPUus    float64 `json:"cpu_us_per_request"` // the proxy process's CPU time per request (0 for direct)
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Errors   string  `json:"errors,omitempty"`
	Requests int64   `json:"requests"`
}

type switchResult struct {
	Name     string `json:"name"`
	Switches int    `json:"switches"`
	Requests int64  `json:"requests"`
	Failed   int64  `json:"failed"`
	Sample   string `json:"sample,omitempty"`
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// procs are the processes the benchmark started; their stderr goes to
// files in dir, shown when something fails to start.
type procs struct {
	dir  string
	cmds []*exec.Cmd
}

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func (p *procs) start(name string, env []string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	logf, err := os.CreateTemp(p.dir, filepath.Base(name)+"-*.log")
	if err != nil {
		return err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p.cmds = append(p.cmds, cmd)
	return nil
}

func (p *procs) stop() {
	for _, c := range p.cmds {
		c.Process.Signal(os.Interrupt)
	}
	for _, c := range p.cmds {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
		}
	}
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 30s", url)
}

func caddyConfig(admin, listen, upstream string) []byte {
	cfg := map[string]any{
		"admin":   map[string]any{"listen": admin},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"bench": map[string]any{
			"listen":          []string{listen},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": upstream}},
			}}}},
		}}}},
	}
	b, _ := json.Marshal(cfg)
	return b
}

func runBench() error {
	flag.Parse()
	if *wrkBin == "" {
		logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
		p, err := testbed.EnsureCommand(context.Background(), logf, "wrk", "wrk")
		if err != nil {
			return err
		}
		*wrkBin = p
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bosun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p := procs{dir: tmp}
	defer p.stop()

	targetA, targetB := freePort(), freePort()
	for _, t := range []struct{ addr, name string }{{targetA, "A"}, {targetB, "B"}} {
		if err := p.start(self, nil, "target", t.addr, t.name); err != nil {
			return err
		}
		if err := waitHTTP("http://" + t.addr + "/up"); err != nil {
			return err
		}
	}

	bosunHTTP, bosunCtl := freePort(), freePort()
	token := "bench-token"
	if err := p.start(*bosunBin, []string{"BOSUN_PROXY_TOKEN=" + token}, "proxy", "run",
		"--http", bosunHTTP, "--https", "", "--control", bosunCtl, "--state", filepath.Join(tmp, "bosun"),
		"--access-log="+strconv.FormatBool(*accessLog)); err != nil {
		return err
	}
	client, err := proxy.NewClient(proxy.ClientConfig{Addr: bosunCtl, Token: token})
	if err != nil {
		return err
	}
	if err := waitHTTP("http://" + bosunCtl + "/up"); err != nil {
		return err
	}
	deploy := func(target string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := client.Deploy(ctx, proxy.DeployRequest{Service: "bench", Target: target,
			HealthInterval: proxy.Duration(100 * time.Millisecond), DrainTimeout: proxy.Duration(5 * time.Second)})
		return err
	}
	if err := deploy(targetA); err != nil {
		return err
	}

	caddyHTTP, caddyAdmin := freePort(), freePort()
	cfgPath := filepath.Join(tmp, "caddy.json")
	if err := os.WriteFile(cfgPath, caddyConfig(caddyAdmin, caddyHTTP, targetA), 0o644); err != nil {
		return err
	}
	bosunPID := p.cmds[len(p.cmds)-1].Process.Pid
	if err := p.start(*caddyBin, []string{"HOME=" + tmp, "XDG_DATA_HOME=" + tmp, "XDG_CONFIG_HOME=" + tmp}, "run", "--config", cfgPath); err != nil {
		return err
	}
	caddyPID := p.cmds[len(p.cmds)-1].Process.Pid
	pids := map[string]int{"bosun": bosunPID, "caddy": caddyPID}
	for _, u := range []string{"http://" + bosunHTTP + "/", "http://" + caddyHTTP + "/"} {
		if err := waitHTTP(u); err != nil {
			return err
		}
	}

	fmt.Fprintf(os.Stderr, "machine: %d CPUs (%s), %s; wrk -t%d -c%d -d%s, %d rounds\n", runtime.NumCPU(), cpuModel(), runtime.Version(), *threads, *conns, *duration, *rounds)
	names := []string{"direct", "bosun", "caddy"}
	urls := map[string]string{"direct": "http://" + targetA + "/", "bosun": "http://" + bosunHTTP + "/", "caddy": "http://" + caddyHTTP + "/"}
	all := map[string][]result{}
	for _, n := range names { // warm up every path
		if _, err := runWrk(n, urls[n], 2*time.Second); err != nil {
			return err
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, n := range names {
			before := cpuTicks(pids[n])
			res, err := runWrk(n, urls[n], *duration)
			if err != nil {
				return err
			}
			if pid := pids[n]; pid != 0 && res.Requests > 0 {
				res.CPUus = float64(cpuTicks(pid)-before) * 1e4 / float64(res.Requests)
			}
			fmt.Fprintf(os.Stderr, "round %d %-7s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  proxy CPU %5.1f us/req %s\n", r+1, n, res.RPS, res.P50ms, res.P99ms, res.CPUus, res.Errors)
			all[n] = append(all[n], res)
		}
	}
	var results []result
	for _, n := range names {
		results = append(results, median(all[n]))
	}

	// Failed requests per switch under load.
	var sw []switchResult
	bosunSwitch := func(i int) error {
		next := targetB
		if i%2 == 1 {
			next = targetA
		}
		return deploy(next)
	}
	caddySwitch := func(i int) error {
		next := targetB
		if i%2 == 1 {
			next = targetA
		}
		resp, err := http.Post("http://"+caddyAdmin+"/load", "application/json", strings.NewReader(string(caddyConfig(caddyAdmin, caddyHTTP, next))))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("caddy /load: %s %s", resp.Status, body)
		}
		return nil
	}
	for _, c := range []struct {
		name string
		url  string
		fn   func(int) error
	}{{"bosun", urls["bosun"], bosunSwitch}, {"caddy", urls["caddy"], caddySwitch}} {
		r, err := switchUnderLoad(c.name, c.url, c.fn)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "switch %-6s %d switches, %d requests, %d failed %s\n", r.Name, r.Switches, r.Requests, r.Failed, r.Sample)
		sw = append(sw, r)
	}

	printMarkdown(results, sw)
	if *outJSON != "" {
		b, _ := json.MarshalIndent(map[string]any{"throughput": results, "switch": sw}, "", "  ")
		if err := os.WriteFile(*outJSON, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctRE = regexp.MustCompile(`(?m)^\s+(50|99)\.?0*%\s+([0-9.]+)(us|ms|s)\s*$`)
	reqRE = regexp.MustCompile(`(\d+) requests in`)
	errRE = regexp.MustCompile(`(?m)^\s*(Socket errors:.*|Non-2xx or 3xx responses:.*)$`)
)

func runWrk(name, url string, d time.Duration) (result, error) {
	out, err := exec.Command(*wrkBin, "-t"+strconv.Itoa(*threads), "-c"+strconv.Itoa(*conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %w: %s", name, err, out)
	}
	s := string(out)
	res := result{Name: name}
	m := rpsRE.FindStringSubmatch(s)
	if m == nil {
		return result{}, fmt.Errorf("wrk %s: no Requests/sec in %s", name, s)
	}
	res.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reqRE.FindStringSubmatch(s); m != nil {
		res.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range pctRE.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			res.P50ms = v
		} else {
			res.P99ms = v
		}
	}
	var errs []string
	for _, m := range errRE.FindAllStringSubmatch(s, -1) {
		errs = append(errs, strings.TrimSpace(m[1]))
	}
	res.Errors = strings.Join(errs, "; ")
	return res, nil
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
	m := rs[len(rs)/2]
	p50s, p99s := make([]float64, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		p50s[i], p99s[i] = r.P50ms, r.P99ms
	}
	sort.Float64s(p50s)
	sort.Float64s(p99s)
	m.P50ms, m.P99ms = p50s[len(rs)/2], p99s[len(rs)/2]
	cpus := make([]float64, len(rs))
	for i, r := range rs {
		cpus[i] = r.CPUus
	}
	sort.Float64s(cpus)
	m.CPUus = cpus[len(rs)/2]
	return m
}

// switchUnderLoad runs GET and POST workers on kept-alive and fresh
// connections while switching the route every 100 ms, and counts every
// request that did not get a 200 from a target.
func switchUnderLoad(name, url string, switchFn func(int) error) (switchResult, error) {
	r := switchResult{Name: name}
	var ok, failed atomic.Int64
	var sampleMu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		fresh := w%2 == 1
		tr := &http.Transport{DisableKeepAlives: fresh, MaxIdleConnsPerHost: 4}
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *http.Response
				var err error
				if i%2 == 0 {
					resp, err = c.Post(url, "text/plain", strings.NewReader("payload "+strconv.Itoa(i)))
				} else {
					resp, err = c.Get(url)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					sampleMu.Lock()
					if r.Sample == "" {
						r.Sample = err.Error()
					}
					sampleMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // let the load reach a steady state
	for i := 0; i < *switches; i++ {
		if err := switchFn(i); err != nil {
			close(stop)
			wg.Wait()
			return r, fmt.Errorf("switch %s: %w", name, err)
		}
		r.Switches++
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	r.Requests, r.Failed = ok.Load()+failed.Load(), failed.Load()
	return r, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func printMarkdown(rs []result, sw []switchResult) {
	byName := map[string]result{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	fmt.Printf("| path | req/s | p50 | p99 | vs direct | proxy CPU per request | wrk errors |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		cpu := "-"
		if r.CPUus > 0 {
			cpu = fmt.Sprintf("%.1f µs", r.CPUus)
		}
		fmt.Printf("| %s | %.0f | %.2f ms | %.2f ms | %.0f %% | %s | %s |\n", r.Name, r.RPS, r.P50ms, r.P99ms, 100*r.RPS/byName["direct"].RPS, cpu, r.Errors)
	}
	if c := byName["caddy"]; c.RPS > 0 {
		b := byName["bosun"]
		fmt.Printf("\nbosun / caddy: %.2fx req/s; p99 %.2f ms vs %.2f ms\n", b.RPS/c.RPS, b.P99ms, c.P99ms)
	}
	fmt.Printf("\n| proxy | switches | requests | failed | failed per switch | first failure |\n|---|---:|---:|---:|---:|---|\n")
	for _, s := range sw {
		fmt.Printf("| %s | %d | %d | %d | %.2f | %s |\n", s.Name, s.Switches, s.Requests, s.Failed, float64(s.Failed)/float64(max(s.Switches, 1)), s.Sample)
	}
}
