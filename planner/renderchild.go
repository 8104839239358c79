package planner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"
)

// A template is code from the config repository, and a pull request's
// templates run when it is planned. text/template cannot be interrupted: a
// loop that prints nothing runs until it ends, and an abandoned goroutine
// keeps burning a core. So renders run in a child process, which is killed
// when a file runs past templateTimeout; Plan returns only once it is gone.
//
// The child is this same executable (see selfExecutable), recognised by
// the renderChildEnv variable in its environment: init below serves render
// requests on stdin/stdout and exits before main runs. That makes every
// binary that links the planner (bosun, and each test binary) its own
// renderer with no subcommand to wire. The child gets no other environment
// (no secret can reach a template), one CPU (GOMAXPROCS=1), a CPU-time
// rlimit and an address-space rlimit, and each file's output is bounded as
// in-process rendering was (maxRendered).
//
// Starting a child costs milliseconds, so one load renders all its
// templated files in one child (a renderer): one JSON request a line in,
// one reply a line out, one file at a time. A file that runs past its
// timeout gets the child killed; the next file starts a fresh one, so a
// runaway file fails only itself. All renders of a load together get
// templateTotalTimeout; past it the rest are not rendered.
const renderChildEnv = "BOSUN_PLANNER_RENDER_CHILD"

// renderChildReady is the line a child writes once it is ready for
// requests, within renderChildStartTimeout.
const renderChildReady = "ready"

var renderChildStartTimeout = 30 * time.Second

// renderChildMemory bounds the child's address space.
var renderChildMemory int64 = 2 << 30

// renderChildrenStarted counts the render children started by this
// process (tests check that a load starts one).
var renderChildrenStarted atomic.Int64

func init() {
	if os.Getenv(renderChildEnv) == "1" {
		os.Exit(serveRender(os.Stdin, os.Stdout))
	}
}

// renderRequest is one line the parent sends the child.
type renderRequest struct {
	Name    string    `json:"name"` // the template's file name, for error positions
	Source  string    `json:"source"`
	Vars    wireValue `json:"vars"`
	Timeout int64     `json:"timeout_ns"` // this file's
	Total   int64     `json:"total_ns"`   // the whole child's
	Memory  int64     `json:"memory"`     // address-space limit, bytes
}

// renderReply is the line the child answers to each request.
type renderReply struct {
	Out []byte `json:"out"`
	Err string `json:"err,omitempty"`
}

// maxRequest bounds one request line; maxReply one reply line (JSON's
// base64 of at most maxRendered bytes).
const (
	maxRequest = 64 << 20
	maxReply   = 4*maxRendered + 4096
)

// readLine reads one line of at most max bytes, without its newline.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, fmt.Errorf("line over %d bytes", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// serveRender is the child's side: a request a line in, a reply a line
// out, until stdin ends.
func serveRender(in io.Reader, out io.Writer) int {
	br := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriter(out)
	// Ready: a file's time starts after the runtime started, not before.
	bw.WriteString(renderChildReady + "\n")
	if err := bw.Flush(); err != nil {
		return 2
	}
	limited := false
	var cpuMax uint64
	for {
		line, err := readLine(br, maxRequest)
		if errors.Is(err, io.EOF) {
			return 0
		}
		var req renderRequest
		if err == nil {
			err = json.Unmarshal(line, &req)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "render child: read request:", err)
			return 2
		}
		// Belts under the parent's kill: the kernel ends the child past
		// the CPU time of all its renders (hard) and of this one (soft),
		// and allocations past the address-space limit fail.
		if !limited {
			cpuMax = uint64(math.Ceil(time.Duration(req.Total).Seconds())) + 2
			syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpuMax, Max: cpuMax})
			if req.Memory > 0 {
				syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: uint64(req.Memory), Max: uint64(req.Memory)})
			}
			limited = true
		}
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			cur := min(uint64(math.Ceil((used+time.Duration(req.Timeout)).Seconds()))+1, cpuMax)
			syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cur, Max: cpuMax})
		}
		reply := renderOne(req)
		b, err := json.Marshal(reply)
		if err != nil {
			return 2
		}
		bw.Write(b)
		bw.WriteByte('\n')
		if err := bw.Flush(); err != nil {
			return 2
		}
	}
}

// renderOne renders one request, in the child.
func renderOne(req renderRequest) renderReply {
	vars, err := req.Vars.decode()
	var reply renderReply
	if err == nil {
		var t *template.Template
		t, err = template.New(req.Name).Option("missingkey=error").Funcs(templateFuncs).Parse(req.Source)
		if err == nil {
			var b limitedBuffer
			err = t.Execute(&b, vars)
			reply.Out = b.Bytes()
		}
	}
	if err != nil {
		return renderReply{Err: err.Error()}
	}
	return reply
}

// errRenderTimeout is a render stopped at templateTimeout.
var errRenderTimeout = errors.New("rendering took too long")

// errRenderBudget is a render stopped, or not started, because the load's
// renders together used up templateTotalTimeout.
var errRenderBudget = errors.New("rendering all templates took too long")

// templateTotalTimeout bounds all renders of one load together: a pull
// request of many runaway files costs at most this, not templateTimeout
// for each file.
var templateTotalTimeout = 60 * time.Second

// renderInChild renders the template file name (source src) with vars in a
// child process of its own, killed when ctx ends or templateTimeout passes.
// It returns after the child is gone.
func renderInChild(ctx context.Context, name, src string, vars map[string]any) ([]byte, error) {
	r := newRenderer(ctx)
	defer r.close()
	return r.render(name, src, vars)
}

// renderer renders the files of one load in one child process, started at
// the first render and replaced after a kill. It is safe for concurrent
// use: callers write their requests as they come (the child reads them
// while it renders, so it is never idle waiting for the next one) and
// read their replies in the order written. close ends the child.
type renderer struct {
	ctx   context.Context
	mu    sync.Mutex
	turn  *sync.Cond    // on mu: a child's turn moved on, or it died
	child *renderChild  // nil before the first render and after a kill
	spent time.Duration // render time of this load so far
}

func newRenderer(ctx context.Context) *renderer {
	r := &renderer{ctx: ctx}
	r.turn = sync.NewCond(&r.mu)
	return r
}

// renderChild is one running child process.
type renderChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *cappedBuffer

	wmu    sync.Mutex // orders the requests: tickets are handed out as written
	issued int        // tickets handed out, under wmu

	turn int  // the ticket whose reply is read next, under renderer.mu
	dead bool // killed: requests not answered yet go to a new child; under renderer.mu
}

func (r *renderer) start() (*renderChild, error) {
	exe, err := selfExecutable()
	if err != nil {
		return nil, fmt.Errorf("find the executable to render in: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{renderChildEnv + "=1", "GOMAXPROCS=1"}
	c := &renderChild{cmd: cmd, stderr: &cappedBuffer{max: 4096}}
	cmd.Stderr = c.stderr
	cmd.WaitDelay = time.Second // Wait returns even if a pipe stays open
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("render process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("render process: %w", err)
	}
	c.stdout = bufio.NewReaderSize(out, 64<<10)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the render process: %w", err)
	}
	renderChildrenStarted.Add(1)
	// Wait for the child's ready line, so that a slow start (a loaded
	// machine, a race-enabled binary) is not counted against a file.
	timer := time.AfterFunc(renderChildStartTimeout, func() { cmd.Process.Kill() })
	stopCtx := context.AfterFunc(r.ctx, func() { cmd.Process.Kill() })
	line, err := readLine(c.stdout, 64)
	timer.Stop()
	stopCtx()
	if err != nil || string(line) != renderChildReady {
		werr := c.kill()
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		first, _, _ := bytes.Cut(bytes.TrimSpace(c.stderr.Bytes()), []byte("\n"))
		return nil, fmt.Errorf("start the render process: %v %v: %s", err, werr, first)
	}
	return c, nil
}

// render renders the template file name (source src) with vars in the
// renderer's child. The child is killed (and replaced for the files still
// waiting) when this file runs past templateTimeout or the load's renders
// past templateTotalTimeout, or when ctx ends.
func (r *renderer) render(name, src string, vars map[string]any) ([]byte, error) {
	wv, err := encodeWire(vars)
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(renderRequest{Name: name, Source: src, Vars: wv,
		Timeout: int64(templateTimeout), Total: int64(templateTotalTimeout), Memory: renderChildMemory})
	if err != nil {
		return nil, err
	}
	req = append(req, '\n')
	for {
		// A request goes again only when another file's render killed
		// the child before this one was answered.
		out, err, again := r.renderOnce(req)
		if !again {
			return out, err
		}
	}
}

func (r *renderer) renderOnce(req []byte) (out []byte, err error, again bool) {
	r.mu.Lock()
	if err := r.ctx.Err(); err != nil {
		r.mu.Unlock()
		return nil, err, false
	}
	if r.spent >= templateTotalTimeout {
		r.mu.Unlock()
		return nil, errRenderBudget, false
	}
	if r.child == nil {
		if r.child, err = r.start(); err != nil {
			r.mu.Unlock()
			return nil, err, false
		}
	}
	c := r.child
	r.mu.Unlock()

	c.wmu.Lock()
	ticket := c.issued
	c.issued++
	c.stdin.Write(req) // a failed write is a dead child, seen below
	c.wmu.Unlock()

	r.mu.Lock()
	for !c.dead && c.turn != ticket {
		r.turn.Wait()
	}
	if c.dead {
		r.mu.Unlock()
		return nil, nil, true
	}
	// The child renders this file now: its time starts.
	timeout, stopErr := templateTimeout, errRenderTimeout
	if left := templateTotalTimeout - r.spent; left < timeout {
		timeout, stopErr = left, errRenderBudget
	}
	r.mu.Unlock()

	began := time.Now()
	var timedOut atomic.Bool
	timer := time.AfterFunc(timeout, func() { timedOut.Store(true); c.cmd.Process.Kill() })
	stopCtx := context.AfterFunc(r.ctx, func() { c.cmd.Process.Kill() })
	line, err := readLine(c.stdout, maxReply)
	var reply renderReply
	if err == nil {
		if jerr := json.Unmarshal(line, &reply); jerr != nil {
			err = fmt.Errorf("bad reply: %w", jerr)
		}
	}
	fired, cancelled := !timer.Stop(), !stopCtx()

	r.mu.Lock()
	r.spent += time.Since(began)
	if err == nil && !fired && !cancelled {
		c.turn++
		r.turn.Broadcast()
		r.mu.Unlock()
		if reply.Err != "" {
			return nil, errors.New(reply.Err), false
		}
		return reply.Out, nil, false
	}
	// The child is killed (or died of this file): the files after this
	// one go to a new child.
	c.dead = true
	if r.child == c {
		r.child = nil
	}
	r.turn.Broadcast()
	r.mu.Unlock()
	werr := c.kill()
	if err == nil {
		// The reply made it just as the child was being killed.
		if reply.Err != "" {
			return nil, errors.New(reply.Err), false
		}
		return reply.Out, nil, false
	}
	switch {
	case timedOut.Load():
		return nil, stopErr, false
	case r.ctx.Err() != nil:
		return nil, r.ctx.Err(), false
	}
	if ee, ok := werr.(*exec.ExitError); ok && !ee.Exited() {
		return nil, fmt.Errorf("rendering stopped (%v): the template uses too much memory or CPU", ee.ProcessState), false
	}
	first, _, _ := bytes.Cut(bytes.TrimSpace(c.stderr.Bytes()), []byte("\n"))
	// The Go runtime's words for an allocation the rlimit refused (and
	// the race detector's, in race-enabled test binaries).
	if bytes.Contains(first, []byte("out of memory")) || bytes.Contains(first, []byte("cannot allocate memory")) || bytes.Contains(first, []byte("failed to allocate")) {
		return nil, fmt.Errorf("rendering stopped: the template uses too much memory (over %d MB)", renderChildMemory>>20), false
	}
	if werr == nil {
		werr = err
	}
	return nil, fmt.Errorf("render process: %w: %s", werr, first), false
}

// kill ends the child and waits for it; it returns Wait's error.
func (c *renderChild) kill() error {
	c.cmd.Process.Kill()
	return c.cmd.Wait()
}

// close ends the child (it exits at the end of its input) and waits for
// it. Every render must have returned. The renderer can render again
// after close: it starts a new child.
func (r *renderer) close() {
	r.mu.Lock()
	c := r.child
	r.child = nil
	r.mu.Unlock()
	if c == nil {
		return
	}
	c.stdin.Close()
	t := time.AfterFunc(time.Second, func() { c.cmd.Process.Kill() })
	c.cmd.Wait()
	t.Stop()
}

// selfExecutable is the running binary. On Linux /proc/self/exe still
// starts it after the file was replaced on disk (an upgrade while the
// daemon runs), so parent and child are always the same build.
func selfExecutable() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// cappedBuffer keeps the first max bytes written and drops the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// wireValue carries a decoded YAML value to the child with its Go type
// intact (JSON alone would turn every int into a float64).
type wireValue struct {
	Kind string               `json:"k"` // nil, bool, int, uint, float, string, time, list, map
	S    string               `json:"s,omitempty"`
	I    int64                `json:"i,omitempty"`
	U    uint64               `json:"u,omitempty"`
	F    float64              `json:"f,omitempty"`
	B    bool                 `json:"b,omitempty"`
	L    []wireValue          `json:"l,omitempty"`
	M    map[string]wireValue `json:"m,omitempty"`
}

func encodeWire(v any) (wireValue, error) {
	switch x := v.(type) {
	case nil:
		return wireValue{Kind: "nil"}, nil
	case bool:
		return wireValue{Kind: "bool", B: x}, nil
	case int:
		return wireValue{Kind: "int", I: int64(x)}, nil
	case uint64:
		return wireValue{Kind: "uint", U: x}, nil
	case float64:
		return wireValue{Kind: "float", F: x}, nil
	case string:
		return wireValue{Kind: "string", S: x}, nil
	case time.Time:
		return wireValue{Kind: "time", S: x.Format(time.RFC3339Nano)}, nil
	case []any:
		out := wireValue{Kind: "list", L: make([]wireValue, len(x))}
		for i, e := range x {
			w, err := encodeWire(e)
			if err != nil {
				return wireValue{}, err
			}
			out.L[i] = w
		}
		return out, nil
	case map[string]any:
		out := wireValue{Kind: "map", M: make(map[string]wireValue, len(x))}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w, err := encodeWire(x[k])
			if err != nil {
				return wireValue{}, err
			}
			out.M[k] = w
		}
		return out, nil
	}
	return wireValue{}, fmt.Errorf("a var of type %T cannot be passed to a template: use strings, numbers, booleans, lists and maps with string keys", v)
}

func (w wireValue) decode() (any, error) {
	switch w.Kind {
	case "nil":
		return nil, nil
	case "bool":
		return w.B, nil
	case "int":
		return int(w.I), nil
	case "uint":
		return w.U, nil
	case "float":
		return w.F, nil
	case "string":
		return w.S, nil
	case "time":
		return time.Parse(time.RFC3339Nano, w.S)
	case "list":
		out := make([]any, len(w.L))
		for i, e := range w.L {
			v, err := e.decode()
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case "map":
		out := make(map[string]any, len(w.M))
		for k, e := range w.M {
			v, err := e.decode()
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown var kind %q", w.Kind)
}
