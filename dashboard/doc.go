// Package dashboard is the web side of `bosun serve`: login with the forge,
// sessions, API tokens, roles, the JSON API under /api/v1, /metrics, and the
// server-rendered pages (html/template, embedded; no JavaScript build).
//
// It owns who may do what. Every route but the login flow goes through
// one check (Server.authorize): an API token (Authorization: Bearer, looked
// up by its SHA-256 in the store), a session cookie (signed, HttpOnly,
// SameSite=Lax, Secure under an https base URL) or, for GET and HEAD only
// when public_read is set, nobody. Roles are viewer < deployer < admin;
// a request below its route's role gets 403, as does a request with a
// session that changes something without the session's CSRF token. Without
// login, API routes answer 401 and pages redirect to /login. The routes are
// one list (Server.Routes), from which the mux is built, so tests check
// every route.
//
// It never holds a secret in clear beyond the OAuth client secret it is
// given: a user's forge token lives only for the login request, API tokens
// are stored hashed, and cookies carry a login, a role, an expiry and a
// CSRF token under an HMAC.
//
// It reads deployments and their events from the state store, and asks the
// running daemon for its actions through the small Daemon and Changes
// interfaces (sync, rollback, a repository's head, the planner's check, a
// pull request on the forge); it never deploys itself, and the new-service
// form only ever opens a pull request. Each action is logged and recorded
// with its actor ("github:LOGIN", "token:NAME") in the store's actions.
package dashboard
