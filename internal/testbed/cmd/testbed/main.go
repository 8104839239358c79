// Command testbed starts bosun's test servers for a person to try bosun by
// hand (`make testbed`), and removes them (`make testbed-down`).
//
//	testbed up [-n 2] [-dir .testbed]    start servers in the background, print how to reach them
//	testbed down [-dir .testbed]         remove them (and every bed started by `up`)
//	testbed status [-dir .testbed]       print the running bed again
//	testbed push-app [-dir .testbed] [-kind ok|unhealthy|crash] NAME VERSION
//	                                     push a sample app image to the bed's registry
//	testbed image                        provision dockerd and the server image only
//	testbed fresh-check [-keep]          run make demo and make test on a fresh machine
//	                                     (a container; see docs/testbed.md)
//
// `up` leaves a background process (`testbed serve`) that serves the bed's
// registry and removes the bed when it gets SIGTERM; its log, the SSH key,
// known_hosts and state.json (the servers) are in the -dir folder.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/internal/testbed"
)

// labelManual marks the beds of this command, so that `down` removes them
// and never a test's bed.
const labelManual = "bosun.testbed.manual"

// state is what `up` leaves in DIR/state.json.
type state struct {
	PID int `json:"pid"` // the `testbed serve` process
	*testbed.Bed
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testbed up|down|status|push-app|image|fresh-check [flags]")
		return 2
	}
	fs := flag.NewFlagSet("testbed "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".testbed", "folder for the SSH key, known_hosts, state.json and the log")
	n := fs.Int("n", 2, "number of servers (up)")
	cpus := fs.Float64("cpus", 0, "cap each server at this many CPUs, its containers included (up; 0: no cap)")
	kind := fs.String("kind", "ok", "sample app behaviour: ok, unhealthy or crash (push-app)")
	keep := fs.Bool("keep", false, "leave the fresh machine's container, volume and checkout (fresh-check)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "testbed:", err)
		return 1
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	switch args[0] {
	case "up":
		err = up(ctx, abs, *n, *cpus, stdout)
	case "serve":
		err = serve(ctx, abs, *n, *cpus, logf)
	case "down":
		err = down(ctx, abs, stdout)
	case "status":
		var st *state
		if st, err = readState(abs); err == nil {
			printBed(stdout, abs, st)
		}
	case "push-app":
		err = pushApp(ctx, abs, *kind, fs.Args(), stdout)
	case "image":
		err = image(ctx, logf, stdout)
	case "fresh-check":
		err = testbed.FreshCheck(ctx, testbed.FreshCheckOptions{Repo: ".", Out: stdout, Logf: logf, Keep: *keep})
	default:
		fmt.Fprintf(stderr, "testbed: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "testbed:", err)
		return 1
	}
	return 0
}

func image(ctx context.Context, logf testbed.Logf, stdout io.Writer) error {
	if err := testbed.EnsureDocker(ctx, logf); err != nil {
		return err
	}
	ref, err := testbed.EnsureServerImage(ctx, logf)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ref)
	return nil
}

// up starts `testbed serve` in its own session and waits for its first line
// on a pipe: "ok" once the bed is up and state.json written, or the error.
func up(ctx context.Context, dir string, n int, cpus float64, stdout io.Writer) error {
	if st, err := readState(dir); err == nil && alive(st.PID) {
		fmt.Fprintln(stdout, "testbed is already up:")
		printBed(stdout, dir, st)
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	// `go run` deletes its binary when it exits; serve from a copy.
	bin := filepath.Join(dir, "testbed-serve")
	if err := copyFile(self, bin); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "testbed.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	defer logFile.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(bin, "serve", "-dir", dir, "-n", strconv.Itoa(n), "-cpus", strconv.FormatFloat(cpus, 'f', -1, 64))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start testbed serve: %w", err)
	}
	pw.Close()
	fmt.Fprintf(stdout, "starting %d servers (log: %s; the first run builds the server image, about 2 minutes)\n", n, logPath)
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return ctx.Err()
	}
	if line != "ok" {
		_ = cmd.Wait()
		if line == "" {
			log, _ := os.ReadFile(logPath)
			line = "testbed serve exited: " + string(log)
		}
		return errors.New(line)
	}
	_ = cmd.Process.Release()
	st, err := readState(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "testbed up in %s (servers started in %s)\n", time.Since(start).Round(time.Millisecond), st.StartTime.Round(time.Millisecond))
	printBed(stdout, dir, st)
	return nil
}

// serve launches the bed, reports on fd 3, serves the registry until
// SIGTERM/SIGINT, then removes the bed.
func serve(ctx context.Context, dir string, n int, cpus float64, logf testbed.Logf) error {
	ready := os.NewFile(3, "ready")
	report := func(msg string) {
		if ready != nil {
			fmt.Fprintln(ready, msg)
			ready.Close()
			ready = nil
		}
	}
	defer report("error: testbed serve stopped")
	b, err := testbed.Launch(ctx, testbed.Options{Servers: n, CPUs: cpus, Dir: dir, Logf: logf, Labels: map[string]string{labelManual: "1"}})
	if err != nil {
		report("error: " + err.Error())
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			logf("testbed: close: %v", err)
		}
		_ = os.Remove(filepath.Join(dir, "state.json"))
		_ = os.Remove(filepath.Join(dir, "testbed-serve"))
		logf("testbed: removed run %s", b.RunID)
	}()
	data, err := json.MarshalIndent(state{PID: os.Getpid(), Bed: b}, "", "  ")
	if err != nil {
		report("error: " + err.Error())
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), append(data, '\n'), 0o600); err != nil {
		report("error: write state: " + err.Error())
		return err
	}
	report("ok")
	<-ctx.Done()
	logf("testbed: stopping")
	return nil
}

// down stops the serve process (which removes its bed), then removes
// whatever any `up` left by label, in case that process is gone.
func down(ctx context.Context, dir string, stdout io.Writer) error {
	if st, err := readState(dir); err == nil && alive(st.PID) {
		if p, err := os.FindProcess(st.PID); err == nil {
			_ = p.Signal(syscall.SIGTERM)
		}
		deadline := time.Now().Add(60 * time.Second)
		for alive(st.PID) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond): // not our child: no wait()
			}
		}
	}
	if err := testbed.EnsureDocker(ctx, nil); err != nil {
		return err
	}
	if err := testbed.RemoveByLabel(ctx, labelManual); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	fmt.Fprintln(stdout, "testbed down: every container and network labelled "+labelManual+" removed")
	return nil
}

func pushApp(ctx context.Context, dir, kind string, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: testbed push-app [-kind ok|unhealthy|crash] NAME VERSION")
	}
	kinds := map[string]testbed.AppKind{"ok": testbed.AppOK, "unhealthy": testbed.AppUnhealthy, "crash": testbed.AppCrash}
	k, ok := kinds[kind]
	if !ok {
		return fmt.Errorf("unknown -kind %q: want ok, unhealthy or crash", kind)
	}
	st, err := readState(dir)
	if err != nil {
		return err
	}
	ref, err := st.Bed.PushAppContext(ctx, args[0], args[1], k)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ref)
	return nil
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("read testbed state (is it up? `make testbed`): %w", err)
	}
	st := &state{Bed: &testbed.Bed{}}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return st, nil
}

func printBed(w io.Writer, dir string, st *state) {
	fmt.Fprintf(w, "\nrun id:       %s (containers and network labelled %s=%s)\n", st.RunID, testbed.LabelRun, st.RunID)
	fmt.Fprintf(w, "SSH key:      %s\n", st.KeyPath)
	fmt.Fprintf(w, "known_hosts:  %s\n", st.KnownHostsPath)
	fmt.Fprintf(w, "registry:     %s (as the servers pull; push to %s)\n", st.Registry, st.RegistryPush)
	fmt.Fprintf(w, "state:        %s\n\n", filepath.Join(dir, "state.json"))
	fmt.Fprintf(w, "%-10s %-17s %-17s %-17s %s\n", "SERVER", "SSH", "HTTP", "HTTPS", "NETWORK IP")
	for _, s := range st.Servers {
		fmt.Fprintf(w, "%-10s %-17s %-17s %-17s %s\n", s.Name, s.SSHAddr, s.HTTPAddr, s.HTTPSAddr, s.IP)
	}
	if len(st.Servers) > 0 {
		s := st.Servers[0]
		_, port, _ := strings.Cut(s.SSHAddr, ":")
		fmt.Fprintf(w, "\nssh -i %s -o UserKnownHostsFile=%s -p %s root@127.0.0.1 docker ps\n", st.KeyPath, st.KnownHostsPath, port)
		fmt.Fprintf(w, "go run ./internal/testbed/cmd/testbed push-app myapp v1   # then deploy %s/myapp:v1\n", st.Registry)
	}
	fmt.Fprintln(w, "remove with: make testbed-down")
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.Rename(tmp, dst)
}
