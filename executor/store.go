package executor

import (
	"context"
	"time"

	"github.com/bosunhq/bosun/state"
)

// Store is what the executor needs from the state store (package state's
// Store satisfies it): applied state, deployments with their events, and
// the per-service lock, and ending holds (see Apply).
type Store interface {
	PutApplied(ctx context.Context, a state.Applied) error
	DeleteApplied(ctx context.Context, repo, service, role, host string) error
	CreateDeployment(ctx context.Context, d state.Deployment) (int64, error)
	FinishDeployment(ctx context.Context, id int64, status state.Status, errMsg string) error
	AddEvent(ctx context.Context, e state.Event) error
	AcquireLock(ctx context.Context, name, owner string, lease time.Duration) (ok bool, holder state.Lock, err error)
	RenewLock(ctx context.Context, name, owner string, lease time.Duration) error
	ReleaseLock(ctx context.Context, name, owner string) error
	DeleteHold(ctx context.Context, repo, service string) error
}
