// Command demo is `make demo`: bosun's main job from end to end on this
// machine. It starts two test servers, makes a config repository from
// examples/, runs `bosun serve` watching it, and then commits as a team
// would: v1 (deployed), v2 (deployed with zero downtime under load), and a
// revert of v2 (rolled back to v1 from the retained containers). Last it
// shows `bosun history`. Everything it starts is removed when it ends, or by
// `make demo-down` after a crash.
//
//	go run ./internal/demo [-bosun bin/bosun] [-dir .demo] [-keep]
//	go run ./internal/demo down
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
	"github.com/bosunhq/bosun/proxy"
	"github.com/bosunhq/bosun/state"
)

// labelDemo marks the demo's servers, so that `down` finds them.
const labelDemo = "bosun.demo"

const domain = "shop.demo.test"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "down" {
		step("removing the demo's servers")
		return testbed.RemoveByLabel(ctx, labelDemo)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	bosun := fs.String("bosun", "bin/bosun", "the bosun binary to run (make build)")
	dir := fs.String("dir", ".demo", "folder for the config repository, state, logs")
	keep := fs.Bool("keep", false, "leave the servers and bosun serve running at the end (make demo-down removes them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := filepath.Abs(*bosun)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make build)", bin)
	}
	work, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}

	step("starting 2 test servers (the first run builds their image: a few minutes)")
	bed, err := testbed.Launch(ctx, testbed.Options{Servers: 2, Dir: filepath.Join(work, "testbed"), Labels: map[string]string{labelDemo: "1"}, Logf: say})
	if err != nil {
		return err
	}
	if !*keep {
		defer bed.Close()
	}
	for _, s := range bed.Servers {
		say("  %s: ssh root@127.0.0.1 -p %s -i %s (known_hosts %s); its port 80 is http://%s", s.Name, port(s.SSHAddr), bed.KeyPath, bed.KnownHostsPath, s.HTTPAddr)
	}

	step("pushing the app's images (v1, v2) and bosun's proxy image to the servers' registry")
	v1, err := bed.PushAppContext(ctx, "shop", "v1", testbed.AppOK)
	if err != nil {
		return err
	}
	v2, err := bed.PushAppContext(ctx, "shop", "v2", testbed.AppOK)
	if err != nil {
		return err
	}
	img, err := proxy.Image(bin)
	if err != nil {
		return err
	}
	proxyRef, err := bed.Push(ctx, img, "bosun-proxy", "demo")
	if err != nil {
		return err
	}

	repo := filepath.Join(work, "fleet")
	step("making the config repository %s from examples/", repo)
	if err := writeConfigRepo(repo, bed); err != nil {
		return err
	}
	cfgPath := filepath.Join(work, "bosun.yaml")
	cfg := fmt.Sprintf(`# bosun serve's config for the demo; see docs/daemon.md.
listen: 127.0.0.1:0
state: sqlite:///%s/state.db
data_dir: %s/data
ssh: {key: %s, known_hosts: %s}
webhook: {secret_env: BOSUN_WEBHOOK_SECRET}
forge: {kind: none}
grace: 1m
log: {format: json, level: info}
repos:
  - name: fleet
    url: %s
    branch: master
    poll: 1m
`, work, work, bed.KeyPath, bed.KnownHostsPath, repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}

	step("starting bosun serve (log: %s/serve.log)", work)
	srv, err := startServe(ctx, bin, cfgPath, filepath.Join(work, "serve.log"), proxyRef)
	if err != nil {
		return err
	}
	if !*keep {
		defer srv.stop()
	}
	say("  listening on %s (webhooks: POST %s/hooks/github)", srv.addr, srv.addr)

	st, err := state.Open(ctx, "sqlite:///"+work+"/state.db")
	if err != nil {
		return err
	}
	defer st.Close()

	step("commit 1: deploy shop v1")
	v1Commit, err := commit(repo, "Deploy shop v1", map[string]string{"services/shop.yml": shopService(v1)})
	if err != nil {
		return err
	}
	if err := waitServing(ctx, bed, "v1", 5*time.Minute); err != nil {
		return err
	}
	if err := waitDeployed(ctx, st, v1Commit); err != nil {
		return err
	}
	say("  shop v1 serves on both servers. Try it:")
	for _, s := range bed.Servers {
		say("    curl -H 'Host: %s' http://%s/", domain, s.HTTPAddr)
	}

	step("commit 2: shop v2, deployed while requests keep coming")
	load := startLoad(bed)
	v2Commit, err := commit(repo, "Bump shop to v2", map[string]string{"services/shop.yml": shopService(v2)})
	if err != nil {
		return err
	}
	if err := waitServing(ctx, bed, "v2", 5*time.Minute); err != nil {
		return err
	}
	if err := waitDeployed(ctx, st, v2Commit); err != nil {
		return err
	}
	ok, failed := load.stop()
	say("  shop v2 serves on both servers: %d requests during the rollout, %d failed", ok+failed, failed)

	step("commit 3: revert v2 (git revert is the rollback)")
	revert, err := commit(repo, "Revert \"Bump shop to v2\"\n\nThis reverts commit "+v2Commit+".", map[string]string{"services/shop.yml": shopService(v1)})
	if err != nil {
		return err
	}
	if err := waitServing(ctx, bed, "v1", 5*time.Minute); err != nil {
		return err
	}
	if err := waitDeployed(ctx, st, revert); err != nil {
		return err
	}
	say("  shop v1 serves again, restarted from the retained v1 containers")

	step("bosun history")
	cmd := exec.CommandContext(ctx, bin, "history", "--events", "--state", "sqlite:///"+work+"/state.db")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bosun history: %w", err)
	}
	if *keep {
		say("\nThe servers and bosun serve (pid %d) keep running; make demo-down removes them.", srv.cmd.Process.Pid)
	} else {
		step("cleaning up")
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed during the v2 rollout", failed)
	}
	return nil
}

// writeConfigRepo makes the demo's config repository: the templates of
// examples/ and an inventory of the test servers.
func writeConfigRepo(dir string, bed *testbed.Bed) error {
	tmpls, err := filepath.Glob("examples/templates/*.yml.tmpl")
	if err != nil || len(tmpls) == 0 {
		return fmt.Errorf("no templates in examples/templates (run from the repository root)")
	}
	files := map[string]string{}
	for _, p := range tmpls {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files["templates/"+filepath.Base(p)] = string(b)
	}
	fleet := "# The demo's two test servers (their sshd is published on loopback).\nservers:\n"
	for _, s := range bed.Servers {
		fleet += fmt.Sprintf("  %s: {host: 127.0.0.1, port: %s, user: root, tags: [web]}\n", s.Name, port(s.SSHAddr))
	}
	files["fleet.yml"] = fleet
	_, err = commit(dir, "Inventory and templates", files)
	return err
}

// shopService is the demo's service file: the nextjs template of examples/
// with the sample app's image.
func shopService(image string) string {
	return fmt.Sprintf(`# The shop, from the nextjs template in templates/.
template: nextjs
vars:
  service_name: shop
  image_url: %s
  servers: [tag:web]
  domain: %s
  ssl: false
`, image, domain)
}

// commit writes files into the repository at dir (made if missing) and
// commits them.
func commit(dir, msg string, files map[string]string) (string, error) {
	sha, err := testbed.CommitFiles(dir, msg, files)
	if err != nil {
		return "", err
	}
	say("  committed %s %s", sha[:12], strings.SplitN(msg, "\n", 2)[0])
	return sha, nil
}

type serveProc struct {
	cmd  *exec.Cmd
	addr string
	log  *os.File
}

func (s *serveProc) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		s.cmd.Process.Kill()
	}
	s.log.Close()
}

// startServe runs `bosun serve` and waits until it listens.
func startServe(ctx context.Context, bin, cfgPath, logPath, proxyRef string) (*serveProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "BOSUN_WEBHOOK_SECRET=demo-webhook-secret", "BOSUN_PROXY_IMAGE="+proxyRef)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			var rec struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "bosun serve started" {
				addr <- "http://" + rec.Listen
			}
		}
	}()
	select {
	case a := <-addr:
		return &serveProc{cmd: cmd, addr: a, log: logf}, nil
	case <-time.After(time.Minute):
	case <-ctx.Done():
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("bosun serve did not start; see %s", logPath)
}

// waitDeployed waits until the deployment of commit has finished, and
// fails unless it was deployed.
func waitDeployed(ctx context.Context, st state.Store, commit string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ds, err := st.ListDeployments(ctx, state.DeploymentFilter{Commit: commit})
		if err != nil {
			return err
		}
		if len(ds) > 0 && ds[0].Status.Final() {
			if ds[0].Status != state.StatusDeployed {
				return fmt.Errorf("deployment of %s: %s: %s", commit[:12], ds[0].Status, ds[0].Error)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the deployment of %s did not finish within 2 minutes", commit[:12])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitServing waits until every server's proxy answers with version.
func waitServing(ctx context.Context, bed *testbed.Bed, version string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, s := range bed.Servers {
			if !strings.Contains(get(s.HTTPAddr), version) {
				all = false
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shop %s is not serving on every server after %s", version, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

func get(addr string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = domain
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// load sends GET requests to both servers until stopped, counting
// answers that are not 200.
type load struct {
	ok, failed atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(bed *testbed.Bed) *load {
	l := &load{done: make(chan struct{})}
	for _, s := range bed.Servers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				if get(s.HTTPAddr) != "" {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) stop() (ok, failed int64) {
	close(l.done)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

func port(addr string) string {
	i := strings.LastIndex(addr, ":")
	return addr[i+1:]
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }
func say(format string, args ...any)  { fmt.Printf(format+"\n", args...) }
