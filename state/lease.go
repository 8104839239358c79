package state

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// LockRenewer is what HoldLock needs of a Store.
type LockRenewer interface {
	RenewLock(ctx context.Context, name, owner string, lease time.Duration) error
	ReleaseLock(ctx context.Context, name, owner string) error
}

// HoldLock keeps owner's lease on the lock name, which owner has just taken
// (AcquireLock), for as long as the work it guards runs: it renews the lease
// every lease/3 until release is called. This is the one rule for every
// holder of a lease: when the lease is lost, the holder stops its work.
// When a renewal finds the lock no longer held (ErrNotHeld: this process
// stalled past the lease, and another owner may have taken it) the returned
// context, derived from ctx, is cancelled with cause lost, and renewing
// stops: the work must end rather than race the new owner. Any other
// renewal error is logged on log and the renewal retried, since the store
// may be back before the lease runs out.
//
// release stops the renewals, cancels the context and gives the lease up;
// a lease that was lost is left to its new owner. Renewals and the release
// are not stopped by ctx ending: the lease is held until release.
func HoldLock(ctx context.Context, st LockRenewer, name, owner string, lease time.Duration, lost error, log *slog.Logger) (held context.Context, release func()) {
	held, cancel := context.WithCancelCause(ctx)
	bg := context.WithoutCancel(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(bg, lease)
				err := st.RenewLock(rctx, name, owner, lease)
				rcancel()
				switch {
				case errors.Is(err, ErrNotHeld):
					cancel(lost)
					return
				case err != nil:
					log.WarnContext(bg, "lease not renewed; retrying", "lock", name, "err", err)
				}
			}
		}
	}()
	return held, func() {
		close(stop)
		<-done
		wasLost := errors.Is(context.Cause(held), lost)
		cancel(nil)
		rctx, rcancel := context.WithTimeout(bg, lease)
		defer rcancel()
		if err := st.ReleaseLock(rctx, name, owner); err != nil && !(wasLost && errors.Is(err, ErrNotHeld)) {
			log.WarnContext(bg, "lease not released", "lock", name, "err", err)
		}
	}
}
