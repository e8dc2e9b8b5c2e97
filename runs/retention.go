package runs

import (
	"context"
	"errors"
	"fmt"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/store"
)

// ErrInProgress means a run is being probed by another process right now.
var ErrInProgress = errors.New("the run is being probed by another blockreport process")

// deletable takes the store lock if it is free, and returns whether a run
// in state running is being probed (the lock is held elsewhere). A run
// left running by a process that died is deletable: nobody holds the lock.
func deletable(ctx context.Context, db *store.DB) (busy bool, release func(), err error) {
	release, err = db.Lock(ctx)
	if errors.Is(err, store.ErrLocked) {
		return true, func() {}, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("lock store: %w", err)
	}
	return false, release, nil
}

// Delete removes run id and its results in one transaction and returns how
// many results went with it. It refuses the run being probed (ErrInProgress).
func Delete(ctx context.Context, db *store.DB, id int64) (results int, err error) {
	busy, release, err := deletable(ctx, db)
	if err != nil {
		return 0, err
	}
	defer release()
	run, err := db.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("run %d: %w", id, ErrNoRun)
	}
	if err != nil {
		return 0, err
	}
	if busy && run.State == blockreport.RunRunning {
		return 0, fmt.Errorf("run %d: %w", id, ErrInProgress)
	}
	return db.DeleteRuns(ctx, []int64{id})
}

// Prune deletes every run older than the keep newest finished runs, with
// its results, in one transaction, and returns the deleted runs (with dry,
// the runs it would delete, deleting nothing) and how many results went.
// Unfinished runs newer than the oldest kept one stay (they may be
// resumed), and so does a run being probed.
func Prune(ctx context.Context, db *store.DB, keep int, dry bool) (deleted []blockreport.Run, results int, err error) {
	if keep < 1 {
		return nil, 0, fmt.Errorf("prune: keep %d: want at least 1", keep)
	}
	busy, release, err := deletable(ctx, db)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	all, err := db.Runs(ctx, 0, 0) // newest first
	if err != nil {
		return nil, 0, err
	}
	var cutoff int64 // the oldest finished run kept
	finished := 0
	for _, r := range all {
		if r.State == blockreport.RunFinished {
			if finished++; finished == keep {
				cutoff = r.ID
				break
			}
		}
	}
	if cutoff == 0 {
		return nil, 0, nil // fewer than keep finished runs
	}
	var ids []int64
	for _, r := range all {
		if r.ID >= cutoff || (busy && r.State == blockreport.RunRunning) {
			continue
		}
		deleted = append(deleted, r)
		ids = append(ids, r.ID)
		results += r.Total()
	}
	if dry || len(ids) == 0 {
		return deleted, results, nil
	}
	n, err := db.DeleteRuns(ctx, ids)
	return deleted, n, err
}
