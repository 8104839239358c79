package state

// A person's cancel of a running deployment is a deployment event: the
// dashboard (or its API) adds it, and the daemon running the rollout, which
// watches the events of its running deployments, cancels the rollout. The
// store carries the request, so a cancel reaches the rollout whichever
// replica on the store runs it.
const (
	StepCancel      = "cancel"    // the event's Step
	CancelRequested = "requested" // its Status
)

// CancelAsked returns the first cancel request among a deployment's events.
func CancelAsked(evs []Event) (Event, bool) {
	for _, e := range evs {
		if e.Step == StepCancel && e.Status == CancelRequested {
			return e, true
		}
	}
	return Event{}, false
}
