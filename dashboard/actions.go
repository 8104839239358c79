package dashboard

import (
	"net/http"
	"strconv"
	"time"

	"github.com/bosunhq/bosun/state"
)

// Every action taken through the dashboard or its API (hold, release,
// sync, cancel, rollback, new-service) is recorded with its actor in the
// store's actions, which History shows and /api/v1/actions lists.

// The actions, as recorded.
const (
	ActionHold       = "hold"
	ActionRelease    = "release"
	ActionSync       = "sync"
	ActionCancel     = "cancel"
	ActionRollback   = "rollback"
	ActionNewService = "new-service"
)

// record stores an action that took effect, with the request's actor. The
// action is done by then, so a failure to record it is logged, not
// answered.
func (s *Server) record(r *http.Request, a state.Action) {
	id, _ := IdentityOf(r.Context())
	a.Actor = id.Actor
	if _, err := s.opts.Store.AddAction(r.Context(), a); err != nil {
		s.log.ErrorContext(r.Context(), "action not recorded", "action", a.Action, "repo", a.Repo, "service", a.Service, "actor", a.Actor, "err", err)
	}
}

// Action is one recorded action as the API shows it.
type Action struct {
	ID           int64     `json:"id"`
	At           time.Time `json:"at"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"`
	Repo         string    `json:"repo,omitempty"`
	Service      string    `json:"service,omitempty"`
	DeploymentID int64     `json:"deployment_id,omitempty"`
	Detail       string    `json:"detail,omitempty"`
}

// actionFilter reads the filters repo, service, actor, action and limit.
func actionFilter(r *http.Request) (state.ActionFilter, string) {
	q := r.URL.Query()
	f := state.ActionFilter{Repo: q.Get("repo"), Service: q.Get("service"), Actor: q.Get("actor"), Action: q.Get("action"), Limit: DefaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return f, "limit: a number from 1 to " + strconv.Itoa(MaxLimit)
		}
		f.Limit = n
	}
	return f, ""
}

// apiActions is GET /api/v1/actions: the actions, newest first.
func (s *Server) apiActions(w http.ResponseWriter, r *http.Request) {
	f, bad := actionFilter(r)
	if bad != "" {
		s.jsonError(w, http.StatusBadRequest, bad)
		return
	}
	as, err := s.opts.Store.ListActions(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]Action, 0, len(as))
	for _, a := range as {
		out = append(out, Action{ID: a.ID, At: a.At, Actor: a.Actor, Action: a.Action, Repo: a.Repo, Service: a.Service, DeploymentID: a.DeploymentID, Detail: a.Detail})
	}
	s.json(w, http.StatusOK, map[string]any{"actions": out})
}
