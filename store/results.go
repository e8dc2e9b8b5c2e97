package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	blockreport "github.com/blockreport/blockreport"
)

// pendingPage is the number of references Pending reads per query.
const pendingPage = 1000

// PendingTenants lists, in order, the tenants that have references without
// a result in run runID.
func (db *DB) PendingTenants(ctx context.Context, runID int64) ([]string, error) {
	return db.pendingTenants(ctx, db.x, runID)
}

func (db *DB) pendingTenants(ctx context.Context, q sqlx.QueryerContext, runID int64) ([]string, error) {
	var tenants []string
	if err := sqlx.SelectContext(ctx, q, &tenants, db.rebind(`SELECT DISTINCT tenant_id FROM conversation_references r
		WHERE `+pendingWhere+` ORDER BY tenant_id`), runID); err != nil {
		return nil, fmt.Errorf("pending tenants of run %d: %w", runID, err)
	}
	return tenants, nil
}

// Pending calls fn, in id order, for every reference of tenantID with no
// result yet in run runID. It reads pages of references by id and holds no
// cursor while fn runs, so fn may call SaveResults (even on SQLite's single
// connection). An error from fn stops the stream and is returned as is.
// Opted-out references are included: skipping them is the caller's policy.
func (db *DB) Pending(ctx context.Context, runID int64, tenantID string, fn func(blockreport.Reference) error) error {
	var after int64
	for {
		page, err := db.pendingPage(ctx, runID, tenantID, after)
		if err != nil {
			return fmt.Errorf("pending references of run %d tenant %q: %w", runID, tenantID, err)
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < pendingPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

func (db *DB) pendingPage(ctx context.Context, runID int64, tenantID string, after int64) ([]blockreport.Reference, error) {
	var rows []refRow
	err := db.x.SelectContext(ctx, &rows, db.rebind(`SELECT `+refCols+` FROM conversation_references r
		WHERE tenant_id = ? AND id > ? AND `+pendingWhere+`
		ORDER BY id LIMIT ?`), tenantID, after, runID, pendingPage)
	if err != nil {
		return nil, err
	}
	page := make([]blockreport.Reference, len(rows))
	for i, r := range rows {
		page[i] = r.reference()
	}
	return page, nil
}

// saveChunk is the number of results per INSERT (11 parameters each).
const saveChunk = 500

// SaveResults writes results in one transaction. It is idempotent: a result
// already recorded for the same run and reference is kept, so a resumed run
// never double-counts. For each result it stores previous_status (the status
// of the reference's result in the latest earlier finished run, "" if none:
// an interrupted or failed run is never the baseline of a change) and
// status_since (that result's status_since when the status is unchanged,
// else the start of this run). A result with NewConversationID sets the
// reference's conversation id, unless another reference of the same tenant
// and user already has that id. A result whose reference was deleted in the
// meantime is skipped: there is nothing left to report it on.
func (db *DB) SaveResults(ctx context.Context, results []blockreport.Result) error {
	if len(results) == 0 {
		return nil
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save results: %w", err)
	}
	defer rollback(tx)
	if err := db.saveResults(ctx, tx, results); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save results of run %d: commit: %w", results[0].RunID, err)
	}
	return nil
}

// saveResults is SaveResults inside tx.
func (db *DB) saveResults(ctx context.Context, tx *sqlx.Tx, results []blockreport.Result) error {
	started := map[int64]time.Time{}
	for start := 0; start < len(results); start += saveChunk {
		chunk := results[start:min(start+saveChunk, len(results))]
		for _, r := range chunk {
			if _, ok := started[r.RunID]; ok {
				continue
			}
			var t dbTime
			err := tx.GetContext(ctx, &t, db.rebind(`SELECT started_at FROM probe_runs WHERE id = ?`), r.RunID)
			if isNoRows(err) {
				return fmt.Errorf("save results of run %d: %w", r.RunID, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("save results of run %d: %w", r.RunID, err)
			}
			started[r.RunID] = t.Time
		}
		if err := db.saveChunk(ctx, tx, chunk, started); err != nil {
			return fmt.Errorf("save results of run %d: %w", chunk[0].RunID, err)
		}
	}
	return nil
}

// prevResult is a reference's result in the latest earlier finished run.
type prevResult struct {
	ReferenceID int64              `db:"reference_id"`
	Status      blockreport.Status `db:"status"`
	Since       dbTime             `db:"status_since"`
}

// resultInsert is one probe_results row as SaveResults writes it.
type resultInsert struct {
	RunID          int64  `db:"run_id"`
	ReferenceID    int64  `db:"reference_id"`
	Status         string `db:"status"`
	Reason         string `db:"reason"`
	HTTPStatus     int    `db:"http_status"`
	Detail         string `db:"detail"`
	Attempts       int    `db:"attempts"`
	LatencyMS      int64  `db:"latency_ms"`
	ProbedAt       any    `db:"probed_at"`
	PreviousStatus string `db:"previous_status"`
	StatusSince    any    `db:"status_since"`
}

func (db *DB) saveChunk(ctx context.Context, tx *sqlx.Tx, results []blockreport.Result, started map[int64]time.Time) error {
	results, err := db.withReference(ctx, tx, results)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return nil
	}
	// The previous result of each reference, per run of the chunk (a chunk
	// normally holds one run).
	prev := map[[2]int64]prevResult{}
	byRun := map[int64][]int64{}
	for _, r := range results {
		byRun[r.RunID] = append(byRun[r.RunID], r.ReferenceID)
	}
	for runID, refIDs := range byRun {
		q, args, err := sqlx.In(`SELECT p.reference_id, p.status, p.status_since FROM probe_results p
			WHERE p.reference_id IN (?)
			AND p.run_id = (SELECT MAX(q.run_id) FROM probe_results q JOIN probe_runs f ON f.id = q.run_id
				WHERE q.reference_id = p.reference_id AND q.run_id < ? AND f.state = ?)`,
			refIDs, runID, string(blockreport.RunFinished))
		if err != nil {
			return fmt.Errorf("read previous results: %w", err)
		}
		var rows []prevResult
		if err := tx.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
			return fmt.Errorf("read previous results: %w", err)
		}
		for _, p := range rows {
			prev[[2]int64{runID, p.ReferenceID}] = p
		}
	}

	rows := make([]resultInsert, len(results))
	for i, r := range results {
		p := prev[[2]int64{r.RunID, r.ReferenceID}]
		since := started[r.RunID]
		if p.Status == r.Status {
			since = p.Since.Time
		}
		rows[i] = resultInsert{RunID: r.RunID, ReferenceID: r.ReferenceID, Status: string(r.Status), Reason: r.Reason,
			HTTPStatus: r.HTTPStatus, Detail: r.Detail, Attempts: r.Attempts, LatencyMS: r.Latency.Milliseconds(),
			ProbedAt: db.ts(r.ProbedAt), PreviousStatus: string(p.Status), StatusSince: db.ts(since)}
	}
	q, args, err := sqlx.Named(`INSERT INTO probe_results
		(run_id, reference_id, status, reason, http_status, detail, attempts, latency_ms, probed_at, previous_status, status_since)
		VALUES (:run_id, :reference_id, :status, :reason, :http_status, :detail, :attempts, :latency_ms, :probed_at, :previous_status, :status_since)
		ON CONFLICT (run_id, reference_id) DO NOTHING`, rows)
	if err != nil {
		return fmt.Errorf("write %d results: %w", len(results), err)
	}
	if _, err := tx.ExecContext(ctx, db.rebind(q), args...); err != nil {
		return fmt.Errorf("write %d results: %w", len(results), err)
	}

	for _, r := range results {
		if r.NewConversationID == "" {
			continue
		}
		_, err := tx.ExecContext(ctx, db.rebind(`UPDATE conversation_references SET conversation_id = ?
			WHERE id = ? AND NOT EXISTS (SELECT 1 FROM conversation_references o
				WHERE o.tenant_id = conversation_references.tenant_id AND o.user_id = conversation_references.user_id
				AND o.conversation_id = ?)`), r.NewConversationID, r.ReferenceID, r.NewConversationID)
		if err != nil {
			return fmt.Errorf("set conversation id of reference %d: %w", r.ReferenceID, err)
		}
	}
	return nil
}

// withReference returns the results whose reference still exists. A
// reference deleted while its probe was in flight leaves nothing to report
// on, and its result would fail the foreign key of the whole INSERT.
func (db *DB) withReference(ctx context.Context, tx *sqlx.Tx, results []blockreport.Result) ([]blockreport.Result, error) {
	ids := make([]int64, len(results))
	for i, r := range results {
		ids[i] = r.ReferenceID
	}
	q, args, err := sqlx.In(`SELECT id FROM conversation_references WHERE id IN (?)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	var found []int64
	if err := tx.SelectContext(ctx, &found, db.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	if len(found) == len(results) {
		return results, nil
	}
	exists := make(map[int64]bool, len(found))
	for _, id := range found {
		exists[id] = true
	}
	kept := make([]blockreport.Result, 0, len(exists))
	for _, r := range results {
		if exists[r.ReferenceID] {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// CountResults returns the number of results recorded for run runID.
func (db *DB) CountResults(ctx context.Context, runID int64) (int, error) {
	var n int
	if err := db.x.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM probe_results WHERE run_id = ?`), runID); err != nil {
		return 0, fmt.Errorf("count results of run %d: %w", runID, err)
	}
	return n, nil
}

// Rows calls fn for every result of run runID joined with its reference,
// ordered by tenant, user name and reference id. It streams from one
// query, so memory stays flat however many rows there are; fn must not use
// the store (on SQLite the query holds the only connection). Rows leave
// Reference.Raw empty: reports do not need it.
// rowsCacheKiB is the SQLite page cache while Rows reads (see Rows);
// sqliteCacheKiB the connection's own, as the DSN of Open sets it.
const (
	rowsCacheKiB   = 8 << 10
	sqliteCacheKiB = 64 << 10
)

func (db *DB) Rows(ctx context.Context, runID int64, fn func(blockreport.Row) error) error {
	conn, err := db.x.Connx(ctx)
	if err != nil {
		return fmt.Errorf("rows of run %d: %w", runID, err)
	}
	defer conn.Close()
	if db.driver != SQLite {
		// PostgreSQL sorts on the server (spilling past work_mem) and
		// lib/pq hands the rows over as they arrive.
		return db.rowsOf(ctx, conn, runID, fn, `FROM probe_results p JOIN conversation_references r ON r.id = p.reference_id `+graphJoins+`
		WHERE p.run_id = ?`, runID)
	}
	// SQLite sorts in the client's memory, in a cache the size of the page
	// cache (64 MiB, for imports, held about twice over by its allocator),
	// then in temporary files merged over and over: a million rows sorted
	// at once took minutes and ~270 MB. Tenant by tenant, with a small
	// cache, each sort is a tenant's rows, driven by the tenant index.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", rowsCacheKiB)); err != nil {
		return fmt.Errorf("rows of run %d: %w", runID, err)
	}
	defer func() {
		// Back to the connection's own size, for whatever comes next.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA cache_size = -%d", sqliteCacheKiB))
	}()
	var tenants []string
	if err := conn.SelectContext(ctx, &tenants, `SELECT DISTINCT tenant_id FROM conversation_references ORDER BY tenant_id`); err != nil {
		return fmt.Errorf("rows of run %d: tenants: %w", runID, err)
	}
	for _, t := range tenants {
		// CROSS JOIN keeps SQLite's loop on the tenant's references.
		err := db.rowsOf(ctx, conn, runID, fn, `FROM conversation_references r CROSS JOIN probe_results p
		ON p.run_id = ? AND p.reference_id = r.id `+graphJoins+`
		WHERE r.tenant_id = ?`, runID, t)
		if err != nil {
			return err
		}
	}
	return nil
}

// rowsOf calls fn for each row of one Rows query (from: its FROM and
// WHERE clauses).
func (db *DB) rowsOf(ctx context.Context, conn *sqlx.Conn, runID int64, fn func(blockreport.Row) error, from string, args ...any) error {
	rows, err := conn.QueryxContext(ctx, db.rebind(`SELECT r.id, r.tenant_id, r.user_id, r.aad_object_id, r.user_name,
		r.email, r.conversation_id, r.conversation_type, r.team_id, r.service_url, r.bot_id, r.channel_id, r.locale,
		r.opted_out, r.first_seen, r.last_seen, r.source, r.source_key,
		p.run_id, p.status, p.reason, p.http_status, p.detail, p.attempts, p.latency_ms, p.probed_at,
		p.previous_status, p.status_since, `+graphCols+`
		`+from+`
		ORDER BY r.tenant_id, r.user_name, r.id`), args...)
	if err != nil {
		return fmt.Errorf("rows of run %d: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r resultRow
		if err := rows.StructScan(&r); err != nil {
			return fmt.Errorf("rows of run %d: %w", runID, err)
		}
		if err := fn(r.row()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rows of run %d: %w", runID, err)
	}
	return nil
}
