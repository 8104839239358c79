package executor

import "github.com/bosunhq/bosun/state"

// The store's record types, named here so that the Store interface reads
// on its own; they are package state's types, so a state.Store is an
// executor.Store.
type (
	StoreApplied    = state.Applied
	StoreStatus     = state.Status
	StoreDeployment = state.Deployment
	StoreEvent      = state.Event
	StoreLock       = state.Lock
)
