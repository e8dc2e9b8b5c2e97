package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	blockreport "github.com/blockreport/blockreport"
)

// ClaimSends records, durably and before anything is sent, that this
// process is about to send a message to each of refIDs in run runID, and
// returns the ids it claimed, in the order given. An id already claimed in
// the run (by this process, an earlier one that died, or another one) is
// not returned: nobody may send to it again in this run. The claim is one
// committed transaction, so a crash right after it strands at most the ids
// of this call.
func (db *DB) ClaimSends(ctx context.Context, runID int64, refIDs []int64, now time.Time) ([]int64, error) {
	if len(refIDs) == 0 {
		return nil, nil
	}
	rows := make([]struct {
		RunID       int64 `db:"run_id"`
		ReferenceID int64 `db:"reference_id"`
		ClaimedAt   any   `db:"claimed_at"`
	}, len(refIDs))
	for i, id := range refIDs {
		rows[i].RunID, rows[i].ReferenceID, rows[i].ClaimedAt = runID, id, db.ts(now)
	}
	q, args, err := sqlx.Named(`INSERT INTO probe_sends (run_id, reference_id, claimed_at)
		VALUES (:run_id, :reference_id, :claimed_at)
		ON CONFLICT (run_id, reference_id) DO NOTHING RETURNING reference_id`, rows)
	if err != nil {
		return nil, fmt.Errorf("claim %d sends in run %d: %w", len(refIDs), runID, err)
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim %d sends in run %d: %w", len(refIDs), runID, err)
	}
	defer rollback(tx)
	var got []int64
	if err := tx.SelectContext(ctx, &got, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("claim %d sends in run %d: %w", len(refIDs), runID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim %d sends in run %d: commit: %w", len(refIDs), runID, err)
	}
	claimed := make(map[int64]bool, len(got))
	for _, id := range got {
		claimed[id] = true
	}
	out := make([]int64, 0, len(got))
	for _, id := range refIDs {
		if claimed[id] {
			out = append(out, id)
			claimed[id] = false // a repeated id counts once
		}
	}
	return out, nil
}

// ReleaseSends drops the claims of refIDs in run runID that have no result:
// sends that provably never went out (the run stopped before their
// request was written, or the connector refused the bot's token), so that a
// resume may send them. A claim with a result stays.
func (db *DB) ReleaseSends(ctx context.Context, runID int64, refIDs []int64) error {
	if len(refIDs) == 0 {
		return nil
	}
	q, args, err := sqlx.In(`DELETE FROM probe_sends WHERE run_id = ? AND reference_id IN (?)
		AND NOT EXISTS (SELECT 1 FROM probe_results p WHERE p.run_id = probe_sends.run_id AND p.reference_id = probe_sends.reference_id)`,
		runID, refIDs)
	if err != nil {
		return fmt.Errorf("release %d sends in run %d: %w", len(refIDs), runID, err)
	}
	if _, err := db.x.ExecContext(ctx, db.rebind(q), args...); err != nil {
		return fmt.Errorf("release %d sends in run %d: %w", len(refIDs), runID, err)
	}
	return nil
}

// CountSends returns the number of sends claimed in run runID and how many
// of them have no result yet.
func (db *DB) CountSends(ctx context.Context, runID int64) (claimed, unanswered int, err error) {
	var c struct {
		Claimed    int `db:"claimed"`
		Unanswered int `db:"unanswered"`
	}
	err = db.x.GetContext(ctx, &c, db.rebind(`SELECT COUNT(*) AS claimed,
		COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM probe_results p WHERE p.run_id = s.run_id AND p.reference_id = s.reference_id)
			THEN 1 ELSE 0 END), 0) AS unanswered
		FROM probe_sends s WHERE s.run_id = ?`), runID)
	if err != nil {
		return 0, 0, fmt.Errorf("count sends of run %d: %w", runID, err)
	}
	return c.Claimed, c.Unanswered, nil
}

// ReopenResults deletes the results of run runID whose status is one of
// statuses, except those whose reason is in keep, together with their send
// claims and Graph cross-checks, and moves the run back to running, all in one transaction; the
// deleted references are then pending again, to be re-probed in place. It
// returns how many results it deleted; with none, the run is left as it
// was. The run must be finished.
func (db *DB) ReopenResults(ctx context.Context, runID int64, statuses []blockreport.Status, keep []string) (int, error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reopen run %d: %w", runID, err)
	}
	defer rollback(tx)
	var state blockreport.RunState
	err = tx.GetContext(ctx, &state, db.rebind(`SELECT state FROM probe_runs WHERE id = ?`), runID)
	if isNoRows(err) {
		return 0, fmt.Errorf("reopen run %d: %w", runID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("reopen run %d: %w", runID, err)
	}
	if state != blockreport.RunFinished {
		return 0, fmt.Errorf("reopen run %d: the run is %s, not finished", runID, state)
	}
	if len(statuses) == 0 {
		return 0, nil
	}
	names := make([]string, len(statuses))
	for i, st := range statuses {
		names[i] = string(st)
	}
	sel := `SELECT reference_id FROM probe_results WHERE run_id = ? AND status IN (?)`
	selArgs := []any{runID, names}
	if len(keep) > 0 {
		sel += ` AND reason NOT IN (?)`
		selArgs = append(selArgs, keep)
	}
	q, args, err := sqlx.In(sel, selArgs...)
	if err != nil {
		return 0, fmt.Errorf("reopen run %d: %w", runID, err)
	}
	var ids []int64
	if err := tx.SelectContext(ctx, &ids, db.rebind(q), args...); err != nil {
		return 0, fmt.Errorf("reopen run %d: %w", runID, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	for start := 0; start < len(ids); start += saveChunk {
		chunk := ids[start:min(start+saveChunk, len(ids))]
		for _, table := range []string{"probe_sends", "probe_results", "graph_checks"} {
			q, args, err := sqlx.In(`DELETE FROM `+table+` WHERE run_id = ? AND reference_id IN (?)`, runID, chunk)
			if err != nil {
				return 0, fmt.Errorf("reopen run %d: %w", runID, err)
			}
			if _, err := tx.ExecContext(ctx, db.rebind(q), args...); err != nil {
				return 0, fmt.Errorf("reopen run %d: delete from %s: %w", runID, table, err)
			}
		}
	}
	if _, err := db.setState(ctx, tx, runID, blockreport.RunRunning, time.Time{}, false); err != nil {
		return 0, fmt.Errorf("reopen run %d: %w", runID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("reopen run %d: commit: %w", runID, err)
	}
	return len(ids), nil
}
