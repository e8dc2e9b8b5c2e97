package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	blockreport "github.com/blockreport/blockreport"
)

// Tx is a store transaction for writes that must commit together with
// other writes to the same database: a queue (River, on the store's
// PostgreSQL) inserts its jobs and completes them in the transaction that
// creates a run or saves a chunk's last results. Its SQL is that
// transaction for the other writer. End it with Commit or Rollback.
type Tx struct {
	db *DB
	tx *sqlx.Tx
}

// Begin starts a transaction.
func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin transaction on %s: %w", db.name, err)
	}
	return &Tx{db: db, tx: tx}, nil
}

// SQL returns the transaction, for writers outside the store.
func (t *Tx) SQL() *sql.Tx { return t.tx.Tx }

// Commit commits the transaction.
func (t *Tx) Commit() error {
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback ends the transaction without its writes; after Commit it does
// nothing, so it can be deferred.
func (t *Tx) Rollback() { rollback(t.tx) }

// CreateRun is DB.CreateRun inside the transaction.
func (t *Tx) CreateRun(ctx context.Context, mode string, params json.RawMessage, now time.Time) (blockreport.Run, error) {
	id, err := t.db.createRun(ctx, t.tx, mode, params, now)
	if err != nil {
		return blockreport.Run{}, err
	}
	runs, err := t.db.queryRunsWith(ctx, t.tx, `SELECT `+runCols+` FROM probe_runs WHERE id = ?`, id)
	if err != nil || len(runs) == 0 {
		return blockreport.Run{}, fmt.Errorf("create run: read it back: %v", err)
	}
	return runs[0], nil
}

// SaveResults is DB.SaveResults inside the transaction.
func (t *Tx) SaveResults(ctx context.Context, results []blockreport.Result) error {
	if len(results) == 0 {
		return nil
	}
	return t.db.saveResults(ctx, t.tx, results)
}

// PendingTenants is DB.PendingTenants inside the transaction.
func (t *Tx) PendingTenants(ctx context.Context, runID int64) ([]string, error) {
	return t.db.pendingTenants(ctx, t.tx, runID)
}

// TenantPending reports whether tenantID has a reference without a result
// in run runID, inside the transaction.
func (t *Tx) TenantPending(ctx context.Context, runID int64, tenantID string) (bool, error) {
	var n int
	err := t.tx.GetContext(ctx, &n, t.db.rebind(`SELECT COUNT(*) FROM (SELECT 1 FROM conversation_references r
		WHERE tenant_id = ? AND `+pendingWhere+` LIMIT 1) x`), tenantID, runID)
	if err != nil {
		return false, fmt.Errorf("pending references of run %d tenant %q: %w", runID, tenantID, err)
	}
	return n > 0, nil
}

// SQL returns the store's connection pool, for a writer outside the store
// that shares its database (a queue on the store's PostgreSQL).
func (db *DB) SQL() *sql.DB { return db.x.DB }
