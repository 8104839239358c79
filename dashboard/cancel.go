package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/state"
)

// cancel asks the daemon running a deployment to cancel it: it adds the
// cancel request (state.StepCancel) to the deployment's events, with the
// actor, which the daemon running the rollout watches for (on this replica
// or another). The rollout then stops as Apply does when its context ends:
// the host step in progress is finished or undone, hosts already switched
// go back to their previous version, and none is left without a serving
// container.
func (s *Server) cancel(r *http.Request) (int, string) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n < 1 {
		return http.StatusBadRequest, "not a deployment id: " + r.PathValue("id")
	}
	ctx := r.Context()
	d, err := s.opts.Store.GetDeployment(ctx, n)
	switch {
	case errors.Is(err, state.ErrNotFound) || err != nil && strings.Contains(err.Error(), state.ErrNotFound.Error()):
		return http.StatusNotFound, fmt.Sprintf("no deployment %d", n)
	case err != nil:
		s.log.ErrorContext(ctx, "deployment not read", "deployment", n, "err", err)
		return http.StatusInternalServerError, "the deployment was not read; see bosun's log"
	case d.FinishedAt != nil:
		return http.StatusConflict, fmt.Sprintf("deployment %d has finished (%s): there is nothing to cancel", n, d.Status)
	}
	evs, err := s.opts.Store.ListEvents(ctx, n)
	if err != nil {
		s.log.ErrorContext(ctx, "deployment events not read", "deployment", n, "err", err)
		return http.StatusInternalServerError, "the deployment's events were not read; see bosun's log"
	}
	if e, ok := state.CancelAsked(evs); ok {
		return http.StatusAccepted, fmt.Sprintf("%s asked to cancel deployment %d already; the rollout stops at its next step", e.Actor, n)
	}
	id, _ := IdentityOf(ctx)
	if err := s.opts.Store.AddEvent(ctx, state.Event{DeploymentID: n, Step: state.StepCancel, Status: state.CancelRequested,
		Message: "cancel asked by " + id.Actor, Actor: id.Actor, At: time.Now().UTC()}); err != nil {
		s.log.ErrorContext(ctx, "cancel request not stored", "deployment", n, "actor", id.Actor, "err", err)
		return http.StatusInternalServerError, "the cancel was not stored; see bosun's log"
	}
	s.log.InfoContext(ctx, "cancel asked", "deployment", n, "repo", d.Repo, "service", d.Service, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionCancel, Repo: d.Repo, Service: d.Service, DeploymentID: n})
	return http.StatusAccepted, fmt.Sprintf("cancel of deployment %d asked: the rollout stops at its next step, and every host keeps its old or new version", n)
}

// cancelPage is the deployment page's Cancel button: back to the page,
// which shows the rollout stop.
func (s *Server) cancelPage(w http.ResponseWriter, r *http.Request) {
	code, msg := s.cancel(r)
	if code != http.StatusAccepted {
		s.page(w, r, code, "error", map[string]any{"Message": msg})
		return
	}
	http.Redirect(w, r, "/deployments/"+r.PathValue("id")+"?"+url.Values{"flash": {msg}}.Encode(), http.StatusSeeOther)
}

// apiCancel is POST /api/v1/deployments/{id}/cancel: 202 once the cancel
// is asked (the rollout ends shortly after: watch the deployment), 409
// when the deployment has finished.
func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request) {
	code, msg := s.cancel(r)
	if code != http.StatusAccepted {
		s.jsonError(w, code, msg)
		return
	}
	s.json(w, code, map[string]string{"result": msg})
}
