package dashboard

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bosunhq/bosun/state"
)

// The JSON API under /api/v1. Its types are the wire format: field names
// in snake_case, times in RFC 3339 (UTC).

// Deployment is one deployment as the API shows it.
type Deployment struct {
	ID      int64  `json:"id"`
	Repo    string `json:"repo"`
	Service string `json:"service"`
	Commit  string `json:"commit"`
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
	Error   string `json:"error,omitempty"`
	// Plan is the plan that caused it, as text; only in
	// GET /api/v1/deployments/{id}.
	Plan       string     `json:"plan,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Event is one step of a deployment as the API shows it.
type Event struct {
	DeploymentID int64     `json:"deployment_id"`
	Host         string    `json:"host"`
	Step         string    `json:"step"`
	Status       string    `json:"status"`
	Message      string    `json:"message,omitempty"`
	Actor        string    `json:"actor,omitempty"`
	At           time.Time `json:"at"`
}

// DeploymentList is the answer of GET /api/v1/deployments. NextBefore,
// when not 0, is the before= of the next page.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
	NextBefore  int64        `json:"next_before,omitempty"`
}

// Whoami is the answer of GET /api/v1/whoami.
type Whoami struct {
	Actor string `json:"actor"`
	Role  Role   `json:"role"`
}

func apiDeployment(d state.Deployment) Deployment {
	return Deployment{ID: d.ID, Repo: d.Repo, Service: d.Service, Commit: d.Commit, Status: string(d.Status), Trigger: d.Trigger,
		Error: d.Error, Plan: d.Plan, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt}
}

// Fleet is the answer of GET /api/v1/fleet: what the fleet page shows, one
// target per service and server of the matrix (missing ones too).
type Fleet struct {
	Servers []FleetServer `json:"servers"`
	Targets []FleetTarget `json:"targets"`
	// LiveCheckedAt is when the last live check of the servers finished;
	// absent without a live check or before the first.
	LiveCheckedAt *time.Time `json:"live_checked_at,omitempty"`
}

// FleetServer is one server of the fleet.
type FleetServer struct {
	Name string   `json:"name"`
	Tags []string `json:"tags,omitempty"`
	// Unreachable says why the last live check could not read it.
	Unreachable string `json:"unreachable,omitempty"`
}

// FleetTarget is one service on one server.
type FleetTarget struct {
	Repo    string `json:"repo"`
	Service string `json:"service"`
	Server  string `json:"server"`
	// Health is running, unhealthy or missing: from the last rollout and
	// the live check.
	Health    string     `json:"health"`
	Version   string     `json:"version,omitempty"`
	Image     string     `json:"image,omitempty"`
	Commit    string     `json:"commit,omitempty"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Rollout is the last rollout's result (ok, failed); Live what the live
	// check found ("running, healthy", "no container running", …).
	Rollout string `json:"rollout,omitempty"`
	Live    string `json:"live,omitempty"`
	Held    bool   `json:"held,omitempty"`
}

// apiFleet is GET /api/v1/fleet, with the fleet page's filters: repo,
// service, server, tag.
func (s *Server) apiFleet(w http.ResponseWriter, r *http.Request) {
	d, err := s.fleet(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := Fleet{Servers: make([]FleetServer, 0, len(d.Rows)), Targets: []FleetTarget{}}
	if !d.LiveAt.IsZero() {
		at := d.LiveAt.UTC()
		out.LiveCheckedAt = &at
	}
	for _, row := range d.Rows {
		out.Servers = append(out.Servers, FleetServer{Name: row.Server, Tags: row.Tags, Unreachable: row.Unreachable})
		for i, c := range row.Cells {
			t := FleetTarget{Repo: d.Columns[i].Repo, Service: d.Columns[i].Service, Server: row.Server, Health: c.Health,
				Version: c.Version, Image: c.Image, Commit: c.Commit, Rollout: c.Rollout, Live: c.Live, Held: c.Held}
			if !c.At.IsZero() {
				at := c.At.UTC()
				t.AppliedAt = &at
			}
			out.Targets = append(out.Targets, t)
		}
	}
	s.json(w, http.StatusOK, out)
}

// DefaultLimit and MaxLimit bound a page of deployments.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

func (s *Server) apiWhoami(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityOf(r.Context())
	s.json(w, http.StatusOK, Whoami{Actor: id.Actor, Role: id.Role})
}

// apiDeployments lists deployments, newest first: filters repo, service,
// server, status; paging limit (default 50, at most 500) and before (an
// id).
func (s *Server) apiDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := state.DeploymentFilter{Repo: q.Get("repo"), Service: q.Get("service"), Host: q.Get("server"), Status: state.Status(q.Get("status")), Limit: DefaultLimit}
	if f.Status != "" && !f.Status.Valid() {
		s.jsonError(w, http.StatusBadRequest, "status: "+string(f.Status)+" is not pending, deploying, deployed, failed or rolled_back")
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			s.jsonError(w, http.StatusBadRequest, "limit: a number from 1 to "+strconv.Itoa(MaxLimit))
			return
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.jsonError(w, http.StatusBadRequest, "before: a deployment id")
			return
		}
		f.BeforeID = n
	}
	ds, err := s.opts.Store.ListDeployments(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := DeploymentList{Deployments: make([]Deployment, 0, len(ds))}
	for _, d := range ds {
		out.Deployments = append(out.Deployments, apiDeployment(d))
	}
	if len(ds) == f.Limit {
		out.NextBefore = ds[len(ds)-1].ID
	}
	s.json(w, http.StatusOK, out)
}

// deploymentID reads {id}, answering 400 or 404 when it names none.
func (s *Server) deploymentID(w http.ResponseWriter, r *http.Request) (state.Deployment, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		s.jsonError(w, http.StatusBadRequest, "not a deployment id: "+r.PathValue("id"))
		return state.Deployment{}, false
	}
	d, err := s.opts.Store.GetDeployment(r.Context(), id)
	if errors.Is(err, state.ErrNotFound) {
		s.jsonError(w, http.StatusNotFound, "no deployment "+r.PathValue("id"))
		return state.Deployment{}, false
	}
	if err != nil {
		s.fail(w, r, err)
		return state.Deployment{}, false
	}
	return d, true
}

func (s *Server) apiDeployment(w http.ResponseWriter, r *http.Request) {
	if d, ok := s.deploymentID(w, r); ok {
		s.json(w, http.StatusOK, apiDeployment(d))
	}
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	d, ok := s.deploymentID(w, r)
	if !ok {
		return
	}
	evs, err := s.opts.Store.ListEvents(r.Context(), d.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, Event{DeploymentID: e.DeploymentID, Host: e.Host, Step: e.Step, Status: e.Status, Message: e.Message, Actor: e.Actor, At: e.At})
	}
	s.json(w, http.StatusOK, map[string]any{"events": out})
}

// sync queues a sync of {repo} for the request's actor and returns the
// answer's status and message.
func (s *Server) sync(r *http.Request) (status int, msg string) {
	if s.opts.Daemon == nil {
		return http.StatusServiceUnavailable, "no daemon runs here"
	}
	repo := r.PathValue("repo")
	known := false
	for _, n := range s.opts.Daemon.Repos() {
		known = known || n == repo
	}
	if !known {
		return http.StatusNotFound, "no repository " + repo
	}
	id, _ := IdentityOf(r.Context())
	if err := s.opts.Daemon.Sync(r.Context(), repo, id.Actor); err != nil {
		s.log.ErrorContext(r.Context(), "sync not queued", "repo", repo, "actor", id.Actor, "err", err)
		return http.StatusServiceUnavailable, "the sync could not be queued; see bosun's log"
	}
	s.log.InfoContext(r.Context(), "sync asked", "repo", repo, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionSync, Repo: repo})
	return http.StatusAccepted, "sync of " + repo + " queued"
}

// apiSync is POST /api/v1/repos/{repo}/sync.
func (s *Server) apiSync(w http.ResponseWriter, r *http.Request) {
	code, msg := s.sync(r)
	if code != http.StatusAccepted {
		s.jsonError(w, code, msg)
		return
	}
	s.json(w, code, map[string]string{"result": msg})
}
