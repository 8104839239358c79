package executor

import (
	"errors"
	"strings"
)

// StepError reports which step of a rollout failed on which host. For
// start and health failures Logs holds the last lines of the new
// container's output.
type StepError struct {
	Host, Service, Role string
	Step                Step
	Err                 error
	Logs                string // last log lines of the container, "" when none
}

func (e *StepError) Error() string {
	s := e.Host + ": " + e.Service + "/" + e.Role + ": " + string(e.Step) + ": " + e.Err.Error()
	if e.Logs != "" {
		s += "\ncontainer log (last lines):\n  " + strings.ReplaceAll(e.Logs, "\n", "\n  ")
	}
	return s
}

func (e *StepError) Unwrap() error { return e.Err }

// ErrLockTimeout is returned when ApplyOpts.LockWait passed while another
// rollout of the service held its lock.
var ErrLockTimeout = errors.New("timed out waiting for the service lock")

// RolloutError is the error of an Apply that failed: the first step error
// and what was done about it.
type RolloutError struct {
	Service    string
	Err        error    // the first failure, usually a *StepError
	RolledBack []string // targets ("service/role@host") put back on their previous version
	Undo       []error  // failures while putting hosts back, if any
}

func (e *RolloutError) Error() string {
	s := "rollout of " + e.Service + " failed: " + e.Err.Error()
	if len(e.RolledBack) > 0 {
		s += "\nrolled back: " + strings.Join(e.RolledBack, ", ")
	}
	for _, u := range e.Undo {
		s += "\nrollback error: " + u.Error()
	}
	return s
}

func (e *RolloutError) Unwrap() error { return e.Err }

// ErrLockLost is the cause of a rollout stopped because its service lock
// was found held by someone else at a renewal: this process stalled past
// the lease (Config.LockLease) and another rollout may have taken over.
var ErrLockLost = errors.New("lost the service lock")

// Cancelled is the cause with which a person's cancel ends a rollout's
// context (context.WithCancelCause): Apply stops as it does when its
// context ends, leaving every host on its old or new version, and its
// error wraps the *Cancelled, which says who asked.
type Cancelled struct {
	Actor string // "github:alice", "token:ci"
}

func (c *Cancelled) Error() string { return "cancelled by " + c.Actor }

func isCancelled(err error) bool {
	var c *Cancelled
	return errors.As(err, &c)
}
