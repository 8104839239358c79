package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/riverqueue/river"

	"github.com/bosunhq/bosun/executor"
	"github.com/bosunhq/bosun/planner"
	"github.com/bosunhq/bosun/state"
	"github.com/bosunhq/bosun/webhook"
)

// What the dashboard's new-service form and rollback action ask of the
// daemon: a repository's config at its head, the planner's verdict on a
// would-be commit, a pull request on the forge, and a rollback.

// ErrNoForge is returned by Propose for a repository that reports to no
// forge (no forge: section, or no forge_repo).
var ErrNoForge = errors.New("the repository reports to no forge")

// Head fetches repo and returns its config folder at the head of the
// tracked branch, and that commit.
func (d *Daemon) Head(ctx context.Context, repo string) (fs.FS, string, error) {
	rr := d.repo(repo)
	if rr == nil {
		return nil, "", fmt.Errorf("no repository %s", repo)
	}
	rev, err := rr.w.Sync(ctx)
	if err != nil {
		return nil, "", err
	}
	fsys, err := rr.w.FetchCommit(ctx, rev.SHA, rr.cfg.Path)
	if err != nil {
		return nil, "", err
	}
	return fsys, rev.SHA, nil
}

// Check plans fsys, a would-be config folder of repo based on commit sha,
// as a pull request is planned (secrets need not resolve). Mistakes come
// back as planner.ConfigErrors; nil means bosun can plan it.
func (d *Daemon) Check(ctx context.Context, repo, sha string, fsys fs.FS) error {
	rr := d.repo(repo)
	if rr == nil {
		return fmt.Errorf("no repository %s", repo)
	}
	_, err := d.plan(ctx, rr, sha, fsys, false)
	return err
}

// Propose opens a pull request on repo's forge repository into its
// tracked branch: p.Files are paths inside the config folder (the
// repository's path:), p.Repo and p.Base are filled in.
func (d *Daemon) Propose(ctx context.Context, repo string, p webhook.Proposal) (webhook.ProposedPR, error) {
	rr := d.repo(repo)
	if rr == nil {
		return webhook.ProposedPR{}, fmt.Errorf("no repository %s", repo)
	}
	if d.deps.Reporter == nil || rr.cfg.ForgeRepo == "" {
		return webhook.ProposedPR{}, fmt.Errorf("propose on %s: %w", repo, ErrNoForge)
	}
	files := map[string][]byte{}
	for f, b := range p.Files {
		files[path.Join(rr.cfg.Path, f)] = b
	}
	p.Repo, p.Base, p.Files = rr.cfg.ForgeRepo, rr.cfg.Branch, files
	return d.deps.Reporter.Propose(ctx, p)
}

// RollbackArgs is the job that puts a service back on an earlier applied
// version and holds it there, as bosun rollback does, asked by Actor.
type RollbackArgs struct {
	Repo    string `json:"repo"`
	Service string `json:"service"`
	To      string `json:"to,omitempty"` // the version; "" for the one before the running one
	Actor   string `json:"actor"`
	Reason  string `json:"reason,omitempty"`
}

// Kind is River's job kind.
func (RollbackArgs) Kind() string { return "bosun_rollback" }

// InsertOpts runs a rollback once: a failed one is reported in its
// deployment, and a person decides what next.
func (RollbackArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

// Rollback queues a rollback of service in repo to version to ("" for the
// previous one), asked by actor. What it can check at once is checked
// here: the repository, and that the service has a version to go back to.
func (d *Daemon) Rollback(ctx context.Context, repo, service, to, actor, reason string) error {
	if d.repo(repo) == nil {
		return fmt.Errorf("rollback: no repository %s", repo)
	}
	if d.q == nil {
		return errors.New("rollback: the daemon is not running")
	}
	vs, err := d.deps.Store.ListVersions(ctx, repo, service)
	if err != nil {
		return err
	}
	found := false
	for _, v := range vs {
		found = found || to == "" || v.Version == to
	}
	if !found || len(vs) == 0 {
		what := "any version"
		if to != "" {
			what = "version " + to
		}
		return fmt.Errorf("rollback: %s never ran %s from %s: %w", service, what, repo, ErrNoVersion)
	}
	return d.insert(ctx, RollbackArgs{Repo: repo, Service: service, To: to, Actor: actor, Reason: reason})
}

// ErrNoVersion is returned by Rollback when the service never ran the
// version asked for (or never ran at all); it is state.ErrNotFound.
var ErrNoVersion = state.ErrNotFound

// workRollback runs a rollback under the repository's sync lock, so no
// sync deploys git's version between the rollback and its hold.
func (d *Daemon) workRollback(ctx context.Context, owner string, args RollbackArgs) error {
	rr := d.repo(args.Repo)
	if rr == nil {
		return river.JobCancel(fmt.Errorf("repository %s is no longer configured", args.Repo))
	}
	log := d.log.With("repo", args.Repo, "service", args.Service, "actor", args.Actor)
	lock := "sync:" + args.Repo
	ok, _, err := d.deps.Store.AcquireLock(ctx, lock, owner, repoLockLease)
	if err != nil {
		return err
	}
	if !ok {
		return river.JobSnooze(time.Second)
	}
	ctx, release := state.HoldLock(ctx, d.deps.Store, lock, owner, repoLockLease, fmt.Errorf("%w: the lock of %s", errLeaseLost, args.Repo), d.log)
	defer release()
	err = d.rollback(ctx, rr, args)
	if err != nil {
		log.ErrorContext(ctx, "rollback failed", "err", err)
		return river.JobCancel(err)
	}
	return nil
}

func (d *Daemon) rollback(ctx context.Context, rr *repoRuntime, args RollbackArgs) error {
	rev, err := rr.w.Sync(ctx)
	if err != nil {
		return err
	}
	fsys, err := rr.w.FetchCommit(ctx, rev.SHA, rr.cfg.Path)
	if err != nil {
		return err
	}
	desired, err := d.plan(ctx, rr, rev.SHA, fsys, false)
	if err != nil {
		return err
	}
	history, err := executor.LoadHistory(ctx, d.deps.Store, rr.cfg.Name, args.Service)
	if err != nil {
		return err
	}
	plan, err := planner.RollbackFrom(desired, args.Service, history, args.To)
	if err != nil {
		return err
	}
	if _, err := d.deps.Applier.Apply(ctx, plan, executor.ApplyOpts{Trigger: "rollback by " + args.Actor, Actor: args.Actor, LockWait: time.Hour}); err != nil {
		return err
	}
	held := plan.HeldVersion(args.Service)
	reason := "rollback by " + args.Actor + " from the dashboard"
	if args.Reason != "" {
		reason += ": " + args.Reason
	}
	if err := d.deps.Store.PutHold(ctx, state.Hold{Repo: rr.cfg.Name, Service: args.Service, Version: held, Reason: reason, CreatedAt: time.Now().UTC()}); err != nil {
		return fmt.Errorf("rolled back, but the hold was not recorded (an automatic deploy may undo it): %w", err)
	}
	d.log.InfoContext(ctx, "rolled back and held", "repo", rr.cfg.Name, "service", args.Service, "version", held, "actor", args.Actor)
	return nil
}
