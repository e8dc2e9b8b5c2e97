package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	blockreport "github.com/blockreport/blockreport"
)

// CreateRun starts a run in state running.
func (db *DB) CreateRun(ctx context.Context, mode string, params json.RawMessage, now time.Time) (blockreport.Run, error) {
	id, err := db.createRun(ctx, db.x, mode, params, now)
	if err != nil {
		return blockreport.Run{}, err
	}
	return db.Run(ctx, id)
}

func (db *DB) createRun(ctx context.Context, q queryer, mode string, params json.RawMessage, now time.Time) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, db.rebind(`INSERT INTO probe_runs (started_at, mode, state, params)
		VALUES (?, ?, ?, ?) RETURNING id`), db.ts(now), mode, string(blockreport.RunRunning), nullText(params)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create run: %w", err)
	}
	return id, nil
}

const runCols = `id, started_at, finished_at, mode, state, params, totals`

// runRow is one probe_runs row.
type runRow struct {
	ID         int64                `db:"id"`
	StartedAt  dbTime               `db:"started_at"`
	FinishedAt dbTime               `db:"finished_at"`
	Mode       string               `db:"mode"`
	State      blockreport.RunState `db:"state"`
	Params     sql.NullString       `db:"params"`
	Totals     sql.NullString       `db:"totals"` // stored when the run finished or failed
}

// Run returns run id with its totals; ErrNotFound if there is none.
func (db *DB) Run(ctx context.Context, id int64) (blockreport.Run, error) {
	return db.oneRun(ctx, fmt.Sprintf("run %d", id), `SELECT `+runCols+` FROM probe_runs WHERE id = ?`, id)
}

// LatestRun returns the newest run; ErrNotFound if there is none.
func (db *DB) LatestRun(ctx context.Context) (blockreport.Run, error) {
	return db.oneRun(ctx, "latest run", `SELECT `+runCols+` FROM probe_runs ORDER BY id DESC LIMIT 1`)
}

// LatestFinishedRun returns the newest finished run; ErrNotFound if there
// is none.
func (db *DB) LatestFinishedRun(ctx context.Context) (blockreport.Run, error) {
	return db.oneRun(ctx, "latest finished run", `SELECT `+runCols+` FROM probe_runs WHERE state = ? ORDER BY id DESC LIMIT 1`,
		string(blockreport.RunFinished))
}

func (db *DB) oneRun(ctx context.Context, what, q string, args ...any) (blockreport.Run, error) {
	runs, err := db.queryRuns(ctx, q, args...)
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(runs) == 0 {
		return blockreport.Run{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return runs[0], nil
}

// Runs lists the runs with id <= upTo (upTo <= 0: all), newest first, at
// most limit of them (limit <= 0: all), with their totals.
func (db *DB) Runs(ctx context.Context, upTo int64, limit int) ([]blockreport.Run, error) {
	q := `SELECT ` + runCols + ` FROM probe_runs`
	var args []any
	if upTo > 0 {
		q += ` WHERE id <= ?`
		args = append(args, upTo)
	}
	q += ` ORDER BY id DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	runs, err := db.queryRuns(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// UnfinishedRun returns the newest run whose state is running or
// interrupted; ok is false when there is none.
func (db *DB) UnfinishedRun(ctx context.Context) (run blockreport.Run, ok bool, err error) {
	run, err = db.oneRun(ctx, "unfinished run", `SELECT `+runCols+` FROM probe_runs WHERE state IN (?, ?) ORDER BY id DESC LIMIT 1`,
		string(blockreport.RunRunning), string(blockreport.RunInterrupted))
	if errors.Is(err, ErrNotFound) {
		return blockreport.Run{}, false, nil
	}
	return run, err == nil, err
}

// SetRunState moves run id to state. For finished and failed it also sets
// finished_at = at and stores the totals; other states clear finished_at.
// A run is normally finished with FinishRun, which makes sure nothing is
// left to probe.
func (db *DB) SetRunState(ctx context.Context, id int64, state blockreport.RunState, at time.Time) error {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set run %d %s: %w", id, state, err)
	}
	defer rollback(tx)
	if _, err := db.setState(ctx, tx, id, state, at, false); err != nil {
		return fmt.Errorf("set run %d %s: %w", id, state, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set run %d %s: commit: %w", id, state, err)
	}
	return nil
}

// FinishRun marks run id finished at `at`, with its totals, provided every
// reference has a result in it; finished is false, and nothing changes,
// when some reference still has none (one imported while the run went on).
// The check and the change are one statement, so a reference committed
// later belongs to the next run.
func (db *DB) FinishRun(ctx context.Context, id int64, at time.Time) (finished bool, err error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("finish run %d: %w", id, err)
	}
	defer rollback(tx)
	finished, err = db.setState(ctx, tx, id, blockreport.RunFinished, at, true)
	if err != nil {
		return false, fmt.Errorf("finish run %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("finish run %d: commit: %w", id, err)
	}
	return finished, nil
}

// pendingWhere is true for a reference r with no result in run ?.
const pendingWhere = `NOT EXISTS (SELECT 1 FROM probe_results p WHERE p.run_id = ? AND p.reference_id = r.id)`

// setState is SetRunState inside tx; with complete, only when no reference
// is pending in the run (changed reports whether it was).
func (db *DB) setState(ctx context.Context, tx *sqlx.Tx, id int64, state blockreport.RunState, at time.Time, complete bool) (changed bool, err error) {
	q := `UPDATE probe_runs SET state = ?, finished_at = NULL, totals = NULL WHERE id = ?`
	args := []any{string(state), id}
	if state == blockreport.RunFinished || state == blockreport.RunFailed {
		totals, err := db.countByStatus(ctx, tx, id)
		if err != nil {
			return false, err
		}
		b, _ := json.Marshal(totals) // a map of strings to ints always marshals
		q = `UPDATE probe_runs SET state = ?, finished_at = ?, totals = ? WHERE id = ?`
		args = []any{string(state), db.ts(at), string(b), id}
	}
	if complete {
		q += ` AND NOT EXISTS (SELECT 1 FROM conversation_references r WHERE ` + pendingWhere + `)`
		args = append(args, id)
	}
	res, err := tx.ExecContext(ctx, db.rebind(q), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n > 0 {
		return true, nil
	}
	var exists bool
	if err := tx.GetContext(ctx, &exists, db.rebind(`SELECT COUNT(*) > 0 FROM probe_runs WHERE id = ?`), id); err != nil {
		return false, err
	}
	if !exists {
		return false, ErrNotFound
	}
	return false, nil
}

// CountPending returns the number of references without a result in run
// runID.
func (db *DB) CountPending(ctx context.Context, runID int64) (int, error) {
	var n int
	if err := db.x.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM conversation_references r WHERE `+pendingWhere), runID); err != nil {
		return 0, fmt.Errorf("count pending references of run %d: %w", runID, err)
	}
	return n, nil
}

// queryRuns runs q (with "?" placeholders) and fills the totals of every
// run: stored ones for finished and failed runs, counted ones for the
// others.
func (db *DB) queryRuns(ctx context.Context, q string, args ...any) ([]blockreport.Run, error) {
	return db.queryRunsWith(ctx, db.x, q, args...)
}

func (db *DB) queryRunsWith(ctx context.Context, x sqlx.QueryerContext, q string, args ...any) ([]blockreport.Run, error) {
	var rows []runRow
	if err := sqlx.SelectContext(ctx, x, &rows, db.rebind(q), args...); err != nil {
		return nil, err
	}
	runs := make([]blockreport.Run, len(rows))
	for i, r := range rows {
		runs[i] = blockreport.Run{ID: r.ID, StartedAt: r.StartedAt.Time, FinishedAt: r.FinishedAt.Time, Mode: r.Mode, State: r.State}
		if r.Params.Valid {
			runs[i].Params = json.RawMessage(r.Params.String)
		}
		var err error
		if r.Totals.Valid {
			err = json.Unmarshal([]byte(r.Totals.String), &runs[i].Totals)
		} else {
			runs[i].Totals, err = db.countByStatus(ctx, x, r.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("totals of run %d: %w", r.ID, err)
		}
	}
	return runs, nil
}

// countByStatus counts the results of run id per status.
func (db *DB) countByStatus(ctx context.Context, q sqlx.QueryerContext, id int64) (map[blockreport.Status]int, error) {
	var counts []struct {
		Status blockreport.Status `db:"status"`
		N      int                `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, q, &counts, db.rebind(`SELECT status, COUNT(*) AS n FROM probe_results WHERE run_id = ? GROUP BY status`), id); err != nil {
		return nil, fmt.Errorf("count results of run %d: %w", id, err)
	}
	totals := make(map[blockreport.Status]int, len(counts))
	for _, c := range counts {
		totals[c.Status] = c.N
	}
	return totals, nil
}

// DeleteRuns removes the runs ids with their results and send records, in
// one transaction; it returns how many results went with them. A missing
// id is an error wrapping ErrNotFound, and then nothing is deleted. The
// caller decides which runs may go (a running run must not).
func (db *DB) DeleteRuns(ctx context.Context, ids []int64) (results int, err error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	defer rollback(tx)
	q, args, err := sqlx.In(`SELECT id FROM probe_runs WHERE id IN (?)`, ids)
	if err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	var found []int64
	if err := tx.SelectContext(ctx, &found, db.rebind(q), args...); err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	if len(found) != len(ids) {
		have := map[int64]bool{}
		for _, id := range found {
			have[id] = true
		}
		for _, id := range ids {
			if !have[id] {
				return 0, fmt.Errorf("delete run %d: %w", id, ErrNotFound)
			}
		}
	}
	q, args, err = sqlx.In(`SELECT COUNT(*) FROM probe_results WHERE run_id IN (?)`, ids)
	if err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	if err := tx.GetContext(ctx, &results, db.rebind(q), args...); err != nil {
		return 0, fmt.Errorf("delete runs: count results: %w", err)
	}
	// Results and send records go with their run (ON DELETE CASCADE).
	q, args, err = sqlx.In(`DELETE FROM probe_runs WHERE id IN (?)`, ids)
	if err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.rebind(q), args...); err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete runs: commit: %w", err)
	}
	return results, nil
}

// isNoRows reports whether err is sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
