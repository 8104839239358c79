package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/migrations"
)

// sqlStore implements Store over database/sql for both dialects; the SQL is
// shared, with ? placeholders rebound for PostgreSQL and times encoded per
// dialect (TIMESTAMPTZ there, fixed-width UTC text in SQLite).
type sqlStore struct {
	db      *sql.DB
	dialect migrations.Dialect

	keyMu sync.Mutex
	key   []byte // SecretKey, once read

	fleetMu sync.Mutex
	fleet   map[string]fleetCache // ListFleet's last answer per repo

	notifyMu sync.Mutex
	notify   chan struct{} // closed at the next event or finish (EventsChanged)
}

// EventsChanged returns a channel closed when this store next adds a
// deployment event or finishes a deployment, so that a reader in the same
// process (the dashboard's stream) wakes at once instead of at its next
// poll. Writes by other processes close nothing: readers poll as well.
func (s *sqlStore) EventsChanged() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.notify
}

// eventsChanged wakes EventsChanged's waiters.
func (s *sqlStore) eventsChanged() {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
}

// fleetCache is ListFleet's answer for a repo at a generation of its
// applied rows (table applied_generations, counted up in the transaction of
// every PutApplied and DeleteApplied, by any process).
type fleetCache struct {
	gen  int64
	rows []Applied
}

const secretKeyName = "secret_key"

// sqliteTime is the text form of times in SQLite: fixed width and UTC, so
// that comparing the text compares the times.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// q rebinds ? placeholders for the dialect.
func (s *sqlStore) q(query string) string { return migrations.Rebind(s.dialect, query) }

// t encodes a time for the dialect, at microsecond precision (PostgreSQL's).
func (s *sqlStore) t(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if s.dialect == migrations.SQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// nowOr returns t, or now when t is zero, at the store's precision.
func (s *sqlStore) nowOr(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// timeCol scans a time column of either dialect into t (UTC).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		*c.t = x.UTC()
	case string:
		return c.parse(x)
	case []byte:
		return c.parse(string(x))
	default:
		return fmt.Errorf("scan time from %T", v)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan time: %w", err)
	}
	*c.t = t.UTC()
	return nil
}

// nullTimeCol scans a nullable time column.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(v); err != nil {
		return err
	}
	*c.t = &t
	return nil
}

// blob turns nil into an empty slice: the columns are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// unblob returns nil for an empty column, so both dialects read alike.
func unblob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *sqlStore) Close() error { return s.db.Close() }

// SecretKey implements Store.
func (s *sqlStore) SecretKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return append([]byte(nil), s.key...), nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make secret key: %w", err)
	}
	// The first writer wins; everyone reads what it wrote.
	if _, err := s.db.ExecContext(ctx, s.q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"), secretKeyName, fresh); err != nil {
		return nil, fmt.Errorf("store secret key: %w", err)
	}
	var key []byte
	if err := s.db.QueryRowContext(ctx, s.q("SELECT value FROM meta WHERE key = ?"), secretKeyName).Scan(&key); err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("read secret key: stored key has %d bytes, want 32", len(key))
	}
	s.key = key
	return append([]byte(nil), key...), nil
}

// ListApplied implements Store.
func (s *sqlStore) ListApplied(ctx context.Context, repo string) ([]Applied, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT repo, service, role, host, version, commit_sha, spec, image, applied_at
FROM applied WHERE repo = ? ORDER BY service, role, host`), repo)
	if err != nil {
		return nil, fmt.Errorf("list applied of %s: %w", repo, err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Applied, error) {
		var a Applied
		err := r.Scan(&a.Repo, &a.Service, &a.Role, &a.Host, &a.Version, &a.Commit, &a.Spec, &a.Image, timeCol{&a.AppliedAt})
		a.Spec = unblob(a.Spec)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list applied of %s: %w", repo, err)
	}
	return out, nil
}

// ListFleet implements Store. Of the roles of a service on one host, the
// one applied last wins (the lowest role on a tie).
//
// The answer is cached per repo until the repo's generation moves: every
// write of its applied rows counts it up in the same transaction, in
// whichever process writes, so a call that finds the generation unchanged
// reads one row instead of every target (200 servers × 50 services are
// 10,000 rows, most of the fleet page's time).
func (s *sqlStore) ListFleet(ctx context.Context, repo string) ([]Applied, error) {
	var gen int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT n FROM applied_generations WHERE repo = ?"), repo).Scan(&gen)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("list the fleet of %s: %w", repo, err)
	}
	s.fleetMu.Lock()
	c, ok := s.fleet[repo]
	s.fleetMu.Unlock()
	if ok && c.gen == gen {
		return append([]Applied(nil), c.rows...), nil
	}
	// Read after the generation: a write in between is in the rows or
	// moves the generation again, and the next call reads anew.
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT service, role, host, version, commit_sha, image, applied_at
FROM applied WHERE repo = ? ORDER BY service, role, host`), repo)
	if err != nil {
		return nil, fmt.Errorf("list the fleet of %s: %w", repo, err)
	}
	all, err := collect(rows, func(r *sql.Rows) (Applied, error) {
		a := Applied{Repo: repo}
		err := r.Scan(&a.Service, &a.Role, &a.Host, &a.Version, &a.Commit, &a.Image, timeCol{&a.AppliedAt})
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the fleet of %s: %w", repo, err)
	}
	type key struct{ service, host string }
	newest := make(map[key]int, len(all))
	out := all[:0]
	for _, a := range all {
		k := key{a.Service, a.Host}
		if i, ok := newest[k]; ok {
			if a.AppliedAt.After(out[i].AppliedAt) {
				out[i] = a
			}
			continue
		}
		newest[k] = len(out)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Service < b.Service || a.Service == b.Service && a.Host < b.Host
	})
	s.fleetMu.Lock()
	if s.fleet == nil {
		s.fleet = map[string]fleetCache{}
	}
	s.fleet[repo] = fleetCache{gen: gen, rows: out}
	s.fleetMu.Unlock()
	return append([]Applied(nil), out...), nil
}

// bumpFleet counts repo's applied generation up (ListFleet's cache).
func (s *sqlStore) bumpFleet(ctx context.Context, tx *sql.Tx, repo string) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO applied_generations (repo, n) VALUES (?, 1)
ON CONFLICT (repo) DO UPDATE SET n = applied_generations.n + 1`), repo)
	return err
}

// ImageOf reads the image reference of a spec (planner.Spec's JSON), or "".
// Applied.Image is written with it; pages that show one spec read it too.
func ImageOf(spec []byte) string {
	var v struct {
		Image string `json:"image"`
	}
	if json.Unmarshal(spec, &v) != nil {
		return ""
	}
	return v.Image
}

// PutApplied implements Store.
func (s *sqlStore) PutApplied(ctx context.Context, a Applied) error {
	target := a.Repo + " " + a.Service + "/" + a.Role + "@" + a.Host
	if a.Repo == "" || a.Service == "" || a.Role == "" || a.Host == "" || a.Version == "" {
		return fmt.Errorf("put applied %s: repo, service, role, host and version are required", target)
	}
	at := s.t(s.nowOr(a.AppliedAt))
	if a.Image == "" {
		a.Image = ImageOf(a.Spec)
	}
	return s.inTx(ctx, "put applied "+target, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO applied (repo, service, role, host, version, commit_sha, spec, image, applied_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (repo, service, role, host) DO UPDATE SET
    version = excluded.version, commit_sha = excluded.commit_sha, spec = excluded.spec, image = excluded.image, applied_at = excluded.applied_at`),
			a.Repo, a.Service, a.Role, a.Host, a.Version, a.Commit, blob(a.Spec), a.Image, at); err != nil {
			return err
		}
		if err := s.bumpFleet(ctx, tx, a.Repo); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO spec_versions (repo, service, role, version, commit_sha, spec, first_applied, last_applied)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (repo, service, role, version) DO UPDATE SET
    commit_sha = excluded.commit_sha, spec = excluded.spec, last_applied = excluded.last_applied
WHERE excluded.last_applied >= spec_versions.last_applied`),
			a.Repo, a.Service, a.Role, a.Version, a.Commit, blob(a.Spec), at, at)
		return err
	})
}

// DeleteApplied implements Store.
func (s *sqlStore) DeleteApplied(ctx context.Context, repo, service, role, host string) error {
	return s.inTx(ctx, fmt.Sprintf("delete applied %s %s/%s@%s", repo, service, role, host), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("DELETE FROM applied WHERE repo = ? AND service = ? AND role = ? AND host = ?"), repo, service, role, host)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return s.bumpFleet(ctx, tx, repo)
	})
}

// ListVersions implements Store.
func (s *sqlStore) ListVersions(ctx context.Context, repo, service string) ([]Version, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT repo, service, role, version, commit_sha, spec, first_applied, last_applied
FROM spec_versions WHERE repo = ? AND service = ? ORDER BY last_applied DESC, role, version`), repo, service)
	if err != nil {
		return nil, fmt.Errorf("list versions of %s %s: %w", repo, service, err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Version, error) {
		var v Version
		err := r.Scan(&v.Repo, &v.Service, &v.Role, &v.Version, &v.Commit, &v.Spec, timeCol{&v.FirstApplied}, timeCol{&v.LastApplied})
		v.Spec = unblob(v.Spec)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("list versions of %s %s: %w", repo, service, err)
	}
	return out, nil
}

// CreateDeployment implements Store.
func (s *sqlStore) CreateDeployment(ctx context.Context, d Deployment) (int64, error) {
	if d.Status == "" {
		d.Status = StatusPending
	}
	if !d.Status.Valid() {
		return 0, fmt.Errorf("create deployment of %s: unknown status %q", d.Repo, d.Status)
	}
	if d.Repo == "" {
		return 0, errors.New("create deployment: repo is required")
	}
	var finished any
	if d.FinishedAt != nil {
		finished = s.t(*d.FinishedAt)
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.q(`INSERT INTO deployments (repo, service, commit_sha, status, triggered_by, error, plan, started_at, finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		d.Repo, d.Service, d.Commit, string(d.Status), d.Trigger, d.Error, d.Plan, s.t(s.nowOr(d.StartedAt)), finished).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create deployment of %s: %w", d.Repo, err)
	}
	return id, nil
}

// FinishDeployment implements Store.
func (s *sqlStore) FinishDeployment(ctx context.Context, id int64, status Status, errMsg string) error {
	if !status.Final() {
		return fmt.Errorf("finish deployment %d: %q is not a final status (deployed, failed, rolled_back)", id, status)
	}
	err := s.execOne(ctx, fmt.Sprintf("finish deployment %d", id), ErrNotFound,
		"UPDATE deployments SET status = ?, error = ?, finished_at = ? WHERE id = ?",
		string(status), errMsg, s.t(time.Now()), id)
	if err == nil {
		s.eventsChanged()
	}
	return err
}

// likeEscaper escapes LIKE's wildcards, with \ as the escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

const deploymentCols = "id, repo, service, commit_sha, status, triggered_by, error, started_at, finished_at"

// scanDeployment reads deploymentCols, and the plan after them when
// withPlan is set.
func scanDeployment(r interface{ Scan(...any) error }, withPlan bool) (Deployment, error) {
	var d Deployment
	var status string
	dest := []any{&d.ID, &d.Repo, &d.Service, &d.Commit, &status, &d.Trigger, &d.Error, timeCol{&d.StartedAt}, nullTimeCol{&d.FinishedAt}}
	if withPlan {
		dest = append(dest, &d.Plan)
	}
	err := r.Scan(dest...)
	d.Status = Status(status)
	return d, err
}

// GetDeployment implements Store.
func (s *sqlStore) GetDeployment(ctx context.Context, id int64) (Deployment, error) {
	d, err := scanDeployment(s.db.QueryRowContext(ctx, s.q("SELECT "+deploymentCols+", plan FROM deployments WHERE id = ?"), id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("get deployment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("get deployment %d: %w", id, err)
	}
	return d, nil
}

// ListDeployments implements Store.
func (s *sqlStore) ListDeployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error) {
	var where []string
	var args []any
	for _, c := range []struct {
		col string
		val string
	}{{"repo", f.Repo}, {"service", f.Service}, {"commit_sha", f.Commit}, {"status", string(f.Status)}} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if f.Host != "" {
		where = append(where, `EXISTS (SELECT 1 FROM deployment_events e WHERE e.deployment_id = deployments.id AND (e.host = ? OR e.host LIKE ? ESCAPE '\'))`)
		args = append(args, f.Host, "%@"+likeEscaper.Replace(f.Host))
	}
	if f.BeforeID > 0 {
		where = append(where, "id < ?")
		args = append(args, f.BeforeID)
	}
	query := "SELECT " + deploymentCols + " FROM deployments"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Deployment, error) { return scanDeployment(r, false) })
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return out, nil
}

// AddEvent implements Store.
func (s *sqlStore) AddEvent(ctx context.Context, e Event) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO deployment_events (deployment_id, host, step, status, message, actor, at)
VALUES (?, ?, ?, ?, ?, ?, ?)`), e.DeploymentID, e.Host, e.Step, e.Status, e.Message, e.Actor, s.t(s.nowOr(e.At)))
	if err != nil {
		// The foreign key refused it, most likely; say so plainly.
		if _, gerr := s.GetDeployment(ctx, e.DeploymentID); errors.Is(gerr, ErrNotFound) {
			return fmt.Errorf("add event to deployment %d: deployment %w", e.DeploymentID, ErrNotFound)
		}
		return fmt.Errorf("add event to deployment %d: %w", e.DeploymentID, err)
	}
	s.eventsChanged()
	return nil
}

// ListEvents implements Store.
func (s *sqlStore) ListEvents(ctx context.Context, deploymentID int64) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT deployment_id, host, step, status, message, actor, at
FROM deployment_events WHERE deployment_id = ? ORDER BY id`), deploymentID)
	if err != nil {
		return nil, fmt.Errorf("list events of deployment %d: %w", deploymentID, err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Event, error) {
		var e Event
		err := r.Scan(&e.DeploymentID, &e.Host, &e.Step, &e.Status, &e.Message, &e.Actor, timeCol{&e.At})
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list events of deployment %d: %w", deploymentID, err)
	}
	return out, nil
}

// PutHold implements Store.
func (s *sqlStore) PutHold(ctx context.Context, h Hold) error {
	if h.Repo == "" || h.Service == "" {
		return fmt.Errorf("put hold on %s %s: repo and service are required", h.Repo, h.Service)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO holds (repo, service, version, reason, spec, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (repo, service) DO UPDATE SET
    version = excluded.version, reason = excluded.reason, spec = excluded.spec, created_at = excluded.created_at`),
		h.Repo, h.Service, h.Version, h.Reason, blob(h.Spec), s.t(s.nowOr(h.CreatedAt)))
	if err != nil {
		return fmt.Errorf("put hold on %s %s: %w", h.Repo, h.Service, err)
	}
	return nil
}

// DeleteHold implements Store.
func (s *sqlStore) DeleteHold(ctx context.Context, repo, service string) error {
	return s.execOne(ctx, fmt.Sprintf("delete hold on %s %s", repo, service), ErrNotFound,
		"DELETE FROM holds WHERE repo = ? AND service = ?", repo, service)
}

// ListHolds implements Store.
func (s *sqlStore) ListHolds(ctx context.Context, repo string) ([]Hold, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT repo, service, version, reason, spec, created_at
FROM holds WHERE repo = ? ORDER BY service`), repo)
	if err != nil {
		return nil, fmt.Errorf("list holds of %s: %w", repo, err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Hold, error) {
		var h Hold
		err := r.Scan(&h.Repo, &h.Service, &h.Version, &h.Reason, &h.Spec, timeCol{&h.CreatedAt})
		h.Spec = unblob(h.Spec)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("list holds of %s: %w", repo, err)
	}
	return out, nil
}

// AcquireLock implements Store. The take-over is one conditional upsert, so
// the database decides atomically between two contenders.
func (s *sqlStore) AcquireLock(ctx context.Context, name, owner string, lease time.Duration) (bool, Lock, error) {
	if name == "" || owner == "" {
		return false, Lock{}, fmt.Errorf("acquire lock %q for %q: name and owner are required", name, owner)
	}
	for range 3 {
		now := s.nowOr(time.Time{})
		var l Lock
		err := s.db.QueryRowContext(ctx, s.q(`INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE locks.expires_at <= ? OR locks.owner = excluded.owner
RETURNING name, owner, expires_at`), name, owner, s.t(now.Add(lease)), s.t(now)).Scan(&l.Name, &l.Owner, timeCol{&l.ExpiresAt})
		if err == nil {
			return true, l, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, Lock{}, fmt.Errorf("acquire lock %s: %w", name, err)
		}
		err = s.db.QueryRowContext(ctx, s.q("SELECT name, owner, expires_at FROM locks WHERE name = ?"), name).Scan(&l.Name, &l.Owner, timeCol{&l.ExpiresAt})
		if err == nil {
			return false, l, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, Lock{}, fmt.Errorf("read lock %s: %w", name, err)
		}
		// Released between the two statements: try again.
	}
	return false, Lock{}, fmt.Errorf("acquire lock %s: it changed hands three times during the attempt", name)
}

// RenewLock implements Store.
func (s *sqlStore) RenewLock(ctx context.Context, name, owner string, lease time.Duration) error {
	return s.execOne(ctx, fmt.Sprintf("renew lock %s for %s", name, owner), ErrNotHeld,
		"UPDATE locks SET expires_at = ? WHERE name = ? AND owner = ?", s.t(time.Now().Add(lease)), name, owner)
}

// ReleaseLock implements Store.
func (s *sqlStore) ReleaseLock(ctx context.Context, name, owner string) error {
	return s.execOne(ctx, fmt.Sprintf("release lock %s for %s", name, owner), ErrNotHeld,
		"DELETE FROM locks WHERE name = ? AND owner = ?", name, owner)
}

// RecordDelivery implements Store.
func (s *sqlStore) RecordDelivery(ctx context.Context, d Delivery) (bool, error) {
	if d.ID == "" {
		return false, errors.New("record delivery: id is required")
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO webhook_deliveries (id, event, repo, payload, received_at, outcome)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		d.ID, d.Event, d.Repo, blob(d.Payload), s.t(s.nowOr(d.ReceivedAt)), d.Outcome)
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	return n == 1, nil
}

// GetDelivery implements Store.
func (s *sqlStore) GetDelivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, event, repo, payload, received_at, outcome
FROM webhook_deliveries WHERE id = ?`), id).Scan(&d.ID, &d.Event, &d.Repo, &d.Payload, timeCol{&d.ReceivedAt}, &d.Outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, fmt.Errorf("get delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %s: %w", id, err)
	}
	d.Payload = unblob(d.Payload)
	return d, nil
}

// validRole is the dashboard's set of roles (the api_tokens CHECK).
func validRole(r string) bool { return r == "viewer" || r == "deployer" || r == "admin" }

// CreateToken implements Store.
func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	if t.Name == "" || len(t.Hash) == 0 {
		return fmt.Errorf("create token %q: name and hash are required", t.Name)
	}
	if !validRole(t.Role) {
		return fmt.Errorf("create token %s: unknown role %q (viewer, deployer or admin)", t.Name, t.Role)
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO api_tokens (name, role, hash, created_by, created_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`), t.Name, t.Role, t.Hash, t.CreatedBy, s.t(s.nowOr(t.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create token %s: %w", t.Name, err)
	} else if n == 0 {
		return fmt.Errorf("create token %s: %w", t.Name, ErrExists)
	}
	return nil
}

const tokenCols = "name, role, hash, created_by, created_at"

func scanToken(r interface{ Scan(...any) error }) (Token, error) {
	var t Token
	err := r.Scan(&t.Name, &t.Role, &t.Hash, &t.CreatedBy, timeCol{&t.CreatedAt})
	return t, err
}

// ListTokens implements Store.
func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+tokenCols+" FROM api_tokens ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Token, error) { return scanToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements Store.
func (s *sqlStore) RevokeToken(ctx context.Context, name string) error {
	return s.execOne(ctx, "revoke token "+name, ErrNotFound, "DELETE FROM api_tokens WHERE name = ?", name)
}

// TokenByHash implements Store.
func (s *sqlStore) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q("SELECT "+tokenCols+" FROM api_tokens WHERE hash = ?"), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("look up token: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// execOne runs a statement that must change one row; when it changes none
// it returns none wrapped in op.
func (s *sqlStore) execOne(ctx context.Context, op string, none error, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, none)
	}
	return nil
}

// inTx runs fn in a transaction and commits when it returns nil.
func (s *sqlStore) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// collect scans every row and closes rows. Reading everything before
// returning matters on SQLite, whose pool has one connection.
func collect[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// PutPullRequest implements Store.
func (s *sqlStore) PutPullRequest(ctx context.Context, pr PullRequest) error {
	if pr.Repo == "" || pr.Number < 1 {
		return fmt.Errorf("put pull request %s#%d: repo and number are required", pr.Repo, pr.Number)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO pull_requests (repo, number, head_sha, title, author, url, markdown, status, summary, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (repo, number) DO UPDATE SET
    head_sha = excluded.head_sha, title = excluded.title, author = excluded.author, url = excluded.url,
    markdown = excluded.markdown, status = excluded.status, summary = excluded.summary, updated_at = excluded.updated_at`),
		pr.Repo, pr.Number, pr.HeadSHA, pr.Title, pr.Author, pr.URL, pr.Markdown, pr.Status, pr.Summary, s.t(s.nowOr(pr.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("put pull request %s#%d: %w", pr.Repo, pr.Number, err)
	}
	return nil
}

// DeletePullRequest implements Store.
func (s *sqlStore) DeletePullRequest(ctx context.Context, repo string, number int) error {
	if _, err := s.db.ExecContext(ctx, s.q("DELETE FROM pull_requests WHERE repo = ? AND number = ?"), repo, number); err != nil {
		return fmt.Errorf("delete pull request %s#%d: %w", repo, number, err)
	}
	return nil
}

// ListPullRequests implements Store.
func (s *sqlStore) ListPullRequests(ctx context.Context, repo string) ([]PullRequest, error) {
	query := `SELECT repo, number, head_sha, title, author, url, markdown, status, summary, updated_at FROM pull_requests`
	var args []any
	if repo != "" {
		query += " WHERE repo = ?"
		args = append(args, repo)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query+" ORDER BY repo, number DESC"), args...)
	if err != nil {
		return nil, fmt.Errorf("list pull requests: %w", err)
	}
	out, err := collect(rows, func(r *sql.Rows) (PullRequest, error) {
		var p PullRequest
		err := r.Scan(&p.Repo, &p.Number, &p.HeadSHA, &p.Title, &p.Author, &p.URL, &p.Markdown, &p.Status, &p.Summary, timeCol{&p.UpdatedAt})
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list pull requests: %w", err)
	}
	return out, nil
}

// AddAction implements Store.
func (s *sqlStore) AddAction(ctx context.Context, a Action) (int64, error) {
	if a.Actor == "" || a.Action == "" {
		return 0, fmt.Errorf("add action %q by %q: actor and action are required", a.Action, a.Actor)
	}
	var id int64
	err := s.db.QueryRowContext(ctx, s.q(`INSERT INTO actions (at, actor, action, repo, service, deployment_id, detail)
VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`), s.t(s.nowOr(a.At)), a.Actor, a.Action, a.Repo, a.Service, a.DeploymentID, a.Detail).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("add action %s by %s: %w", a.Action, a.Actor, err)
	}
	return id, nil
}

// ListActions implements Store.
func (s *sqlStore) ListActions(ctx context.Context, f ActionFilter) ([]Action, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, val string }{{"repo", f.Repo}, {"service", f.Service}, {"actor", f.Actor}, {"action", f.Action}} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	query := "SELECT id, at, actor, action, repo, service, deployment_id, detail FROM actions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	out, err := collect(rows, func(r *sql.Rows) (Action, error) {
		var a Action
		err := r.Scan(&a.ID, timeCol{&a.At}, &a.Actor, &a.Action, &a.Repo, &a.Service, &a.DeploymentID, &a.Detail)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return out, nil
}
