package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// handoffPause is how long after a chunk's last answer the tenant's next
// chunk may start. Each worker's pacer keeps any one-second window at or
// under its ceiling R and makes up lost time at 1.25 × R at most, so any
// interval of d seconds holds at most 1.25·R·d + 1 of its sends; a
// one-second window spanning the hand-off, with a gap g between the two
// workers' sends, holds at most 1.25·R·(1−g) + 2: 39.5 at the worker's
// default R = 40 and g = 0.25 s, under Teams' 50 with room for the
// network's jitter. A quarter second costs a chunk's slot little.
const handoffPause = 250 * time.Millisecond

// ownershipTTL is how long a confirmed ownership of a chunk's job is
// trusted before it is asked again.
const ownershipTTL = time.Second

// chunkWorker works chunk jobs.
type chunkWorker struct {
	river.WorkerDefaults[ChunkArgs]
	w *Worker
}

// Timeout is the job timeout: the chunk's time, its probes' grace and
// the final save.
func (c *chunkWorker) Timeout(*river.Job[ChunkArgs]) time.Duration { return c.w.jobTimeout() }

// NextRetry retries a failed or rescued chunk soon (1 s, 4 s, 9 s, ... at
// most 5 minutes): its tenant waits for it.
func (c *chunkWorker) NextRetry(job *river.Job[ChunkArgs]) time.Time {
	n := max(job.Attempt, 1)
	return time.Now().Add(min(time.Duration(n*n)*time.Second, 5*time.Minute))
}

// Work probes the chunk, then hands the tenant on: the chunk's last results,
// its completion and the tenant's next chunk commit together.
func (c *chunkWorker) Work(ctx context.Context, job *river.Job[ChunkArgs]) error {
	w, a := c.w, job.Args
	log := w.cfg.Logger.With("run", a.RunID, "tenant", a.TenantID, "chunk", a.Seq, "job", job.ID, "attempt", job.Attempt)
	run, err := w.db.Run(ctx, a.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("run %d no longer exists", a.RunID))
	}
	if err != nil {
		return err
	}
	if run.State != blockreport.RunRunning {
		log.Info("run is not running; chunk dropped", "state", run.State)
		return nil // a resume of the run tops it up again
	}
	if err := handoff(ctx, a.After); err != nil {
		return err
	}
	p, err := w.prober(probe.Mode(run.Mode), a.Message)
	if err != nil {
		w.fail(ctx, run.ID, log, err)
		return river.JobCancel(err)
	}

	runCtx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	ch := &chunk{
		Guarded: runs.GuardWith(w.db, w.owns(job), lost), tenant: a.TenantID,
		limit: w.cfg.ChunkSize, deadline: time.Now().Add(w.cfg.ChunkTime),
	}
	start := time.Now()
	probeErr := p.ProbeTenant(runCtx, ch, run.ID, a.TenantID)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if cause := context.Cause(runCtx); errors.Is(cause, store.ErrLockLost) {
		log.Warn("chunk taken over by another worker; stopping without writing more", "err", cause)
		return cause
	}
	switch {
	case probeErr == nil, errors.Is(probeErr, probe.ErrInterrupted) && ctx.Err() != nil:
		// Done, or stopped by a shutdown or the job timeout: either way the
		// tenant goes on in its next chunk, which takes what is left.
	case errors.Is(probeErr, probe.ErrInterrupted):
		// The store stayed down: save what can be saved, retry later.
		ch.flush(bg, log)
		return probeErr
	default:
		// A configuration problem (the token, a 401): the run fails, as it
		// does in-process, and the next run starts afresh.
		ch.flush(bg, log)
		w.fail(bg, run.ID, log, probeErr)
		return river.JobCancel(probeErr)
	}
	more, err := w.handOn(bg, job, ch)
	if err != nil {
		return err
	}
	log.Info("chunk done", "references", ch.handedOut(), "took", time.Since(start).Round(time.Millisecond), "more", more)
	if !more {
		if _, err := runs.Finish(bg, w.db, run.ID, w.cfg.Now()); err != nil {
			log.Warn("could not finish the run; the next chunk or waiter will", "err", err)
		}
	}
	return nil
}

// handoff waits until handoffPause after the previous chunk's last
// request, at most handoffPause (the clocks of two machines may differ).
// The next chunk is queued available rather than scheduled for later:
// River moves scheduled jobs only every few seconds.
func handoff(ctx context.Context, after int64) error {
	if after <= 0 {
		return nil
	}
	d := min(max(handoffPause-time.Since(time.UnixMilli(after)), 0), handoffPause)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// handOn commits, in one transaction, the chunk's last results, its job's
// completion and, when the tenant has references left, its next chunk. It
// reports whether there was a next chunk.
func (w *Worker) handOn(ctx context.Context, job *river.Job[ChunkArgs], ch *chunk) (more bool, err error) {
	a := job.Args
	tx, err := w.db.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	// The job row, locked: nobody rescues or takes it meanwhile.
	var attempt int
	err = tx.SQL().QueryRowContext(ctx, `SELECT attempt FROM river_job WHERE id = $1 AND state = 'running' FOR UPDATE`, job.ID).Scan(&attempt)
	if errors.Is(err, sql.ErrNoRows) || err == nil && attempt != job.Attempt {
		return false, fmt.Errorf("chunk job %d was taken over by another worker: %w", job.ID, store.ErrLockLost)
	}
	if err != nil {
		return false, fmt.Errorf("hand on chunk job %d: %w", job.ID, err)
	}
	if err := tx.SaveResults(ctx, ch.takeHeld()); err != nil {
		return false, err
	}
	if _, err := river.JobCompleteTx[*riverdatabasesql.Driver](ctx, tx.SQL(), job); err != nil {
		return false, fmt.Errorf("complete chunk job %d: %w", job.ID, err)
	}
	if more, err = tx.TenantPending(ctx, a.RunID, a.TenantID); err != nil {
		return false, err
	}
	if more {
		next := ChunkArgs{RunID: a.RunID, TenantID: a.TenantID, Seq: a.Seq + 1, Message: a.Message, After: time.Now().UnixMilli()}
		if _, err := w.client.InsertTx(ctx, tx.SQL(), next, nil); err != nil {
			return false, fmt.Errorf("enqueue chunk %d of tenant %q in run %d: %w", next.Seq, a.TenantID, a.RunID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("hand on chunk job %d: %w", job.ID, err)
	}
	return more, nil
}

// owns is the chunk's proof of ownership for runs.GuardWith: its job is
// still running in this attempt (a rescued job runs again in a higher
// attempt elsewhere). A confirmation is trusted for ownershipTTL.
func (w *Worker) owns(job *river.Job[ChunkArgs]) func(context.Context) error {
	var mu sync.Mutex
	var okUntil time.Time
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Before(okUntil) {
			return nil
		}
		row, err := w.client.JobGet(ctx, job.ID)
		if err != nil {
			if errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("chunk job %d is gone: %w", job.ID, store.ErrLockLost)
			}
			return fmt.Errorf("check chunk job %d: %w", job.ID, err)
		}
		if row.State != "running" || row.Attempt != job.Attempt {
			return fmt.Errorf("chunk job %d was taken over (now %s, attempt %d; ours %d): %w",
				job.ID, row.State, row.Attempt, job.Attempt, store.ErrLockLost)
		}
		okUntil = time.Now().Add(ownershipTTL)
		return nil
	}
}

// fail records run runID failed: a worker could not probe it at all.
func (w *Worker) fail(ctx context.Context, runID int64, log *slog.Logger, err error) {
	log.Error("run failed", "err", err)
	if err := w.db.SetRunState(context.WithoutCancel(ctx), runID, blockreport.RunFailed, w.cfg.Now()); err != nil {
		log.Error("could not record the run as failed", "err", err)
	}
}

// errChunkFull stops the listing of a chunk's references.
var errChunkFull = errors.New("chunk full")

// chunk is the store as the engine sees it while it probes one chunk: only
// the tenant's first limit pending references, listed until the deadline,
// and the newest batch of results held back for the transaction that hands
// the tenant on.
type chunk struct {
	*runs.Guarded
	tenant   string
	limit    int
	deadline time.Time

	mu     sync.Mutex
	handed int   // references handed to the engine
	last   int64 // the highest id handed
	held   []blockreport.Result
}

// PendingTenants is the chunk's one tenant.
func (c *chunk) PendingTenants(context.Context, int64) ([]string, error) {
	return []string{c.tenant}, nil
}

// Pending lists the chunk's references: the tenant's pending references
// in id order, until limit were handed out or the deadline passed.
func (c *chunk) Pending(ctx context.Context, runID int64, tenantID string, fn func(blockreport.Reference) error) error {
	err := c.Guarded.Pending(ctx, runID, tenantID, func(r blockreport.Reference) error {
		c.mu.Lock()
		if r.ID > c.last {
			if c.handed >= c.limit || time.Now().After(c.deadline) {
				c.mu.Unlock()
				return errChunkFull
			}
			c.handed++
			c.last = r.ID
		}
		c.mu.Unlock()
		return fn(r)
	})
	if errors.Is(err, errChunkFull) {
		return nil
	}
	return err
}

// SaveResults saves the batch held back before and holds this one.
func (c *chunk) SaveResults(ctx context.Context, results []blockreport.Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) > 0 {
		if err := c.Guarded.SaveResults(ctx, c.held); err != nil {
			return err
		}
	}
	c.held = append([]blockreport.Result(nil), results...)
	return nil
}

func (c *chunk) takeHeld() []blockreport.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.held
	c.held = nil
	return h
}

func (c *chunk) handedOut() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handed
}

// flush saves the held batch when the chunk ends without handing on.
func (c *chunk) flush(ctx context.Context, log *slog.Logger) {
	if h := c.takeHeld(); len(h) > 0 {
		if err := c.Guarded.SaveResults(ctx, h); err != nil {
			log.Warn("could not save the chunk's last results; they are probed again", "results", len(h), "err", err)
		}
	}
}
