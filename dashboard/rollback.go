package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/bosunhq/bosun/state"
)

// The service page and its actions: the versions a service ran (the ones
// a rollback can go back to), its hold, and the forms for hold, release
// and rollback.
//
// A rollback from the dashboard is applied directly and then held (the
// daemon's rollback job, as `bosun rollback` does), not written as a
// revert pull request: it is the emergency way back, which must not wait
// for a review and a merge, and the retained containers make it a
// restart. The hold keeps the next push from undoing it and is shown on
// every plan until someone releases it or a commit with the held spec is
// deployed (the revert, the GitOps way back). See docs/dashboard.md.

// serviceVersion is one version of the service page's list.
type serviceVersion struct {
	state.Version
	Running bool
}

// servicePage is GET /repos/{repo}/services/{service}.
func (s *Server) servicePage(w http.ResponseWriter, r *http.Request) {
	repo, service := r.PathValue("repo"), r.PathValue("service")
	ctx := r.Context()
	applied, err := s.opts.Store.ListApplied(ctx, repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	running := map[string]bool{}
	var targets []state.Applied
	for _, a := range applied {
		if a.Service == service {
			running[a.Version] = true
			targets = append(targets, a)
		}
	}
	vs, err := s.opts.Store.ListVersions(ctx, repo, service)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(vs) == 0 && len(targets) == 0 {
		s.page(w, r, http.StatusNotFound, "error", map[string]any{"Message": "service " + service + " has never been applied from repository " + repo})
		return
	}
	versions := make([]serviceVersion, 0, len(vs))
	for _, v := range vs {
		versions = append(versions, serviceVersion{Version: v, Running: running[v.Version]})
	}
	holds, err := s.opts.Store.ListHolds(ctx, repo)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var hold *state.Hold
	for i := range holds {
		if holds[i].Service == service {
			hold = &holds[i]
		}
	}
	id, _ := IdentityOf(ctx)
	s.page(w, r, http.StatusOK, "service", map[string]any{"Repo": repo, "Service": service, "Targets": targets, "Versions": versions, "Hold": hold,
		"CanDeploy": id.MayDeploy(), "Flash": r.URL.Query().Get("flash"), "Now": time.Now()})
}

// rollback queues the rollback of {service} to the form's version ("": the
// previous one).
func (s *Server) rollback(r *http.Request) (int, string) {
	repo, service := r.PathValue("repo"), r.PathValue("service")
	if s.opts.Daemon == nil || s.opts.Changes == nil {
		return http.StatusServiceUnavailable, "no daemon runs here"
	}
	known := false
	for _, n := range s.opts.Daemon.Repos() {
		known = known || n == repo
	}
	if !known {
		return http.StatusNotFound, "no repository " + repo
	}
	id, _ := IdentityOf(r.Context())
	to, reason := r.FormValue("to"), r.FormValue("reason")
	if err := s.opts.Changes.Rollback(r.Context(), repo, service, to, id.Actor, reason); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return http.StatusNotFound, err.Error()
		}
		s.log.ErrorContext(r.Context(), "rollback not queued", "repo", repo, "service", service, "actor", id.Actor, "err", err)
		return http.StatusServiceUnavailable, "the rollback could not be queued; see bosun's log"
	}
	target := "the previous version"
	if to != "" {
		target = to
	}
	s.log.InfoContext(r.Context(), "rollback asked", "repo", repo, "service", service, "to", target, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionRollback, Repo: repo, Service: service, Detail: "to " + target + reasonSuffix(reason)})
	return http.StatusAccepted, "rollback of " + service + " to " + target + " queued; it is held there once rolled back"
}

// apiRollback is POST /api/v1/repos/{repo}/services/{service}/rollback.
func (s *Server) apiRollback(w http.ResponseWriter, r *http.Request) {
	code, msg := s.rollback(r)
	if code != http.StatusAccepted {
		s.jsonError(w, code, msg)
		return
	}
	s.json(w, code, map[string]string{"result": msg})
}

// servicePost runs a service page's form (hold, release, rollback) and
// returns to the page with what happened.
func (s *Server) servicePost(act func(*http.Request) (int, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		code, msg := act(r)
		if code >= 300 {
			s.page(w, r, code, "error", map[string]any{"Message": msg})
			return
		}
		http.Redirect(w, r, "/repos/"+url.PathEscape(r.PathValue("repo"))+"/services/"+url.PathEscape(r.PathValue("service"))+"?"+url.Values{"flash": {msg}}.Encode(), http.StatusSeeOther)
	}
}
