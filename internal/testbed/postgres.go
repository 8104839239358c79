package testbed

// The PostgreSQL harness: one server per test binary, started from Debian's
// binaries, and a fresh schema per test. It shares only the provisioning path
// (provision.go) with the docker harness; its own unexported names all start
// with pg.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// pgEnv names a PostgreSQL server to use instead of starting one: a DSN
	// (URL or key=value form) of a database where tests may create schemas.
	pgEnv = "BOSUN_TEST_POSTGRES"
	// pgDirPrefix names the temp directories of harness-started servers;
	// the next run removes those whose test binary is gone.
	pgDirPrefix = "bosun-pg-"
)

var (
	pgOnce   sync.Once
	pgMu     sync.Mutex  // guards pgServer after pgOnce
	pgServer *pgInstance // the server this test binary started, if any
	pgBase   string      // DSN of the database tests make schemas in
	pgErr    error       // why no server could be had
)

// pgInstance is a PostgreSQL server started by this test binary.
type pgInstance struct {
	dir  string        // temp dir: data/, sock/, postgres.log, owner
	cmd  *exec.Cmd     // the postmaster
	done chan struct{} // closed when the postmaster has exited
}

// Postgres returns the DSN of a fresh, empty schema on a PostgreSQL server,
// for one test: a URL whose search_path parameter names the schema, so every
// connection made with it (pgx, bosun's state store, River) creates and finds
// its tables there. The schema is dropped at t.Cleanup.
//
// The server is the one named by $BOSUN_TEST_POSTGRES (a DSN of a database in
// which the test may create schemas) or, when that is unset, one PostgreSQL
// started once per test binary from Debian's binaries
// (/usr/lib/postgresql/*/bin or initdb and postgres in PATH, installing the
// postgresql package with apt-get when they are missing): initdb into a temp
// dir, run as the postgres user (nobody when there is none) when the tests
// run as root, listening on 127.0.0.1 on a free port and on a
// unix socket in the temp dir. That server stops when the test binary exits:
// cleanly when the package's TestMain uses PostgresMain (or calls
// StopPostgres), and otherwise by a parent-death signal; a later run removes
// the data directory of a server that was not stopped cleanly.
//
// Under -short the test is skipped. When no server can be had the test is
// skipped, or fails when BOSUN_TEST_REQUIRE=1.
func Postgres(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped under -short")
	}
	base, err := pgEnsure()
	if err != nil {
		pgSkipOrFail(t, err)
	}
	schema := "bosun_" + pgRandomHex(6)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := pgExec(ctx, base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	dsn, err := pgWithSearchPath(base, schema)
	if err != nil {
		t.Fatalf("test schema DSN: %v", err)
	}
	return dsn
}

// PostgresMain runs the tests of a package and then stops the PostgreSQL
// server that Postgres started for them, if any. Use it as the package's
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testbed.PostgresMain(m)) }
func PostgresMain(m *testing.M) int {
	code := m.Run()
	StopPostgres()
	return code
}

// StopPostgres stops the server that Postgres started for this test binary
// and removes its data directory. It does nothing when none was started, and
// Postgres cannot be used after it. A TestMain that does more than
// PostgresMain calls it after m.Run.
func StopPostgres() {
	pgOnce.Do(func() { pgErr = errors.New("PostgreSQL harness already stopped") })
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgServer == nil {
		return
	}
	pgServer.stop()
	pgServer = nil
	pgErr = errors.New("PostgreSQL harness already stopped")
}

// pgSkipOrFail ends a test that cannot have PostgreSQL: a skip, or a failure
// under BOSUN_TEST_REQUIRE=1.
func pgSkipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("BOSUN_TEST_REQUIRE") == "1" {
		t.Fatalf("BOSUN_TEST_REQUIRE=1 and no PostgreSQL: %v", err)
	}
	t.Skipf("no PostgreSQL (set BOSUN_TEST_REQUIRE=1 to fail instead): %v", err)
}

// pgEnsure returns the base DSN, starting the server on the first call.
func pgEnsure() (string, error) {
	pgOnce.Do(func() {
		if dsn := os.Getenv(pgEnv); dsn != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pgExec(ctx, dsn, "SELECT 1"); err != nil {
				pgErr = fmt.Errorf("connect to $%s: %w", pgEnv, err)
				return
			}
			pgBase = dsn
			return
		}
		inst, dsn, err := pgStart()
		pgMu.Lock()
		pgServer, pgBase, pgErr = inst, dsn, err
		pgMu.Unlock()
	})
	pgMu.Lock()
	defer pgMu.Unlock()
	return pgBase, pgErr
}

// pgStart provisions the binaries and starts a server in a new temp dir.
func pgStart() (*pgInstance, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := pgBinDir(ctx)
	if err != nil {
		return nil, "", err
	}
	pgSweep()
	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user
		// its package makes or, for binaries that came without one, as
		// nobody (it owns the temp dir and nothing else).
		u, err := user.Lookup("postgres")
		if err != nil {
			if u, err = user.Lookup("nobody"); err != nil {
				return nil, "", fmt.Errorf("find a user to run the server as (postgres or nobody): %w", err)
			}
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	dir, err := os.MkdirTemp("", pgDirPrefix)
	if err != nil {
		return nil, "", fmt.Errorf("create postgres temp dir: %w", err)
	}
	fail := func(err error) (*pgInstance, string, error) {
		os.RemoveAll(dir)
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fail(fmt.Errorf("write postgres owner file: %w", err))
	}
	sock := filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fail(fmt.Errorf("create postgres socket dir: %w", err))
	}
	if cred != nil {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(fmt.Errorf("chown %s to postgres: %w", p, err))
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, pgTail(out)))
	}
	var lastErr error
	for range 3 { // a free port can be taken between our probe and the server's bind
		port, err := pgFreePort()
		if err != nil {
			return fail(err)
		}
		inst, err := pgRun(ctx, bin, dir, port, cred)
		if err == nil {
			return inst, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
		}
		lastErr = err
	}
	return fail(lastErr)
}

// pgRun starts the postmaster on port and waits until it accepts
// connections.
func pgRun(ctx context.Context, bin, dir string, port int, cred *syscall.Credential) (*pgInstance, error) {
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create postgres log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(dir, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", filepath.Join(dir, "sock"),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "lc_messages=C")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: if the test binary dies
	// without stopping the server, the kernel sends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	inst := &pgInstance{dir: dir, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that forked the
		// child exits, not the process: keep this goroutine on its own
		// thread for as long as the server runs.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(inst.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", port)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pgExec(cctx, dsn, "SELECT 1")
		cancel()
		if err == nil {
			return inst, nil
		}
		select {
		case <-inst.done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres exited at start: %s", pgTail(out))
		case <-ctx.Done():
			inst.stop()
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("postgres did not accept connections: %w: %v: %s", ctx.Err(), err, pgTail(out))
		case <-tick.C: // the server gives no signal of readiness but its port
		}
	}
}

// stop asks for a fast shutdown, waits for it, and removes the directory.
func (p *pgInstance) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(p.dir)
}

// pgBinDir finds the directory with initdb and postgres, installing Debian's
// postgresql package when there is none (through the harness's one
// provisioning path, see EnsureCommand).
func pgBinDir(ctx context.Context) (string, error) {
	dir, err := provision(ctx, nil, "PostgreSQL (initdb and postgres under /usr/lib/postgresql/*/bin or in PATH)", "postgresql", pgFindBin)
	if err != nil {
		return "", fmt.Errorf("%w (or set %s)", err, pgEnv)
	}
	return dir, nil
}

// pgFindBin returns the bin directory of the newest PostgreSQL under
// /usr/lib/postgresql, else the directory of initdb in PATH, else "".
func pgFindBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if pgIsExec(filepath.Join(d, "initdb")) && pgIsExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && pgIsExec(filepath.Join(filepath.Dir(p), "postgres")) {
		return filepath.Dir(p)
	}
	return ""
}

func pgIsExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// pgSweep removes the temp dirs of servers whose test binary has exited
// without stopping them, stopping such a server if it still runs.
func pgSweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pgDirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue // not ours, or being set up
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(owner))); err != nil || pgAlive(pid) {
			continue
		}
		if pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(pidFile), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pgAlive(pid) {
				// Only if it is that server: the pid may have been reused.
				if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && bytes.Contains(cmdline, []byte(dir)) {
					_ = syscall.Kill(pid, syscall.SIGQUIT)
				}
			}
		}
		os.RemoveAll(dir)
	}
}

func pgAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// pgFreePort asks the kernel for a free port on 127.0.0.1.
func pgFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pgExec runs one statement on a new connection.
func pgExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// pgWithSearchPath returns dsn as a URL (the form bosun's --state takes)
// with search_path=schema added. A key=value DSN becomes
// postgres:///?key=value&…, which pgx reads alike.
func pgWithSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("parse postgres URL: malformed") // url's error would quote the password
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	q, err := pgParseKV(dsn)
	if err != nil {
		return "", err
	}
	q.Set("search_path", schema)
	return "postgres:///?" + q.Encode(), nil
}

// pgParseKV parses a key=value connection string: values may be
// single-quoted, with \' and \\ escapes inside.
func pgParseKV(s string) (url.Values, error) {
	q := url.Values{}
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			return q, nil
		}
		key, rest, ok := strings.Cut(s, "=")
		if !ok || strings.ContainsAny(key, " \t\n") || key == "" {
			return nil, errors.New("parse postgres key=value DSN: expected key=value")
		}
		rest = strings.TrimLeft(rest, " \t")
		var val strings.Builder
		if strings.HasPrefix(rest, "'") {
			i, closed := 1, false
			for ; i < len(rest); i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					val.WriteByte(rest[i])
					continue
				}
				if rest[i] == '\'' {
					closed = true
					break
				}
				val.WriteByte(rest[i])
			}
			if !closed {
				return nil, errors.New("parse postgres key=value DSN: unterminated quote")
			}
			s = rest[i+1:]
		} else {
			end := strings.IndexAny(rest, " \t\n")
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(rest[:end])
			s = rest[end:]
		}
		q.Set(key, val.String())
	}
}

func pgRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pgTail returns the last lines of a command's output for an error message.
func pgTail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}
