// Package metrics owns the Prometheus series of `bosun serve`: what the
// daemon deploys (deployments by repository, service and status, rollout
// duration, push-to-serving latency, the last successful deploy of each
// service), its queue (depth and the age of the oldest waiting job), the
// webhook deliveries it answered (by HTTP status) and the errors of its calls
// to the forge's API.
//
// One *Metrics is made by cmd/bosun and passed to the parts that record into
// it (the daemon, the webhook intake through Webhooks, the forge client
// through ForgeCall); there are no package-level series. Every method is
// safe on a nil *Metrics and then records nothing, so a daemon built
// without metrics (tests, tools) needs no stand-in. Handler serves the
// registry in Prometheus' text format; the dashboard mounts it at /metrics
// behind its authentication (see docs/dashboard.md).
package metrics
