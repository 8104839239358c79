package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/internal/commitsha"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

func init() {
	register(&command{name: "apply", summary: "apply a commit to the servers: plan, confirm, roll out with zero downtime", run: runApply})
}

// sshFlags say how bosun reaches servers.
type sshFlags struct {
	keys       stringList
	knownHosts string
	tofu       bool
	parallel   int
}

func (sf *sshFlags) register(fs flagSet) {
	fs.Var(&sf.keys, "ssh-key", "private key `file` for SSH (repeatable; default ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist; the SSH agent is used too)")
	fs.StringVar(&sf.knownHosts, "known-hosts", "", "known_hosts `file` that vouches for the servers' host keys (default ~/.ssh/known_hosts)")
	fs.BoolVar(&sf.tofu, "trust-on-first-use", false, "record the host key of a server not in known_hosts instead of refusing it")
	fs.IntVar(&sf.parallel, "concurrency", executor.DefaultConcurrency, "how many servers to work on at once")
}

// executor builds an Executor that records into st (nil: nothing recorded).
func (sf *sshFlags) executor(e env, st state.Store, secrets planner.SecretSource, progress func(executor.Event)) (*executor.Executor, error) {
	if sf.parallel < 1 {
		return nil, fmt.Errorf("--concurrency %d: must be at least 1", sf.parallel)
	}
	cfg := executor.Config{
		KeyFiles:        sf.keys,
		AgentSocket:     e.getenv("SSH_AUTH_SOCK"),
		KnownHostsFile:  sf.knownHosts,
		TrustOnFirstUse: sf.tofu,
		Concurrency:     sf.parallel,
		Secrets:         secrets,
		Progress:        progress,
		ProxyImage:      e.getenv("BOSUN_PROXY_IMAGE"),
		ProxyRepository: e.getenv("BOSUN_PROXY_REPOSITORY"),
		ProxyBinary:     e.getenv("BOSUN_PROXY_BINARY"),
		Version:         buildVersion(),
		Logger:          cliLogger(e),
	}
	if st != nil {
		cfg.Store = st
	}
	return executor.New(cfg)
}

func runApply(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("apply", "bosun apply --repo PATH_OR_URL [--ref REF] [--yes] [flags]", `
Plan a commit of the config repository against the applied state, print the
plan, ask for confirmation (unless --yes), then roll the changed services
out: per host pull, start, health check, proxy switch, stop the old
container. Progress is shown per host and step as it happens, then a
summary. If any host fails, the rollout stops, every host already switched
goes back to its previous version, and apply exits 1 naming the host, the
step and why.

Secrets named by services' env.secret are read from the environment, then
from --secrets-file files; a missing one is an error before anything runs.
With --dry-run, apply only plans (as bosun plan does).

On a server that Kamal manages (a kamal-proxy container on ports 80/443,
Kamal's containers serving), apply takes over: it starts and health-checks
the new containers behind a bosun-proxy without ports, then stops
kamal-proxy and gives bosun-proxy its ports, and stops Kamal's containers of
the deployed services. They are kept; --remove-kamal removes kamal-proxy
and those stopped containers (Kamal's data directories and volumes always
stay). See docs/migrating-from-kamal.md.`, e)
	var rf repoFlags
	rf.register(fs)
	var sf sshFlags
	sf.register(fs)
	dsn := stateFlag(fs, e)
	initStore := initFlag(fs)
	yes := fs.Bool("yes", false, "apply without asking")
	dryRun := fs.Bool("dry-run", false, "print the plan and exit (0 nothing to do, 2 changes)")
	lockWait := fs.Duration("lock-wait", 10*time.Minute, "how long to wait for another rollout of the same service to finish")
	removeKamal := fs.Bool("remove-kamal", false, "after a successful takeover from Kamal, remove kamal-proxy and Kamal's stopped containers of the deployed services (also on a plan with nothing to change)")
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 0 {
		return 1, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secrets, _, head, err := rf.load(ctx, e)
	if err != nil {
		return 1, err
	}
	st, err := openStore(ctx, *dsn, *initStore)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	plan, err := planFromStore(ctx, st, secrets, rf.repoName(), head, !*dryRun)
	if err != nil {
		return 1, printConfigErrors(e, err)
	}
	if _, err := plan.WriteTo(e.stdout); err != nil {
		return 1, err
	}
	if plan.Empty() && (!*removeKamal || *dryRun) {
		return 0, nil
	}
	if *dryRun {
		return 2, nil
	}
	if !*yes {
		ok, err := confirm(e, "Apply these changes?")
		if err != nil {
			return 1, err
		}
		if !ok {
			fmt.Fprintln(e.stdout, "Nothing applied.")
			return 1, nil
		}
	}

	prog := newProgress(e.stdout)
	x, err := sf.executor(e, st, secrets, prog.event)
	if err != nil {
		return 1, err
	}
	defer x.Close()
	res, err := x.Apply(ctx, plan, executor.ApplyOpts{Trigger: "bosun apply (" + commitsha.Short(head.sha) + ")", LockWait: *lockWait, RemoveKamal: *removeKamal})
	res.WriteTo(e.stdout)
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// planFromStore plans c against the applied state and holds in st.
func planFromStore(ctx context.Context, st state.Store, secrets planner.SecretSource, repo string, c commit, requireSecrets bool) (*planner.Plan, error) {
	key, err := st.SecretKey(ctx)
	if err != nil {
		return nil, err
	}
	applied, holds, err := executor.LoadApplied(ctx, st, repo)
	if err != nil {
		return nil, err
	}
	p := planner.New(planner.Config{Secrets: secrets, SecretKey: key, RequireSecrets: requireSecrets})
	in := c.input(repo)
	in.Applied, in.Holds = applied, holds
	return p.Plan(ctx, c.fsys, in)
}

// confirm asks a yes/no question on the terminal. Without a terminal on
// stdin it refuses: a script must say --yes.
func confirm(e env, question string) (bool, error) {
	if f, ok := e.stdin.(*os.File); ok {
		if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
			return false, errors.New("stdin is not a terminal: pass --yes to apply without asking")
		}
	}
	fmt.Fprintf(e.stdout, "\n%s Type yes to continue: ", question)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "yes" || answer == "y", nil
}

// progress prints rollout events as they come, one line each, with the
// time since the rollout started.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newProgress(w io.Writer) *progress {
	fmt.Fprintln(w)
	return &progress{w: w, start: time.Now()}
}

func (p *progress) event(ev executor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%7.1fs  %s\n", time.Since(p.start).Seconds(), ev.String())
}
