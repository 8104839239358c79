package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bosunhq/bosun/state"
)

// Daemon is what the dashboard asks of the running daemon
// (*daemon.Daemon): its repositories, and the actions people take.
type Daemon interface {
	// Repos names the configured repositories.
	Repos() []string
	// Sync queues a sync of repo now (what a push does), asked by actor.
	Sync(ctx context.Context, repo, actor string) error
}

// Options are what New needs.
type Options struct {
	Config Config
	// ClientSecret is the OAuth App's secret (read by the caller from
	// github.client_secret_env or _file).
	ClientSecret string
	// SecretKey is the store's secret key (state.Store.SecretKey); the
	// cookie key is derived from it, so every replica on one store accepts
	// the others' sessions.
	SecretKey []byte
	Store     state.Store
	Daemon    Daemon  // nil: no daemon actions (they answer 503); may be a ServerLister too
	Changes   Changes // nil: no new-service form nor rollback (503)
	// Status, when set, reads what runs on servers now for the fleet's
	// live check (at most once per 30 s, in the background); nil: the
	// fleet's health is the last rollout's only.
	Status  StatusFunc
	Metrics http.Handler // served at /metrics; nil: none
	// ForgeCall, when set, is told of every call to the forge's API (for
	// metrics).
	ForgeCall func(*http.Response, error)
	// HTTPClient calls the forge; nil means one with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Server is the dashboard: its pages, its JSON API under /api/v1, /metrics,
// and login.
type Server struct {
	cfg          Config
	clientSecret string
	opts         Options
	signer       signer
	http         *http.Client
	log          *slog.Logger
	routes       []route
	mux          *http.ServeMux
	live         *liveChecker // nil without Options.Status
}

// Access says who may use a route.
type Access int

// The kinds of route, by who may use them.
const (
	// Public routes need no login: the login flow.
	Public Access = iota
	// Page routes send a request without login to the login page.
	Page
	// API routes answer a request without login 401.
	API
)

// route is one entry of the router. The mux is built from the list, so the
// list is the router's own view of its routes (Routes).
type route struct {
	method, path string
	access       Access
	role         Role // needed, for Page and API routes
	h            http.HandlerFunc
}

// Route describes one route, for tests and docs.
type Route struct {
	Method, Path string
	Access       Access
	Role         Role
}

// New makes the dashboard.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("dashboard: Store is required")
	}
	if len(opts.SecretKey) < 16 {
		return nil, errors.New("dashboard: SecretKey is required")
	}
	if opts.Config.OAuth() && opts.ClientSecret == "" {
		return nil, errors.New("dashboard: github.client_id is set but the client secret is empty")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	s := &Server{cfg: opts.Config, clientSecret: opts.ClientSecret, opts: opts, signer: newSigner(opts.SecretKey),
		http: opts.HTTPClient, log: opts.Logger.With("component", "dashboard"), mux: http.NewServeMux()}
	if opts.Status != nil {
		s.live = &liveChecker{status: opts.Status}
	}
	s.routes = []route{
		{"GET", "/login", Public, None, s.login},
		{"GET", "/login/callback", Public, None, s.callback},
		{"GET", "/static/style.css", Public, None, s.style},
		{"POST", "/logout", Page, Viewer, s.logout},
		{"GET", "/{$}", Page, Viewer, s.home},
		{"POST", "/repos/{repo}/sync", Page, Deployer, s.syncPage},
		{"GET", "/fleet", Page, Viewer, s.fleetPage},
		{"GET", "/history", Page, Viewer, s.historyPage},
		{"GET", "/servers/{server}", Page, Viewer, s.historyPage},
		{"GET", "/deployments/{id}", Page, Viewer, s.deploymentPage},
		{"GET", "/deployments/{id}/stream", Page, Viewer, s.stream},
		{"POST", "/deployments/{id}/cancel", Page, Deployer, s.cancelPage},
		{"GET", "/static/live.js", Page, Viewer, s.script},
		{"GET", "/pulls", Page, Viewer, s.pullsPage},
		{"GET", "/services/new", Page, Deployer, s.newServicePage},
		{"POST", "/services/new", Page, Deployer, s.newService},
		{"GET", "/repos/{repo}/services/{service}", Page, Viewer, s.servicePage},
		{"POST", "/repos/{repo}/services/{service}/hold", Page, Deployer, s.servicePost(s.hold)},
		{"POST", "/repos/{repo}/services/{service}/release", Page, Deployer, s.servicePost(s.release)},
		{"POST", "/repos/{repo}/services/{service}/rollback", Page, Deployer, s.servicePost(s.rollback)},

		{"GET", "/api/v1/whoami", API, Viewer, s.apiWhoami},
		{"GET", "/api/v1/fleet", API, Viewer, s.apiFleet},
		{"GET", "/api/v1/deployments", API, Viewer, s.apiDeployments},
		{"GET", "/api/v1/deployments/{id}", API, Viewer, s.apiDeployment},
		{"GET", "/api/v1/deployments/{id}/events", API, Viewer, s.apiEvents},
		{"POST", "/api/v1/deployments/{id}/cancel", API, Deployer, s.apiCancel},
		{"GET", "/api/v1/pulls", API, Viewer, s.apiPulls},
		{"GET", "/api/v1/actions", API, Viewer, s.apiActions},
		{"GET", "/api/v1/repos/{repo}/pulls", API, Viewer, s.apiPulls},
		{"POST", "/api/v1/repos/{repo}/sync", API, Deployer, s.apiSync},
		{"POST", "/api/v1/repos/{repo}/services/{service}/hold", API, Deployer, s.apiHold},
		{"POST", "/api/v1/repos/{repo}/services/{service}/release", API, Deployer, s.apiRelease},
		{"POST", "/api/v1/repos/{repo}/services/{service}/rollback", API, Deployer, s.apiRollback},
	}
	if opts.Metrics != nil {
		// Scrapers use a viewer token (or public_read).
		s.routes = append(s.routes, route{"GET", "/metrics", API, Viewer, opts.Metrics.ServeHTTP})
	}
	for _, rt := range s.routes {
		h := rt.h
		if rt.access != Public {
			h = s.authorize(rt, h)
		}
		s.mux.HandleFunc(rt.method+" "+rt.path, h)
	}
	return s, nil
}

// Routes lists the router's routes.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, rt := range s.routes {
		out[i] = Route{Method: rt.method, Path: rt.path, Access: rt.access, Role: rt.role}
	}
	return out
}

// ServeHTTP serves every route, with the headers that keep pages from being
// framed or sniffed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self' "+s.cfg.webURL())
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// Identity is who makes a request.
type Identity struct {
	// Actor names them in events and logs: "github:LOGIN", "token:NAME" or
	// "anonymous" (public_read).
	Actor string
	Role  Role
	// Login is the forge login of a session; "" otherwise.
	Login string
	// CSRF is the session's CSRF token, for forms; "" without a session.
	CSRF string
}

// MayDeploy says whether the pages offer them a deployer's links and
// forms: a deployer's role and a session, whose CSRF token the forms
// carry. The routes check the role again.
func (i Identity) MayDeploy() bool { return i.Role >= Deployer && i.CSRF != "" }

type identityKey struct{}

// IdentityOf returns the identity authorize put on the request's context.
func IdentityOf(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// authorize lets a request through to h when it comes with a valid API
// token (Authorization: Bearer), a valid session cookie or, for GET and
// HEAD with public_read, with none; and when its role is at least the
// route's. A request changing anything with a session must carry the
// session's CSRF token. Answers: no (valid) login: 401 on API routes, a
// redirect to /login on pages; CSRF token missing or wrong, or a role too
// low: 403.
func (s *Server) authorize(rt route, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		var id Identity
		switch sess, hasSession := s.readSession(r); {
		case r.Header.Get("Authorization") != "":
			t, role, err := lookupToken(r.Context(), s.opts.Store, r.Header.Get("Authorization"))
			if err != nil {
				if !errors.Is(err, errBadToken) {
					s.log.WarnContext(r.Context(), "API token not checked", "err", err)
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="bosun"`)
				s.jsonError(w, http.StatusUnauthorized, "unknown or revoked API token")
				return
			}
			id = Identity{Actor: "token:" + t.Name, Role: role}
		case hasSession:
			id = Identity{Actor: "github:" + sess.Login, Role: sess.Role, Login: sess.Login, CSRF: sess.CSRF}
			if !safe && !validCSRF(r, sess) {
				s.refuse(w, r, rt, "the form's CSRF token is missing or wrong; reload the page and try again")
				return
			}
		case s.cfg.PublicRead && safe:
			id = Identity{Actor: "anonymous", Role: Viewer}
		default:
			s.unauthenticated(w, r, rt)
			return
		}
		if id.Role < rt.role {
			s.refuse(w, r, rt, "this needs the "+rt.role.String()+" role; "+id.Actor+" has "+id.Role.String())
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}

func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.access == API {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bosun"`)
		s.jsonError(w, http.StatusUnauthorized, "login required: send Authorization: Bearer TOKEN (bosun token create)")
		return
	}
	next := r.URL.Path
	if r.Method != http.MethodGet {
		next = "/"
	}
	http.Redirect(w, r, "/login?"+url.Values{"next": {next}}.Encode(), http.StatusSeeOther)
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rt route, why string) {
	if rt.access == API {
		s.jsonError(w, http.StatusForbidden, why)
		return
	}
	s.page(w, r, http.StatusForbidden, "error", map[string]any{"Message": "Forbidden: " + why})
}

func (s *Server) jsonError(w http.ResponseWriter, code int, msg string) {
	s.json(w, code, map[string]string{"error": msg})
}

func (s *Server) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// fail answers 500 for an error of bosun's own, logged once here.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		s.jsonError(w, http.StatusInternalServerError, "internal error (see bosun's log)")
		return
	}
	s.page(w, r, http.StatusInternalServerError, "error", map[string]any{"Message": "Something went wrong; the details are in bosun's log."})
}

// logout drops the session cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, s.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
