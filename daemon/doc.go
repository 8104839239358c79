// Package daemon is `bosun serve`: it reads the daemon's configuration file
// and wires the watcher, the webhook intake, the durable queue, the planner,
// the executor and the forge reporter into one loop. It owns the daemon's
// configuration and its lifecycle (start, reload, graceful stop); the work
// itself belongs to those packages.
package daemon
