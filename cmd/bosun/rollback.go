package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/bosunhq/bosun/dashboard"
	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
)

func init() {
	register(&command{name: "rollback", summary: "put a service back on an earlier version now, and hold it there", run: runRollback})
	register(&command{name: "hold", summary: "stop automatic deploys of a service at its current version", run: runHold})
	register(&command{name: "release", summary: "end a hold: the service follows git again", run: runRelease})
}

func runRollback(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("rollback", "bosun rollback SERVICE [--to VERSION] --repo PATH_OR_URL [flags]", `
The emergency way back: deploy an earlier applied spec of SERVICE (by
default the newest version other than the one running; --to picks one,
see bosun history or bosun status --all) and put a hold on the service, so
that automatic deploys do not undo it. Hosts that still have the retained
container of that version restart it without a pull.

The hold ends with bosun release SERVICE, or by itself when a commit whose
desired spec equals the held one (the revert was merged) is applied, by
bosun apply or the daemon, and the service's rollout succeeds. The GitOps
way back is to revert the commit.`, e)
	var rf repoFlags
	rf.register(fs)
	var sf sshFlags
	sf.register(fs)
	dsn := stateFlag(fs, e)
	to := fs.String("to", "", "the `VERSION` to go back to (default: the previous one)")
	yes := fs.Bool("yes", false, "roll back without asking")
	reason := fs.String("reason", "", "why, recorded with the hold")
	service, code, err := parseServiceArgs(fs, args, e)
	if code >= 0 {
		return code, err
	}
	secrets, _, c, err := rf.load(ctx, e)
	if err != nil {
		return 1, err
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	name := rf.repoName()
	desired, err := planFromStore(ctx, st, secrets, name, c, false)
	if err != nil {
		return 1, printConfigErrors(e, err)
	}
	history, err := executor.LoadHistory(ctx, st, name, service)
	if err != nil {
		return 1, err
	}
	plan, err := planner.RollbackFrom(desired, service, history, *to)
	if err != nil {
		return 1, err
	}
	if _, err := plan.WriteTo(e.stdout); err != nil {
		return 1, err
	}
	if !*yes {
		ok, err := confirm(e, "Roll back "+service+"?")
		if err != nil || !ok {
			return 1, err
		}
	}
	prog := newProgress(e.stdout)
	x, err := sf.executor(e, st, secrets, prog.event)
	if err != nil {
		return 1, err
	}
	defer x.Close()
	actor := cliActor(e)
	res, err := x.Apply(ctx, plan, executor.ApplyOpts{Trigger: "bosun rollback by " + actor, Actor: actor, LockWait: 10 * time.Minute})
	res.WriteTo(e.stdout)
	if err != nil {
		return 1, err
	}
	held := plan.HeldVersion(service)
	if err := st.PutHold(ctx, state.Hold{Repo: name, Service: service, Version: held, Reason: holdReason(*reason, "rollback"), CreatedAt: time.Now().UTC()}); err != nil {
		return 1, fmt.Errorf("rolled back, but the hold was not recorded (an automatic deploy may undo it): %w", err)
	}
	recordAction(ctx, e, st, state.Action{Action: dashboard.ActionRollback, Repo: name, Service: service, Detail: "to " + held + reasonSuffix(*reason)})
	fmt.Fprintf(e.stdout, "%s is held at %s; bosun release %s ends the hold.\n", service, held, service)
	return 0, nil
}

func holdReason(given, dflt string) string {
	if given != "" {
		return given
	}
	return dflt
}

func runHold(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("hold", "bosun hold SERVICE [--repo PATH_OR_URL | --name NAME] [--reason TEXT]", `
Hold SERVICE at the version it runs now: plans show its targets as "held"
and nothing deploys it until bosun release SERVICE, or until a commit whose
desired spec equals the held one is applied (bosun apply or the daemon) and
the service's rollout succeeds. The config repository is named as for apply.`, e)
	dsn := stateFlag(fs, e)
	repoName := nameFlags(fs)
	reason := fs.String("reason", "", "why, shown in plans")
	service, code, err := parseServiceArgs(fs, args, e)
	if code >= 0 {
		return code, err
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	name, version, err := runningVersion(ctx, st, repoName.repoName(), service)
	if err != nil {
		return 1, err
	}
	if err := st.PutHold(ctx, state.Hold{Repo: name, Service: service, Version: version, Reason: holdReason(*reason, "hold"), CreatedAt: time.Now().UTC()}); err != nil {
		return 1, err
	}
	recordAction(ctx, e, st, state.Action{Action: dashboard.ActionHold, Repo: name, Service: service, Detail: "at " + version + reasonSuffix(*reason)})
	fmt.Fprintf(e.stdout, "%s (%s) is held at %s.\n", service, name, version)
	return 0, nil
}

func runRelease(ctx context.Context, args []string, e env) (int, error) {
	fs := newFlagSet("release", "bosun release SERVICE [--repo PATH_OR_URL | --name NAME]", `
End the hold on SERVICE: the next deploy brings it to what git says. The
config repository is named as for apply.`, e)
	dsn := stateFlag(fs, e)
	repoName := nameFlags(fs)
	service, code, err := parseServiceArgs(fs, args, e)
	if code >= 0 {
		return code, err
	}
	st, err := openStore(ctx, *dsn, false)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	name, _, err := runningVersion(ctx, st, repoName.repoName(), service)
	if err != nil {
		return 1, err
	}
	if err := st.DeleteHold(ctx, name, service); err != nil {
		return 1, err
	}
	recordAction(ctx, e, st, state.Action{Action: dashboard.ActionRelease, Repo: name, Service: service})
	fmt.Fprintf(e.stdout, "%s (%s) is released; the next deploy follows git.\n", service, name)
	return 0, nil
}

// nameFlags registers --repo and --name, which name a config repository in
// the store as apply does, for commands that do not read it.
func nameFlags(fs *flag.FlagSet) *repoFlags {
	rf := &repoFlags{}
	fs.StringVar(&rf.repo, "repo", ".", "config `repository` (its name in the store is derived as for apply)")
	fs.StringVar(&rf.name, "name", "", "the repository's `name` in the state store (default: the last element of --repo, without .git)")
	return rf
}

// runningVersion returns the version service runs from repository repo.
func runningVersion(ctx context.Context, st state.Store, repo, service string) (string, string, error) {
	rows, err := st.ListApplied(ctx, repo)
	if err != nil {
		return "", "", err
	}
	for _, r := range rows {
		if r.Service == service {
			return repo, r.Version, nil
		}
	}
	return "", "", fmt.Errorf("service %q has never been applied from repository %q (name another with --repo or --name)", service, repo)
}

// parseServiceArgs parses flags before or after exactly one SERVICE
// argument. code is -1 when the command should go on.
func parseServiceArgs(fs *flag.FlagSet, args []string, e env) (service string, code int, err error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		service, args = args[0], args[1:]
	}
	if code, err := parseFlags(fs, args, e); code >= 0 {
		return "", code, err
	}
	rest := fs.Args()
	if service == "" && len(rest) > 0 {
		service, rest = rest[0], rest[1:]
	}
	if service == "" {
		return "", 1, errors.New("name the service: " + fs.Name() + " SERVICE")
	}
	if len(rest) > 0 {
		return "", 1, fmt.Errorf("unexpected argument %q", rest[0])
	}
	return service, -1, nil
}

// cliActor names the person at the terminal in actions and events:
// cli:$USER, or cli.
func cliActor(e env) string {
	if u := e.getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// recordAction records an action taken with the CLI, for the dashboard's
// History. The action is done by then: a failure to record it is a warning.
func recordAction(ctx context.Context, e env, st state.Store, a state.Action) {
	a.Actor = cliActor(e)
	if _, err := st.AddAction(ctx, a); err != nil {
		fmt.Fprintf(e.stderr, "bosun: warning: the %s was not recorded for History: %v\n", a.Action, err)
	}
}

func reasonSuffix(why string) string {
	if why == "" {
		return ""
	}
	return ": " + why
}
