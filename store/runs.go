package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// CreateRun starts a run in state running.
func (db *DB) CreateRun(ctx context.Context, mode string, params json.RawMessage, now time.Time) (blockreport.Run, error) {
	var id int64
	err := db.x.QueryRowContext(ctx, db.rebind(`INSERT INTO probe_runs (started_at, mode, state, params)
		VALUES (?, ?, ?, ?) RETURNING id`), db.ts(now), mode, string(blockreport.RunRunning), nullText(params)).Scan(&id)
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("create run: %w", err)
	}
	return db.Run(ctx, id)
}

const runCols = `id, started_at, finished_at, mode, state, params, totals`

// Run returns run id with its totals; ErrNotFound if there is none.
func (db *DB) Run(ctx context.Context, id int64) (blockreport.Run, error) {
	runs, err := db.queryRuns(ctx, `SELECT `+runCols+` FROM probe_runs WHERE id = ?`, id)
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	if len(runs) == 0 {
		return blockreport.Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return runs[0], nil
}

// LatestRun returns the newest run; ErrNotFound if there is none.
func (db *DB) LatestRun(ctx context.Context) (blockreport.Run, error) {
	runs, err := db.queryRuns(ctx, `SELECT `+runCols+` FROM probe_runs ORDER BY id DESC LIMIT 1`)
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("latest run: %w", err)
	}
	if len(runs) == 0 {
		return blockreport.Run{}, fmt.Errorf("latest run: %w", ErrNotFound)
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
	runs, err := db.queryRuns(ctx, `SELECT `+runCols+` FROM probe_runs WHERE state IN (?, ?) ORDER BY id DESC LIMIT 1`,
		string(blockreport.RunRunning), string(blockreport.RunInterrupted))
	if err != nil {
		return blockreport.Run{}, false, fmt.Errorf("unfinished run: %w", err)
	}
	if len(runs) == 0 {
		return blockreport.Run{}, false, nil
	}
	return runs[0], true, nil
}

// SetRunState moves run id to state. For finished and failed it also sets
// finished_at = at and stores the totals; other states clear finished_at.
func (db *DB) SetRunState(ctx context.Context, id int64, state blockreport.RunState, at time.Time) error {
	var res sql.Result
	var err error
	if state == blockreport.RunFinished || state == blockreport.RunFailed {
		var totals map[blockreport.Status]int
		totals, err = db.countByStatus(ctx, id)
		if err != nil {
			return fmt.Errorf("set run %d %s: %w", id, state, err)
		}
		b, _ := json.Marshal(totals) // a map of strings to ints always marshals
		res, err = db.x.ExecContext(ctx, db.rebind(`UPDATE probe_runs SET state = ?, finished_at = ?, totals = ? WHERE id = ?`),
			string(state), db.ts(at), string(b), id)
	} else {
		res, err = db.x.ExecContext(ctx, db.rebind(`UPDATE probe_runs SET state = ?, finished_at = NULL, totals = NULL WHERE id = ?`),
			string(state), id)
	}
	if err != nil {
		return fmt.Errorf("set run %d %s: %w", id, state, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("set run %d %s: %w", id, state, ErrNotFound)
	}
	return nil
}

// queryRuns runs q (with "?" placeholders) and fills the totals of every
// run: stored ones for finished runs, counted ones for the others.
func (db *DB) queryRuns(ctx context.Context, q string, args ...any) ([]blockreport.Run, error) {
	rows, err := db.x.QueryContext(ctx, db.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []blockreport.Run
	var stored []sql.NullString
	for rows.Next() {
		var r blockreport.Run
		var params, totals sql.NullString
		if err := rows.Scan(&r.ID, timeCol{&r.StartedAt}, timeCol{&r.FinishedAt}, &r.Mode, &r.State, &params, &totals); err != nil {
			return nil, err
		}
		if params.Valid {
			r.Params = json.RawMessage(params.String)
		}
		runs = append(runs, r)
		stored = append(stored, totals)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close() // before the next queries: SQLite has one connection
	for i := range runs {
		if stored[i].Valid {
			if err := json.Unmarshal([]byte(stored[i].String), &runs[i].Totals); err != nil {
				return nil, fmt.Errorf("totals of run %d: %w", runs[i].ID, err)
			}
			continue
		}
		if runs[i].Totals, err = db.countByStatus(ctx, runs[i].ID); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// countByStatus counts the results of run id per status.
func (db *DB) countByStatus(ctx context.Context, id int64) (map[blockreport.Status]int, error) {
	rows, err := db.x.QueryContext(ctx, db.rebind(`SELECT status, COUNT(*) FROM probe_results WHERE run_id = ? GROUP BY status`), id)
	if err != nil {
		return nil, fmt.Errorf("count results of run %d: %w", id, err)
	}
	defer rows.Close()
	totals := map[blockreport.Status]int{}
	for rows.Next() {
		var s blockreport.Status
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count results of run %d: %w", id, err)
		}
		totals[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count results of run %d: %w", id, err)
	}
	return totals, nil
}

// isNoRows reports whether err is sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
