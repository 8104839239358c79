// Package proxy is bosun's reverse proxy, the program that runs as
// `bosun proxy run` in the bosun-proxy container on every server with a
// proxied role, and the client that drives it.
//
// It owns the routing table (host, then *.domain wildcard, then a catch-all
// route; longest path prefix within a host), the connection pools to the
// targets, health checks before a switch, draining after it, TLS (ACME via
// autocert, or a local CA for tests and private networks), and the state
// file that brings routes back after a restart. It never starts or stops
// containers and never talks to Docker: the executor does that and asks the
// proxy, through the control API, to switch a route.
//
// A deploy (Server.Deploy, POST /v1/deploy, Client.Deploy) returns only once
// the new target is healthy and serving and the old target has drained; if
// the target never gets healthy within the deploy timeout, or ctx ends
// first, the route is exactly as before and the error says why. A switch
// swaps an immutable routing table through an atomic pointer: no listener
// and no client connection is closed by it.
//
// Errors callers can branch on: *APIError (from Client, with the HTTP
// status), ErrUnhealthy, ErrConflict, ErrNotFound and *ValidationError.
package proxy
