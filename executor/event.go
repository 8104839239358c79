package executor

// placeholder until state lands
type Store interface{}

// Event is one step of a rollout on one host, reported to Config.Progress
// and recorded as a deployment event.
type Event struct{}
