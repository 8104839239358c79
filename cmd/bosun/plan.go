package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/watcher"
)

func init() {
	register(&command{name: "plan", summary: "show what applying a commit would change (exit 0: nothing, 2: changes)", run: runPlan})
}

// repoFlags are the flags that say which config a command reads.
type repoFlags struct {
	repo, ref, path, name string
	worktree              bool
	secretFiles           stringList
	destination           string
	erbEnv                stringList
}

func (rf *repoFlags) register(fs flagSet) {
	fs.StringVar(&rf.repo, "repo", ".", "config `repository`: a local path, file:// URL, or a git URL")
	fs.StringVar(&rf.ref, "ref", "HEAD", "branch, tag or commit to read")
	fs.StringVar(&rf.path, "path", ".", "the config repository's `folder` inside the git repository")
	fs.StringVar(&rf.name, "name", "", "the repository's `name` in the state store (default: the last element of --repo, without .git)")
	fs.BoolVar(&rf.worktree, "worktree", false, "read the working tree of a local repository instead of a commit (uncommitted files included)")
	fs.Var(&rf.secretFiles, "secrets-file", "dotenv `file` of secret values (repeatable; the environment is read first, then these files in order)")
	fs.StringVar(&rf.destination, "destination", "", "Kamal `destination`: merge services/NAME.DEST.yml over services/NAME.yml (as kamal -d DEST)")
	fs.Var(&rf.erbEnv, "erb-env", "environment variable `NAME` that ERB lookups (<%= ENV[\"NAME\"] %>) in service files may read (repeatable; no other is visible)")
}

// repoName is the name a repository is stored under: --name, else the last
// path element of the source without ".git".
func (rf *repoFlags) repoName() string {
	if rf.name != "" {
		return rf.name
	}
	src := rf.repo
	if !strings.Contains(src, "://") && !strings.Contains(src, "@") {
		if abs, err := filepath.Abs(src); err == nil {
			src = abs // "." names the folder it is
		}
	}
	src = strings.TrimSuffix(strings.TrimRight(watcher.Redact(src), "/"), ".git")
	if i := strings.LastIndexAny(src, "/:"); i >= 0 {
		src = src[i+1:]
	}
	if src == "" || src == "." {
		return "default"
	}
	return src
}

// commit is one config revision read from a repository, and how to read
// its Kamal files.
type commit struct {
	fsys fs.FS
	sha  string // "worktree" for --worktree
	dest string
	erb  map[string]string
}

// input is the planner input for c in repository repo.
func (c commit) input(repo string) planner.Input {
	return planner.Input{Repo: repo, Commit: c.sha, Destination: c.dest, ERBEnv: c.erb}
}

// open opens the repository and reads ref (or the working tree).
func (rf *repoFlags) open(ctx context.Context) (*watcher.Repo, error) {
	return watcher.Open(ctx, rf.repo)
}

// load reads the secrets and the commit (or working tree) the flags name.
// The repository stays open for further reads (plan --base).
func (rf *repoFlags) load(ctx context.Context, e env) (planner.SecretSource, *watcher.Repo, commit, error) {
	secrets, err := planner.LoadSecrets(e.getenv, planner.SecretSources{Files: rf.secretFiles, AllEnv: true})
	if err != nil {
		return nil, nil, commit{}, err
	}
	repo, err := rf.open(ctx)
	if err != nil {
		return nil, nil, commit{}, err
	}
	c, err := rf.read(repo, rf.ref, rf.worktree)
	c.dest, c.erb = rf.destination, planner.ERBEnvFrom(e.getenv, rf.erbEnv)
	return secrets, repo, c, err
}

func (rf *repoFlags) read(r *watcher.Repo, ref string, worktree bool) (commit, error) {
	if worktree {
		fsys, err := r.Worktree(rf.path)
		return commit{fsys: fsys, sha: "worktree"}, err
	}
	sha, err := r.Resolve(ref)
	if err != nil {
		return commit{}, err
	}
	fsys, err := r.FS(sha, path.Clean(rf.path))
	return commit{fsys: fsys, sha: sha}, err
}

func runPlan(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("plan", "bosun plan --repo PATH_OR_URL [--ref REF] [--base REF | --state DSN] [--json]", `
Read the config at a commit through git and print what applying it would do
to each target (service, role, host): create, update (with the changed
fields), remove, unchanged or held. Secret values are never printed: a
changed secret shows as "(changed)".

The applied state comes from the state store (--state), or with --base from
what that commit describes, so a CI job can plan a pull request without a
daemon: bosun plan --repo . --base origin/main --ref HEAD

Exit status: 0 no changes, 2 changes, 1 error (an invalid config prints every
error as file:line:col).`, e)
	var rf repoFlags
	rf.register(fs)
	base := fs.String("base", "", "plan against what commit `REF` describes instead of the state store")
	asJSON := fs.Bool("json", false, "print the plan as a JSON document (see docs/plan-json.md)")
	markdown := fs.Bool("markdown", false, "print the plan as Markdown, as posted on pull requests")
	dsn := stateFlag(fs, e)
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return code, err
	}
	if fs.NArg() > 0 {
		return 1, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secrets, repo, head, err := rf.load(ctx, e)
	if err != nil {
		return 1, err
	}

	in := head.input(rf.repoName())
	var key []byte
	if *base != "" {
		// Both sides are hashed in this process: any key compares them.
		key = make([]byte, 32)
		rand.Read(key)
		baseCommit, err := rf.read(repo, *base, false)
		if err != nil {
			return 1, fmt.Errorf("base: %w", err)
		}
		baseCommit.dest, baseCommit.erb = head.dest, head.erb
		applied, err := describedState(ctx, planner.Config{Secrets: secrets, SecretKey: key}, baseCommit, in.Repo)
		if err != nil {
			return 1, fmt.Errorf("base %s: %w", *base, err)
		}
		in.Applied = applied
	} else {
		st, err := openStore(ctx, *dsn, false)
		if err != nil {
			return 1, err
		}
		defer st.Close()
		if key, err = st.SecretKey(ctx); err != nil {
			return 1, err
		}
		if in.Applied, in.Holds, err = executor.LoadApplied(ctx, st, in.Repo); err != nil {
			return 1, err
		}
	}

	p := planner.New(planner.Config{Secrets: secrets, SecretKey: key})
	plan, err := p.Plan(ctx, head.fsys, in)
	if err != nil {
		return 1, printConfigErrors(e, err)
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(plan); err != nil {
			return 1, err
		}
	case *markdown:
		if err := plan.WriteMarkdown(e.stdout); err != nil {
			return 1, err
		}
	default:
		if _, err := plan.WriteTo(e.stdout); err != nil {
			return 1, err
		}
	}
	if plan.Empty() {
		return 0, nil
	}
	return 2, nil
}

// describedState is the applied state a commit describes: every target it
// declares, as if it had been applied.
func describedState(ctx context.Context, cfg planner.Config, c commit, repo string) ([]planner.Applied, error) {
	plan, err := planner.New(cfg).Plan(ctx, c.fsys, c.input(repo))
	if err != nil {
		return nil, err
	}
	var out []planner.Applied
	for _, ch := range plan.Changes {
		if ch.Desired != nil {
			a := planner.Applied{Target: ch.Target, Version: ch.Version, Commit: c.sha, Spec: *ch.Desired}
			if h, ok := plan.Hosts[ch.Host]; ok {
				a.Conn = &h
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// printConfigErrors prints every error of an invalid commit, one per line,
// and returns nil; any other error is returned as it is.
func printConfigErrors(e env, err error) error {
	var cerrs planner.ConfigErrors
	if !errors.As(err, &cerrs) {
		return err
	}
	for _, ce := range cerrs {
		fmt.Fprintln(e.stdout, ce.Error())
	}
	return fmt.Errorf("the config has %d error(s)", len(cerrs))
}
