// Package executor takes a planner.Plan to servers: it keeps one SSH
// connection per server (golang.org/x/crypto/ssh, host keys checked against
// known_hosts), drives Docker through the Engine API over that connection
// (the server's /var/run/docker.sock forwarded over SSH, the official
// client, API version negotiated), installs and drives the bosun-proxy
// container, and rolls each changed service out host by host with zero
// downtime, putting switched hosts back when any host fails.
//
// It owns the containers, routes and proxy it makes on servers (only
// containers labelled bosun.service are ever stopped or removed; volumes
// never are, but for its own lock volumes; every container carries its
// store's identity, label bosun.store), the per-service rollout lock
// (through the store's lease, and against other stores a bosun-lock volume
// on the service's primary host), and
// the applied state, deployment and event records it writes to the store
// (and their one reader: LoadApplied, LoadHistory, LockName in applied.go),
// and it ends the holds a plan marks releasable once their service is rolled
// out (see Apply).
// It never reads git or config files, never decides what should run (that is
// the planner), and never builds a shell command: every value goes into a
// field of an Engine API call. Secret values are resolved from
// Config.Secrets at the moment a container is created and appear nowhere
// else: not in events, errors, logs or the store.
//
// # Per host, for one role of one service
//
//	          ┌────────────┐ retained container of this version?
//	connect ─►│ proxy/net  ├──── yes ──────────────┐ (no pull; a paused standby is unpaused, not started)
//	          └─────┬──────┘                       │
//	                no                             │
//	                ▼                              ▼
//	              pull ──────────────────────►  create+start ──► health ──► switch ──► stop old ──► record ──► prune
//	                │ fail                          │ fail         │ fail     (proxied roles: health and   (or pause it:
//	                ▼                               ▼              ▼           switch are one proxy deploy, standby)
//	          old version still serving ◄────── stop new (stateful: restart old)    which drains the old target)
//
// With x-bosun.standby: paused (planner.StandbyPaused) on a proxied,
// non-stateful role, the container that served until the switch is not
// stopped but paused, after the drain, as the role's one warm standby on
// the host: its restart policy set to "no" first (so a restart of dockerd
// or the server never brings a second version up), then frozen. Every
// other old container of the role, an earlier standby included, is
// stopped. Deploying the standby's version again unpauses it (no pull, no
// start), restores the spec's restart policy, and health-checks it through
// the proxy before the switch; one that fails is stopped and the old
// version keeps serving. Prune never removes a paused standby and counts
// it as the retained previous version. Unproxied and stateful roles are
// never paused; with the policy stopped (the default), a leftover standby
// is stopped at the role's next rollout.
//
// Prune (retention) runs once the whole service is rolled out, so that the
// previous version's container is there for a rollback until then; it keeps
// the previous version and the most recently stopped others, up to
// retain_containers. A stateful role (host volume, no proxy) stops the old
// container before it starts the new one. After a later host fails, each switched host is taken
// back: its previous (retained) container started (unpaused when it is the
// paused standby), the route switched back,
// the new container stopped, the applied state restored.
//
// # Context
//
// Steps before the new container starts follow ctx. From the start of the
// new container to the end of that host's step, the executor keeps going on
// a context that ignores cancellation (bounded by deploy_timeout and
// drain_timeout), so a cancelled rollout leaves every host on its old or its
// new version with a serving container; the rollout then stops and, as after
// any failure, the hosts already switched are put back on their previous
// version (also on a context that ignores cancellation); the deployment is
// recorded as failed. The next Apply converges.
//
// # Errors
//
// Apply returns a *RolloutError (service, what was rolled back) wrapping a
// *StepError (host, service, role, step, the container's last log lines for
// start and health failures). Connecting can fail with a *HostKeyError
// (unknown or changed host key). ErrLockTimeout means another rollout of the
// service held the lock (in the store, or on the servers) longer than
// ApplyOpts.LockWait.
package executor
