package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/bosunhq/bosun/migrations"
)

// Store is bosun's state. Implementations are safe for concurrent use, and
// several processes may share one database (PostgreSQL, or one SQLite file on
// one machine).
type Store interface {
	// Close releases the database. The store cannot be used afterwards.
	Close() error

	// SecretKey returns the 32-byte key that hashes secret values, creating
	// it on the first call for this database. Every caller, in every
	// process, gets the same key.
	SecretKey(ctx context.Context) ([]byte, error)

	// ListApplied returns what is applied for repo, sorted by service, role
	// and host.
	ListApplied(ctx context.Context, repo string) ([]Applied, error)
	// ListFleet returns what the fleet matrix shows of repo: per service
	// and host, the target applied last (of the service's roles on that
	// host), sorted by service and host, without its spec (Spec is nil;
	// Image summarises it).
	ListFleet(ctx context.Context, repo string) ([]Applied, error)
	// PutApplied records that a.Spec (version a.Version) now runs on the
	// target (repo, service, role, host), replacing what was there, and
	// adds the spec to the service's version history. A zero AppliedAt
	// means now; an empty Image is read from the spec's "image".
	PutApplied(ctx context.Context, a Applied) error
	// DeleteApplied forgets the target (after its containers are removed).
	// Deleting a target that is not there is not an error. The version
	// history keeps its specs.
	DeleteApplied(ctx context.Context, repo, service, role, host string) error
	// ListVersions returns every spec ever applied for the service, one
	// entry per role and version, most recently applied first.
	ListVersions(ctx context.Context, repo, service string) ([]Version, error)

	// CreateDeployment records a new deployment and returns its id. An
	// empty Status means pending; a zero StartedAt means now.
	CreateDeployment(ctx context.Context, d Deployment) (int64, error)
	// FinishDeployment sets a deployment's final status (deployed, failed
	// or rolled_back), its error message and its finish time (now).
	FinishDeployment(ctx context.Context, id int64, status Status, errMsg string) error
	// GetDeployment returns one deployment, or ErrNotFound.
	GetDeployment(ctx context.Context, id int64) (Deployment, error)
	// ListDeployments returns the deployments matching f, newest first.
	ListDeployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error)
	// AddEvent appends an event to a deployment (which must exist). A zero
	// At means now.
	AddEvent(ctx context.Context, e Event) error
	// ListEvents returns a deployment's events in the order they were added.
	ListEvents(ctx context.Context, deploymentID int64) ([]Event, error)

	// PutHold holds a service at a version, replacing any hold it had. A
	// zero CreatedAt means now.
	PutHold(ctx context.Context, h Hold) error
	// DeleteHold releases a service's hold, or returns ErrNotFound.
	DeleteHold(ctx context.Context, repo, service string) error
	// ListHolds returns the holds of repo, sorted by service.
	ListHolds(ctx context.Context, repo string) ([]Hold, error)

	// AcquireLock tries once to take the lease name for owner until now +
	// lease. It succeeds when nobody holds it, when the holder's lease has
	// expired (the lease is taken over), or when owner already holds it
	// (the lease is extended). It returns the holder after the attempt:
	// owner when ok, someone else otherwise. Two callers can never both
	// succeed for one unexpired lease, whichever process they run in.
	AcquireLock(ctx context.Context, name, owner string, lease time.Duration) (ok bool, holder Lock, err error)
	// RenewLock extends owner's lease to now + lease, or returns ErrNotHeld
	// when the lock was released or taken over.
	RenewLock(ctx context.Context, name, owner string, lease time.Duration) error
	// ReleaseLock gives the lease up, or returns ErrNotHeld when owner does
	// not hold it.
	ReleaseLock(ctx context.Context, name, owner string) error

	// RecordDelivery stores a webhook delivery once: isNew is false when a
	// delivery with this ID was recorded before (and nothing is changed).
	// A zero ReceivedAt means now.
	RecordDelivery(ctx context.Context, d Delivery) (isNew bool, err error)
	// GetDelivery returns one delivery, or ErrNotFound.
	GetDelivery(ctx context.Context, id string) (Delivery, error)

	// CreateToken stores an API token (its hash, never the token), or
	// returns ErrExists when one of that name exists. A zero CreatedAt
	// means now.
	CreateToken(ctx context.Context, t Token) error
	// ListTokens returns every API token, sorted by name.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken deletes the token called name, or returns ErrNotFound.
	RevokeToken(ctx context.Context, name string) error
	// TokenByHash returns the token whose hash is hash, or ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)

	// PutPullRequest records the last plan of an open pull request,
	// replacing the one it had. A zero UpdatedAt means now.
	PutPullRequest(ctx context.Context, pr PullRequest) error
	// DeletePullRequest forgets a pull request (it was closed or merged).
	// Deleting one that is not there is not an error.
	DeletePullRequest(ctx context.Context, repo string, number int) error
	// ListPullRequests returns the pull requests of repo ("" for every
	// repository), sorted by repo, then newest number first.
	ListPullRequests(ctx context.Context, repo string) ([]PullRequest, error)

	// AddAction records an action a person or script took and returns its
	// id. A zero At means now.
	AddAction(ctx context.Context, a Action) (int64, error)
	// ListActions returns the actions matching f, newest first.
	ListActions(ctx context.Context, f ActionFilter) ([]Action, error)
}

// PullRequest is the last plan bosun made of an open pull request: the
// Markdown of its plan comment and the bosun/plan status it posted.
type PullRequest struct {
	Repo     string // the repository's name in bosun
	Number   int
	HeadSHA  string
	Title    string
	Author   string // the forge login of who opened it
	URL      string // the pull request's page on the forge; "" when unknown
	Markdown string // the plan comment, without bosun's marker
	Status   string // the bosun/plan state: success, failure or error
	Summary  string // the bosun/plan description
	// UpdatedAt is when the plan was made.
	UpdatedAt time.Time
}

// Action is something a person or a script did through bosun: hold,
// release, sync, cancel, rollback, new-service (a pull request opened from
// the dashboard's form).
type Action struct {
	ID           int64
	At           time.Time
	Actor        string // "github:alice", "token:ci"
	Action       string
	Repo         string
	Service      string
	DeploymentID int64  // the deployment it acted on (cancel); 0 for none
	Detail       string // what else it said: a version, a reason, a URL
}

// ActionFilter selects actions; zero fields match everything.
type ActionFilter struct {
	Repo, Service, Actor, Action string
	Limit                        int // at most this many (0: all)
}

// ErrNotFound is returned when the row an operation names does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a row to create exists already.
var ErrExists = errors.New("already exists")

// ErrNotAStore is returned by Open when the DSN names an existing SQLite
// file that is not a bosun store: empty (0 bytes), not SQLite, or a SQLite
// database without bosun's schema. Making a new store there would lose the
// deployment history and the secret-hash key silently; OpenOpts.Init (and
// OpenDB, for `bosun migrate`) asks for it explicitly.
var ErrNotAStore = errors.New("not a bosun store")

// ErrNotHeld is returned by RenewLock and ReleaseLock when the caller does
// not hold the lock (any more).
var ErrNotHeld = errors.New("lock not held")

// Applied is what runs on one target: the spec (JSON of planner.Spec, with
// secrets only as keyed hashes) and its version, applied from Commit.
type Applied struct {
	Repo, Service, Role, Host string
	Version                   string
	Commit                    string
	Spec                      []byte
	// Image is the spec's image reference, kept beside it so that the
	// fleet reads no spec.
	Image     string
	AppliedAt time.Time
}

// Version is one spec that was applied for a role of a service: when it was
// first and last applied, and the commit that applied it last.
type Version struct {
	Repo, Service, Role string
	Version             string
	Commit              string
	Spec                []byte
	FirstApplied        time.Time
	LastApplied         time.Time
}

// Status is the state of a deployment.
type Status string

// The statuses of a deployment. Pending and deploying are transient; the
// others are final.
const (
	StatusPending    Status = "pending"
	StatusDeploying  Status = "deploying"
	StatusDeployed   Status = "deployed"
	StatusFailed     Status = "failed"
	StatusRolledBack Status = "rolled_back"
)

func (s Status) String() string { return string(s) }

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusDeploying, StatusDeployed, StatusFailed, StatusRolledBack:
		return true
	}
	return false
}

// Final reports whether s ends a deployment.
func (s Status) Final() bool {
	return s == StatusDeployed || s == StatusFailed || s == StatusRolledBack
}

// Deployment is one run of the executor for a repository (all of its
// changed services, or the one named by Service).
type Deployment struct {
	ID      int64
	Repo    string
	Service string // "" for a deployment of every changed service
	Commit  string
	Status  Status
	Trigger string // who or what started it: "push", "poll", "rollback by alice", …
	Error   string // why it failed, for failed and rolled_back
	// Plan is the plan that caused it, as text (planner.Plan.WriteTo of
	// the deployment's service). GetDeployment returns it;
	// ListDeployments leaves it empty.
	Plan       string
	StartedAt  time.Time
	FinishedAt *time.Time // nil until it finishes
}

// DeploymentFilter selects deployments; zero fields match everything.
type DeploymentFilter struct {
	Repo    string
	Service string
	Commit  string
	Status  Status
	// Host keeps deployments with an event on this host (events name it
	// as HOST or ROLE@HOST).
	Host     string
	BeforeID int64 // only ids below this one: the next page after the last id seen
	Limit    int   // at most this many (0: all)
}

// Event is one step of a deployment on one host.
type Event struct {
	DeploymentID int64
	Host         string
	Step         string // "pull", "start", "health", "switch", "stop", …
	Status       string // "started", "ok", "failed", …
	Message      string
	// Actor is who asked for what the event records, when a person or a
	// script did ("github:alice", "token:ci"); "" for bosun's own work
	// (a push, a poll).
	Actor string
	At    time.Time
}

// Hold keeps a service at a version: automatic deploys leave it alone.
type Hold struct {
	Repo, Service string
	Version       string
	Reason        string
	Spec          []byte // the held spec (JSON), to end the hold when git's spec equals it
	CreatedAt     time.Time
}

// Lock is a lease on a name held by an owner until ExpiresAt.
type Lock struct {
	Name, Owner string
	ExpiresAt   time.Time
}

// Token is an API token for scripts: a name, a role (viewer, deployer or
// admin) and the SHA-256 of the token. The token itself is shown once, when
// it is made, and never stored.
type Token struct {
	Name      string
	Role      string
	Hash      []byte
	CreatedBy string
	CreatedAt time.Time
}

// Delivery is a received webhook delivery.
type Delivery struct {
	ID         string // X-GitHub-Delivery
	Event      string // X-GitHub-Event
	Repo       string
	Payload    []byte
	ReceivedAt time.Time
	Outcome    string
}

// DefaultDSN is where bosun keeps its state when nothing says otherwise
// (bosun's --state and $BOSUN_STATE, serve's state key): a SQLite file under
// the working directory.
const DefaultDSN = "sqlite:bosun-data/state.db"

// Open opens the store named by dsn and brings its schema up to date:
//
//   - sqlite:///abs/path.db or sqlite:/abs/path.db: a SQLite file by absolute path;
//   - sqlite:rel/path.db: a SQLite file relative to the working directory;
//   - postgres://… or postgresql://…: a PostgreSQL database (pgx's URL form,
//     query parameters included, e.g. sslmode or search_path).
//
// A missing SQLite file, and its folder, are created. An existing SQLite file
// that is not a bosun store (empty, or without bosun's schema) is refused with
// ErrNotAStore and left untouched. A PostgreSQL database or schema without
// the tables is migrated: a database is made on purpose, a file can be
// truncated by accident. The caller closes the store.
func Open(ctx context.Context, dsn string) (Store, error) {
	return OpenWith(ctx, dsn, OpenOpts{})
}

// OpenOpts are the options of OpenWith.
type OpenOpts struct {
	// Init makes a new store in an existing SQLite file that is empty or
	// holds no bosun schema, instead of refusing it. A file that is not
	// SQLite is refused all the same.
	Init bool
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, opts OpenOpts) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, err := SQLitePath(dsn)
		if err != nil {
			return nil, err
		}
		return openSQLite(ctx, path, opts)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return OpenPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf("open state %q: unknown DSN; use sqlite:PATH, sqlite:///ABS/PATH or postgres://…", Redact(dsn))
}

// OpenDB opens the database named by dsn (the forms Open takes) with the
// store's connection settings but without applying migrations, for `bosun
// migrate`, which applies or reverts them itself through package migrations.
// It takes any SQLite file (creating a missing one), empty or not a store
// yet, since migrating it is the explicit way to make a store there; a file
// that is not SQLite is refused with ErrNotAStore. The caller calls closeDB
// when done.
func OpenDB(ctx context.Context, dsn string) (db *sql.DB, dialect migrations.Dialect, closeDB func() error, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, err := SQLitePath(dsn)
		if err != nil {
			return nil, "", nil, err
		}
		if err := checkSQLitePath(path); err != nil {
			return nil, "", nil, err
		}
		if _, err := os.Stat(path); err == nil {
			if err := checkSQLiteStore(ctx, path, true); err != nil {
				return nil, "", nil, err
			}
		}
		db, err := openSQLiteDB(ctx, path)
		if err != nil {
			return nil, "", nil, err
		}
		return db, migrations.SQLite, db.Close, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		pool, db, _, err := openPostgresDB(ctx, dsn)
		if err != nil {
			return nil, "", nil, err
		}
		return db, migrations.Postgres, func() error { err := db.Close(); pool.Close(); return err }, nil
	}
	return nil, "", nil, fmt.Errorf("open state %q: unknown DSN; use sqlite:PATH, sqlite:///ABS/PATH or postgres://…", Redact(dsn))
}

// SQLitePath returns the absolute file path of a sqlite: DSN.
func SQLitePath(dsn string) (string, error) {
	rest, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return "", fmt.Errorf("state DSN %q: not a sqlite: DSN", dsn)
	}
	if strings.HasPrefix(rest, "//") {
		// URL form: only sqlite:///abs/path, with an empty host.
		p, ok := strings.CutPrefix(rest, "///")
		if !ok {
			return "", fmt.Errorf("state DSN %q: write sqlite:///ABS/PATH (three slashes) or sqlite:REL/PATH", dsn)
		}
		rest = "/" + p
	}
	if rest == "" || strings.HasSuffix(rest, "/") {
		return "", fmt.Errorf("state DSN %q: no file name", dsn)
	}
	if strings.ContainsAny(rest, "?#") {
		return "", fmt.Errorf("state DSN %q: a sqlite path takes no ? or # (no options)", dsn)
	}
	abs, err := filepath.Abs(rest)
	if err != nil {
		return "", fmt.Errorf("state DSN %q: %w", dsn, err)
	}
	return abs, nil
}

var passwordParam = regexp.MustCompile(`(?i)(password=)[^&\s]*`)

// HasPassword reports whether dsn holds a password: in a URL's user info
// or as a password parameter (password=…, key/value or URL query), the two
// places Redact masks.
func HasPassword(dsn string) bool {
	if passwordParam.MatchString(dsn) {
		return true
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return false
	}
	_, has := u.User.Password()
	return has
}

// Redact returns dsn with any password (in the user info or a password
// parameter) replaced by "[redacted]" (planner.RedactedText, the one
// placeholder), for messages.
func Redact(dsn string) string {
	dsn = passwordParam.ReplaceAllString(dsn, "${1}"+redacted)
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(dsn, "@") {
			return "(unparsable DSN)"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
		// url.URL escapes brackets in the user info; put the placeholder back.
		return strings.Replace(u.String(), ":REDACTED@", ":"+redacted+"@", 1)
	}
	return u.String()
}

// redacted is planner.RedactedText; state does not import the planner.
const redacted = "[redacted]"
