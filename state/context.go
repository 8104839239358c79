package state

import (
	"context"
	"time"
)

// CallTimeout bounds one store call whose caller's context does not bound
// it: a call that must be made after its caller was cancelled, or one a
// background loop makes.
const CallTimeout = 30 * time.Second

// Detached returns the context for a store call that must be made even when
// ctx has ended, such as recording a rollout's result or releasing a lock:
// ctx's values without its cancellation, bounded by CallTimeout.
func Detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), CallTimeout)
}
