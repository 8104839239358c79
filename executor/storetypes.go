package executor

import "time"

// These mirror package state's types (state.Applied, state.Deployment, …)
// until that package is in the tree; then they become aliases of them, so
// that a state.Store is an executor.Store.

// StoreApplied is state.Applied.
type StoreApplied struct {
	Repo, Service, Role, Host, Version, Commit string
	Spec                                       []byte
	AppliedAt                                  time.Time
}

// StoreStatus is state.Status.
type StoreStatus string

// StoreDeployment is state.Deployment.
type StoreDeployment struct {
	ID                    int64
	Repo, Service, Commit string
	Status                StoreStatus
	Trigger               string
	Error                 string
	StartedAt             time.Time
	FinishedAt            *time.Time
}

// StoreEvent is state.Event.
type StoreEvent struct {
	DeploymentID                int64
	Host, Step, Status, Message string
	At                          time.Time
}

// StoreLock is state.Lock.
type StoreLock struct {
	Name, Owner string
	ExpiresAt   time.Time
}
