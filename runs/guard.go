package runs

import (
	"context"
	"errors"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/store"
)

// Guarded is the store as the probe engine sees it during a run (a
// probe.Store and probe.SendLog): it saves results and claims message sends
// only while this process still holds the store's run lock. A PostgreSQL
// restart drops the advisory lock with its session; store.CheckLock takes
// it back, or finds that another process took it, in which case both must
// not go on probing the same run: Guarded then calls lost with the cause
// (stopping the engine's dispatch) and writes nothing more.
type Guarded struct {
	*store.DB
	owns func(context.Context) error
	lost context.CancelCauseFunc
}

// Guard wraps db, whose run lock this process holds, for a run whose
// context lost cancels.
func Guard(db *store.DB, lost context.CancelCauseFunc) *Guarded {
	return GuardWith(db, db.CheckLock, lost)
}

// GuardWith is Guard with another proof that this process still owns the
// work (a queue worker's: its job is still its own). An error wrapping
// store.ErrLockLost stops the run; any other error is a store failure the
// engine retries.
func GuardWith(db *store.DB, owns func(context.Context) error, lost context.CancelCauseFunc) *Guarded {
	return &Guarded{DB: db, owns: owns, lost: lost}
}

func (g *Guarded) check(ctx context.Context) error {
	err := g.owns(ctx)
	if errors.Is(err, store.ErrLockLost) {
		g.lost(err) // stop dispatching; nothing more is written
	}
	return err
}

// SaveResults saves results while the lock is held.
func (g *Guarded) SaveResults(ctx context.Context, results []blockreport.Result) error {
	if err := g.check(ctx); err != nil {
		return err
	}
	return g.DB.SaveResults(ctx, results)
}

// ClaimSends claims message sends while the lock is held: a process that
// lost it must not send anything more.
func (g *Guarded) ClaimSends(ctx context.Context, runID int64, refIDs []int64, now time.Time) ([]int64, error) {
	if err := g.check(ctx); err != nil {
		return nil, err
	}
	return g.DB.ClaimSends(ctx, runID, refIDs, now)
}
