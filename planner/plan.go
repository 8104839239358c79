package planner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
)

// Config configures a Planner.
type Config struct {
	Logger    *slog.Logger // nil: slog.Default()
	Secrets   SecretSource // may be nil: no secret is available
	SecretKey []byte       // HMAC key for secret hashes (the state store keeps one)
	// RequireSecrets makes a secret that Secrets cannot resolve a
	// ConfigError (apply). Without it (plan) the planner keeps the applied
	// hash of a missing secret, so its change cannot be seen, and the plan
	// warns.
	RequireSecrets bool
}

// Planner turns a config repository at one commit into a Plan. It is safe
// for concurrent use; it does no network I/O and knows nothing about git.
// It remembers, per Input.Repo, the parsed service files of its last plan
// and reuses those whose content (and templates) did not change, so keep
// one Planner for the life of a daemon rather than one per plan.
type Planner struct {
	cfg   Config
	log   *slog.Logger
	cache parseCache
}

// New returns a Planner.
func New(cfg Config) *Planner {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Planner{cfg: cfg, log: log.With("component", "planner")}
}

// Input is what a plan is made against.
type Input struct {
	Repo, Commit string
	Applied      []Applied // the applied state of Repo
	Holds        []Hold    // services held at a version (bosun rollback)
	// Destination is the Kamal destination to plan: each
	// services/NAME.DEST.yml is deep-merged over services/NAME.yml, as
	// `kamal deploy -d DEST` does. "" plans the base files alone.
	Destination string
	// ERBEnv holds the environment variables that ERB lookups in service
	// files (<%= ENV["NAME"] %>) may read: the operator's list with its
	// values, never the daemon's whole environment.
	ERBEnv map[string]string
}

// Hold keeps a service at Version: automatic deploys do not change it.
type Hold struct{ Service, Version string }

// Action is what a plan does to one target.
type Action string

// The actions of a Change.
const (
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionRemove    Action = "remove"
	ActionUnchanged Action = "unchanged"
	ActionHeld      Action = "held"
)

// String returns the action's name.
func (a Action) String() string { return string(a) }

// Plan is what applying one commit would do, per target.
type Plan struct {
	Repo, Commit string
	Destination  string          // the Kamal destination planned ("": none)
	Changes      []Change        // one per target, sorted by service, role, host
	Services     []Service       // rollout policy per service in the desired config, sorted by name
	Hosts        map[string]Host // connection details of every host a change names (when known)
	// Tags are the fleet.yml tags of the hosts in Hosts that have some
	// (the dashboard filters servers by them).
	Tags    map[string][]string
	Notices []string // ignored keys etc., each "file:line:col: ..."
	// Warnings are things a reviewer should know that do not make the
	// commit invalid: a secret that could not be resolved while planning,
	// a removal on a host that left the inventory.
	Warnings []string
	// Takeovers says, per host where the plan puts bosun-proxy for the
	// first time, what bosun does if Kamal serves there (docs/migrating-from-kamal.md).
	Takeovers []string
	// ReleasedHolds names the held services whose desired spec now equals
	// the held one: the plan treats them as not held, and applying it ends
	// their holds (executor.Apply, once the service is rolled out).
	ReleasedHolds []string
}

// Change is the plan for one target.
type Change struct {
	Target
	Action     Action
	Version    string        // desired version ("" for remove)
	Desired    *Spec         // nil for remove; read only: targets with equal specs share one
	Current    *Applied      // nil for create; points into Input.Applied
	Fields     []FieldChange // for update and held: what differs, sorted by field; read only, may be shared
	Disruptive bool          // stateful replacement or removal: stop, then start
	// Dangers are the desired spec's dangerous settings (allowed by the
	// service's x-bosun.allow_dangerous); every rendering marks them.
	Dangers []Danger
}

// FieldChange is one changed field of a spec. Secret values are never
// shown: Old and New are "(set)", "(changed)" or "" for secrets.
type FieldChange struct{ Field, Old, New string }

// Service is the rollout policy of one service.
type Service struct {
	Name, PrimaryRole string
	Roles             []string // primary first, then the others sorted
	BootLimit         int      // hosts per batch (0: all at once); from boot.limit (int or "25%")
	BootWait          Duration // pause between batches
	Canary            *Canary  // x-bosun.canary; nil: no canary batch
	RetainContainers  int      // stopped containers kept per host; default DefaultRetainContainers
	Standby           Standby  // x-bosun.standby: what becomes of the container that served until a switch
	Registry          *Registry
	// LocalRegistryPort is set when the service's image is on Kamal's
	// local registry (registry.server: localhost:PORT): each server pulls
	// it from its own localhost:PORT, which the executor forwards over SSH
	// to 127.0.0.1:PORT of the machine bosun runs on. 0: no forward.
	LocalRegistryPort int
}

// Standby is what becomes of a proxied, non-stateful role's container that
// served until a switch (x-bosun.standby). "" is StandbyStopped.
type Standby string

const (
	// StandbyStopped stops it; a revert starts it again (the default).
	StandbyStopped Standby = "stopped"
	// StandbyPaused pauses it (its processes frozen, its memory kept) as
	// the one warm standby of its role on the host; a revert unpauses it.
	StandbyPaused Standby = "paused"
)

// Registry is the login for a service's image; nil means no login. The
// credentials are a literal user name or the names of secrets.
type Registry struct{ Server, Username, UsernameSecret, PasswordSecret string }

// Canary is a first batch of hosts watched before the rest.
type Canary struct {
	Hosts int      `json:"hosts"` // hosts in the canary batch; default 1
	Watch Duration `json:"watch"` // how long the canary is watched; default 30s
}

// Host is how to reach a server.
type Host struct {
	Name, Address, User string
	Port                int
	Jump                string // "[user@]host[:port]" or ""
}

// Empty reports whether applying the plan would change nothing: no create,
// update or remove, and no hold to release (applying ends those).
func (pl *Plan) Empty() bool {
	if len(pl.ReleasedHolds) > 0 {
		return false
	}
	for _, c := range pl.Changes {
		switch c.Action {
		case ActionCreate, ActionUpdate, ActionRemove:
			return false
		}
	}
	return true
}

// Plan reads the config repository in src, validates all of it, and plans
// it against in.Applied. An invalid commit returns ConfigErrors (every error,
// sorted) and no plan. Plan reads only src; ctx cancels it between files.
func (p *Planner) Plan(ctx context.Context, src fs.FS, in Input) (*Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.Destination != "" {
		if msg := checkDestination(in.Destination); msg != "" {
			return nil, errors.New(msg)
		}
	}
	l := &loader{cfg: &p.cfg, in: &in, r: &report{}, cache: &p.cache}
	desired, err := l.load(ctx, src)
	if err != nil {
		return nil, err
	}
	errs, notices := l.r.sorted()
	if len(errs) > 0 {
		p.log.DebugContext(ctx, "config invalid", "repo", in.Repo, "sha", in.Commit, "errors", len(errs))
		return nil, errs
	}
	pl := diffState(desired, &in)
	pl.Repo, pl.Commit, pl.Destination = in.Repo, in.Commit, in.Destination
	pl.Notices = notices
	pl.Warnings = append(pl.Warnings, l.warnings...)
	pl.Takeovers = takeoverNotes(pl, in.Applied)
	sortWarnings(pl)
	return pl, nil
}
