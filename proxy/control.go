package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// The control API (see docs/proxy.md):
//
//	GET    /up                 200 "ok", no token: the container's liveness
//	GET    /v1/routes          200 {"routes": [Route…]}
//	POST   /v1/deploy          DeployRequest → 200 Route, after health, switch and drain
//	DELETE /v1/routes/{service} 200 {} after the route is gone and drained
//
// Every /v1 call needs "Authorization: Bearer TOKEN". Errors are
// {"error": "…"} with 400 (bad request), 401 (token), 404 (no such
// service), 409 (host and path taken), 503 (shutting down) or 504 (target
// not healthy within the deploy timeout).
func (s *Server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /v1/routes", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"routes": s.Routes()})
	}))
	mux.Handle("POST /v1/deploy", s.auth(func(w http.ResponseWriter, r *http.Request) {
		req, err := DecodeDeployRequest(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		route, err := s.Deploy(r.Context(), req)
		if err != nil {
			writeError(w, errorStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, route)
	}))
	mux.Handle("DELETE /v1/routes/{service}", s.auth(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Remove(r.Context(), r.PathValue("service")); err != nil {
			writeError(w, errorStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	}))
	return mux
}

func errorStatus(err error) int {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnhealthy):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case strings.Contains(err.Error(), "shutting down"):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// auth admits a request carrying the control token. The comparison takes
// the same time whatever the token given.
func (s *Server) auth(next http.HandlerFunc) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || s.cfg.Token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bosun-proxy"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong control token"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBodySize)
		next(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
