package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// ErrNeedsPostgres means the store is not on PostgreSQL: the embedded
// SQLite store keeps the in-process engine.
var ErrNeedsPostgres = errors.New("the queue needs a PostgreSQL store (--db postgres://...); the embedded SQLite store probes in-process")

// queueName is the River queue of blockreport's jobs.
const queueName = "blockreport"

// liveStates are the job states in which a chain's job is still to run or
// running: a second job of the same run and tenant is not inserted while
// one of them is in one of these states.
var liveStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// ChunkArgs are the arguments of a chunk job: the next pending references
// of one tenant in one run.
type ChunkArgs struct {
	RunID    int64  `json:"run_id" river:"unique"`
	TenantID string `json:"tenant_id" river:"unique"`
	// Seq numbers the tenant's chunks in the run, from 1.
	Seq int `json:"seq"`
	// Message is, in message mode, the message file's contents (never a
	// secret), so that every worker sends the same message.
	Message []byte `json:"message,omitempty"`
	// After is when the previous chunk of the tenant sent its last request
	// (Unix milliseconds, its worker's clock; 0 for a first chunk): this
	// chunk's first request waits until handoffPause after it.
	After int64 `json:"after,omitempty"`
}

// Kind is the River job kind of a chunk.
func (ChunkArgs) Kind() string { return "blockreport_probe_chunk" }

// InsertOpts puts chunks on blockreport's queue, one live chain per run and
// tenant.
func (ChunkArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 20,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// driver is the River driver over the store's database/sql pool (lib/pq).
func driver(db *store.DB) (*riverdatabasesql.Driver, error) {
	if db.Driver() != store.Postgres {
		return nil, ErrNeedsPostgres
	}
	return riverdatabasesql.New(db.SQL()), nil
}

// migrateLock is the advisory lock key that serializes River's migrations
// between blockreport processes starting at once ("brqueue\0").
const migrateLock int64 = 0x627271756575650

// Migrate creates or updates River's tables in the store's database,
// beside goose's (River records its versions in river_migration). It is
// idempotent, and processes starting at once take turns. It returns the
// versions it applied.
func Migrate(ctx context.Context, db *store.DB) ([]int, error) {
	drv, err := driver(db)
	if err != nil {
		return nil, err
	}
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate queue tables: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return nil, fmt.Errorf("migrate queue tables: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock) //nolint:errcheck
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("migrate queue tables: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate queue tables: %w", err)
	}
	var applied []int
	for _, v := range res.Versions {
		applied = append(applied, v.Version)
	}
	return applied, nil
}

// Version returns the newest River migration applied (0: none).
func Version(ctx context.Context, db *store.DB) (int, error) {
	drv, err := driver(db)
	if err != nil {
		return 0, err
	}
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	vs, err := m.ExistingVersions(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue tables version: %w", err)
	}
	if len(vs) == 0 {
		return 0, nil
	}
	return vs[len(vs)-1].Version, nil
}

// Queue inserts chunk jobs and watches runs: what `run --queue` and the
// scheduler need. Workers run them (see Worker).
type Queue struct {
	db     *store.DB
	client *river.Client[*sql.Tx]
}

// Open returns a Queue on db's PostgreSQL, migrating River's tables first.
func Open(ctx context.Context, db *store.DB, logger *slog.Logger) (*Queue, error) {
	if _, err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	drv, err := driver(db)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, err := river.NewClient(drv, &river.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	return &Queue{db: db, client: client}, nil
}

// Enqueue inserts, inside tx, the first chunk of every tenant with pending
// references in run, except tenants whose chain is already live; it
// returns how many chains it started. message is the message-mode
// message (nil otherwise).
func (q *Queue) Enqueue(ctx context.Context, tx *store.Tx, run blockreport.Run, message []byte) (int, error) {
	return enqueue(ctx, q.client, tx, run.ID, message)
}

func enqueue(ctx context.Context, client *river.Client[*sql.Tx], tx *store.Tx, runID int64, message []byte) (int, error) {
	tenants, err := tx.PendingTenants(ctx, runID)
	if err != nil {
		return 0, err
	}
	if len(tenants) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(tenants))
	for i, t := range tenants {
		params[i] = river.InsertManyParams{Args: ChunkArgs{RunID: runID, TenantID: t, Seq: 1, Message: message}}
	}
	res, err := client.InsertManyTx(ctx, tx.SQL(), params)
	if err != nil {
		return 0, fmt.Errorf("enqueue the chunks of run %d: %w", runID, err)
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

// TopUp starts, in its own transaction, a chain for every tenant of run
// that has pending references and no live chain: after a resume, after
// references were imported during the run, or after a chain gave up.
func (q *Queue) TopUp(ctx context.Context, run blockreport.Run, message []byte) (int, error) {
	tx, err := q.db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	n, err := q.Enqueue(ctx, tx, run, message)
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// Live counts the run's chunk jobs still to run or running.
func (q *Queue) Live(ctx context.Context, runID int64) (int, error) {
	var n int
	err := q.db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job
		WHERE kind = $1 AND (args->>'run_id')::bigint = $2 AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled')`,
		ChunkArgs{}.Kind(), runID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the live chunks of run %d: %w", runID, err)
	}
	return n, nil
}

// Progress is what Wait reports while it waits.
type Progress struct {
	Run     blockreport.Run // with its totals so far
	Pending int             // references without a result
	Live    int             // chunk jobs still to run or running
}

// Wait polls run every interval until it is finished (returned with its
// totals) or failed (returned with an error), calling progress after each
// poll. While references are pending and no chain is live it tops the run
// up, so a run whose chains all ended (references imported meanwhile, a
// chain that gave up) still gets done. It returns ctx's error when ctx
// ends first; the run goes on in the workers.
func (q *Queue) Wait(ctx context.Context, runID int64, message []byte, interval time.Duration, progress func(Progress)) (blockreport.Run, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		run, err := q.db.Run(ctx, runID)
		if err != nil {
			return run, err
		}
		p := Progress{Run: run}
		switch run.State {
		case blockreport.RunFinished:
			return run, nil
		case blockreport.RunFailed:
			return run, fmt.Errorf("run %d failed on a worker (see the workers' logs: a credential or configuration problem)", run.ID)
		}
		if p.Pending, err = q.db.CountPending(ctx, runID); err != nil {
			return run, err
		}
		if p.Live, err = q.Live(ctx, runID); err != nil {
			return run, err
		}
		if p.Live == 0 {
			if p.Pending == 0 {
				if _, err := runs.Finish(ctx, q.db, runID, time.Now()); err != nil {
					return run, err
				}
			} else if run.State == blockreport.RunRunning {
				if p.Live, err = q.TopUp(ctx, run, message); err != nil {
					return run, err
				}
			}
		}
		if progress != nil {
			progress(p)
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-t.C:
		}
	}
}
