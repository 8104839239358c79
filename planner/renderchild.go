package planner

import (
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
	"syscall"
	"text/template"
	"time"
)

// A template is code from the config repository, and a pull request's
// templates run when it is planned. text/template cannot be interrupted: a
// loop that prints nothing runs until it ends, and an abandoned goroutine
// keeps burning a core. So every render runs in a child process, which is
// killed at templateTimeout; Plan returns only once it is gone.
//
// The child is this same executable (os.Executable), recognised by the
// renderChildEnv variable in its environment: init below serves one render
// on stdin/stdout and exits before main runs. That makes every binary that
// links the planner (bosun, and each test binary) its own renderer with no
// subcommand to wire. The child gets no other environment (no secret can
// reach a template), one CPU (GOMAXPROCS=1), a CPU-time rlimit and an
// address-space rlimit, and its output is bounded as in-process rendering
// was (maxRendered).
const renderChildEnv = "BOSUN_PLANNER_RENDER_CHILD"

// renderChildMemory bounds the child's address space.
var renderChildMemory int64 = 2 << 30

func init() {
	if os.Getenv(renderChildEnv) == "1" {
		os.Exit(serveRender(os.Stdin, os.Stdout))
	}
}

// renderRequest is what the parent sends the child.
type renderRequest struct {
	Name    string    `json:"name"` // the template's file name, for error positions
	Source  string    `json:"source"`
	Vars    wireValue `json:"vars"`
	Timeout int64     `json:"timeout_ns"`
	Memory  int64     `json:"memory"` // address-space limit, bytes
}

// renderReply is what the child answers.
type renderReply struct {
	Out []byte `json:"out"`
	Err string `json:"err,omitempty"`
}

// serveRender is the child's side: one request in, one reply out.
func serveRender(in io.Reader, out io.Writer) int {
	var req renderRequest
	if err := json.NewDecoder(io.LimitReader(in, 64<<20)).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "render child: read request:", err)
		return 2
	}
	// Belts under the parent's kill: the kernel ends the child past its
	// CPU time, and allocations past the address-space limit fail.
	cpu := uint64(math.Ceil(time.Duration(req.Timeout).Seconds())) + 1
	syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpu, Max: cpu + 1})
	if req.Memory > 0 {
		syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: uint64(req.Memory), Max: uint64(req.Memory)})
	}
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
		reply = renderReply{Err: err.Error()}
	}
	if err := json.NewEncoder(out).Encode(reply); err != nil {
		return 2
	}
	return 0
}

// errRenderTimeout is a render stopped at templateTimeout.
var errRenderTimeout = errors.New("rendering took too long")

// renderInChild renders the template file name (source src) with vars in a
// child process, killed when ctx ends or templateTimeout passes. It returns
// after the child is gone.
func renderInChild(ctx context.Context, name, src string, vars map[string]any) ([]byte, error) {
	wv, err := encodeWire(vars)
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(renderRequest{Name: name, Source: src, Vars: wv, Timeout: int64(templateTimeout), Memory: renderChildMemory})
	if err != nil {
		return nil, err
	}
	exe, err := selfExecutable()
	if err != nil {
		return nil, fmt.Errorf("find the executable to render in: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, templateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = []string{renderChildEnv + "=1", "GOMAXPROCS=1"}
	cmd.Stdin = bytes.NewReader(req)
	stdout := &cappedBuffer{max: 4*maxRendered + 4096} // JSON's base64 of at most maxRendered bytes
	stderr := &cappedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // Run returns even if a pipe stays open
	err = cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, errRenderTimeout
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
			return nil, fmt.Errorf("rendering stopped (%v): the template uses too much memory or CPU", ee.ProcessState)
		}
		first, _, _ := bytes.Cut(bytes.TrimSpace(stderr.Bytes()), []byte("\n"))
		// The Go runtime's words for an allocation the rlimit refused (and
		// the race detector's, in race-enabled test binaries).
		if bytes.Contains(first, []byte("out of memory")) || bytes.Contains(first, []byte("cannot allocate memory")) || bytes.Contains(first, []byte("failed to allocate")) {
			return nil, fmt.Errorf("rendering stopped: the template uses too much memory (over %d MB)", renderChildMemory>>20)
		}
		return nil, fmt.Errorf("render process: %w: %s", err, first)
	}
	var reply renderReply
	if err := json.Unmarshal(stdout.Bytes(), &reply); err != nil {
		return nil, fmt.Errorf("render process: bad reply: %w", err)
	}
	if reply.Err != "" {
		return nil, errors.New(reply.Err)
	}
	return reply.Out, nil
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
