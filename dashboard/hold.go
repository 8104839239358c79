package dashboard

import (
	"errors"
	"net/http"
	"time"

	"github.com/bosunhq/bosun/state"
)

// hold holds a service at the version it runs now, as bosun hold does: plans
// show its targets as held and nothing deploys it until a release. The
// actor is kept in the hold's reason, which plans show.
func (s *Server) hold(r *http.Request) (int, string) {
	repo, service := r.PathValue("repo"), r.PathValue("service")
	id, _ := IdentityOf(r.Context())
	version, code, msg := s.runningVersion(r, repo, service)
	if code != 0 {
		return code, msg
	}
	reason := "held by " + id.Actor + " from the dashboard"
	if why := r.FormValue("reason"); why != "" {
		reason += ": " + why
	}
	if err := s.opts.Store.PutHold(r.Context(), state.Hold{Repo: repo, Service: service, Version: version, Reason: reason, CreatedAt: time.Now().UTC()}); err != nil {
		s.log.ErrorContext(r.Context(), "hold not stored", "repo", repo, "service", service, "actor", id.Actor, "err", err)
		return http.StatusInternalServerError, "the hold was not stored; see bosun's log"
	}
	s.log.InfoContext(r.Context(), "service held", "repo", repo, "service", service, "version", version, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionHold, Repo: repo, Service: service, Detail: "at " + version + reasonSuffix(r.FormValue("reason"))})
	return http.StatusOK, service + " (" + repo + ") is held at " + version
}

// release ends a service's hold, as bosun release does.
func (s *Server) release(r *http.Request) (int, string) {
	repo, service := r.PathValue("repo"), r.PathValue("service")
	id, _ := IdentityOf(r.Context())
	err := s.opts.Store.DeleteHold(r.Context(), repo, service)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return http.StatusNotFound, service + " (" + repo + ") is not held"
	case err != nil:
		s.log.ErrorContext(r.Context(), "hold not deleted", "repo", repo, "service", service, "actor", id.Actor, "err", err)
		return http.StatusInternalServerError, "the hold was not ended; see bosun's log"
	}
	s.log.InfoContext(r.Context(), "service released", "repo", repo, "service", service, "actor", id.Actor)
	s.record(r, state.Action{Action: ActionRelease, Repo: repo, Service: service})
	return http.StatusOK, service + " (" + repo + ") is released; the next deploy follows git"
}

// runningVersion is the version of service the store says was last applied
// from repo; code is 0 when there is one.
func (s *Server) runningVersion(r *http.Request, repo, service string) (string, int, string) {
	rows, err := s.opts.Store.ListApplied(r.Context(), repo)
	if err != nil {
		s.log.ErrorContext(r.Context(), "applied state not read", "repo", repo, "err", err)
		return "", http.StatusInternalServerError, "the applied state was not read; see bosun's log"
	}
	for _, a := range rows {
		if a.Service == service {
			return a.Version, 0, ""
		}
	}
	return "", http.StatusNotFound, "service " + service + " has never been applied from repository " + repo
}

// apiHold is POST /api/v1/repos/{repo}/services/{service}/hold.
func (s *Server) apiHold(w http.ResponseWriter, r *http.Request) {
	code, msg := s.hold(r)
	s.apiAction(w, code, msg)
}

// apiRelease is POST /api/v1/repos/{repo}/services/{service}/release.
func (s *Server) apiRelease(w http.ResponseWriter, r *http.Request) {
	code, msg := s.release(r)
	s.apiAction(w, code, msg)
}

func (s *Server) apiAction(w http.ResponseWriter, code int, msg string) {
	if code != http.StatusOK {
		s.jsonError(w, code, msg)
		return
	}
	s.json(w, code, map[string]string{"result": msg})
}

func reasonSuffix(why string) string {
	if why == "" {
		return ""
	}
	return ": " + why
}
