package executor

import (
	"context"
	"time"
)

// Store is what the executor needs from the state store (package state's
// Store satisfies it): applied state, deployments with their events, and
// the per-service lock, and ending holds (see Apply).
type Store interface {
	PutApplied(ctx context.Context, a StoreApplied) error
	DeleteApplied(ctx context.Context, repo, service, role, host string) error
	CreateDeployment(ctx context.Context, d StoreDeployment) (int64, error)
	FinishDeployment(ctx context.Context, id int64, status StoreStatus, errMsg string) error
	AddEvent(ctx context.Context, e StoreEvent) error
	AcquireLock(ctx context.Context, name, owner string, lease time.Duration) (ok bool, holder StoreLock, err error)
	RenewLock(ctx context.Context, name, owner string, lease time.Duration) error
	ReleaseLock(ctx context.Context, name, owner string) error
	DeleteHold(ctx context.Context, repo, service string) error
}
