package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/riverqueue/river"

	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// Defaults of a Worker's Config.
const (
	DefaultChunkSize = 2000
	DefaultChunkTime = 30 * time.Second
	DefaultJobs      = 16
)

// Config configures a Worker. Zero values take the defaults.
type Config struct {
	// Prober returns the prober of a chunk in mode (with message in message
	// mode) whose requests in flight are bounded by concurrency; the
	// worker gives each of its Jobs chunks a share of Concurrency.
	Prober func(mode probe.Mode, message []byte, concurrency int) (*probe.Prober, error)
	// Concurrency bounds the requests in flight across the chunks this
	// worker holds (default probe.DefaultConcurrency).
	Concurrency int
	// Jobs is how many chunks (tenants) the worker holds at once, at most
	// Concurrency (default 16).
	Jobs int
	// ChunkSize and ChunkTime bound a chunk: at most ChunkSize references
	// (default 2,000), handed out for at most ChunkTime (default 30 s).
	ChunkSize int
	ChunkTime time.Duration
	// Grace is what the probes in flight get when the worker stops or a
	// chunk times out (the probers' Grace); it counts into the job timeout.
	Grace time.Duration
	// RescueAfter is how long a chunk may stay running before the leader
	// hands it to another worker (its worker died). Default: the job
	// timeout (JobTimeout: ChunkTime + Grace + 10 s) plus 10 s: 60 s at
	// the defaults, which with River's 30 s rescuer cycle gets a dead
	// worker's chunk taken over within about 90 s. It must be the same on
	// every worker.
	RescueAfter time.Duration
	// PollInterval is how often the worker looks for new chunks (default
	// 1 s; River's database/sql driver has no LISTEN/NOTIFY).
	PollInterval time.Duration
	// Schedule, when set, starts runs on a cron schedule (see Schedule).
	Schedule *Schedule
	Logger   *slog.Logger     // default discards
	Now      func() time.Time // clock of the runs' times (default time.Now)
}

// Worker takes chunks off the queue and probes them.
type Worker struct {
	db     *store.DB
	cfg    Config
	client *river.Client[*sql.Tx]
	share  int // concurrency per chunk
}

// NewWorker checks cfg, migrates River's tables and returns a Worker on db's
// PostgreSQL; Run starts it.
func NewWorker(ctx context.Context, db *store.DB, cfg Config) (*Worker, error) {
	if cfg.Prober == nil {
		return nil, errors.New("queue worker: no prober")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = probe.DefaultConcurrency
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = DefaultJobs
	}
	cfg.Jobs = min(cfg.Jobs, cfg.Concurrency)
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.ChunkTime <= 0 {
		cfg.ChunkTime = DefaultChunkTime
	}
	cfg.Grace = max(cfg.Grace, 0)
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Worker{db: db, cfg: cfg, share: max(cfg.Concurrency/cfg.Jobs, 1)}
	if cfg.RescueAfter <= 0 {
		w.cfg.RescueAfter = w.jobTimeout() + 10*time.Second
	}
	if w.cfg.RescueAfter <= w.jobTimeout() {
		return nil, fmt.Errorf("queue worker: the rescue delay %s must exceed the job timeout %s (chunk time + grace + 10s)", w.cfg.RescueAfter, w.jobTimeout())
	}
	if _, err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	drv, err := driver(db)
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &chunkWorker{w: w})
	host, _ := os.Hostname()
	rc := &river.Config{
		// The host and process id: a job's attempted_by names the
		// process that works it.
		ID:                   fmt.Sprintf("%.80s-%d", host, os.Getpid()),
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: cfg.Jobs, FetchPollInterval: cfg.PollInterval}},
		Workers:              workers,
		JobTimeout:           w.jobTimeout(),
		RescueStuckJobsAfter: w.cfg.RescueAfter,
		Logger:               cfg.Logger.With("component", "river"),
	}
	if cfg.Schedule != nil {
		if err := w.schedule(workers, rc, cfg.Schedule); err != nil {
			return nil, err
		}
	}
	if w.client, err = river.NewClient(drv, rc); err != nil {
		return nil, fmt.Errorf("queue worker: %w", err)
	}
	return w, nil
}

// jobTimeout bounds one chunk job.
func (w *Worker) jobTimeout() time.Duration { return JobTimeout(w.cfg.ChunkTime, w.cfg.Grace) }

// JobTimeout is the timeout of a chunk job: its time, its probes' grace
// and 10 s for the final save. A rescue delay must exceed it.
func JobTimeout(chunkTime, grace time.Duration) time.Duration {
	return chunkTime + max(grace, 0) + 10*time.Second
}

// prober builds the prober of one chunk.
func (w *Worker) prober(mode probe.Mode, message []byte) (*probe.Prober, error) {
	if mode == probe.ModeMessage && len(message) == 0 {
		return nil, errors.New("a message-mode chunk came without its message")
	}
	if mode != probe.ModeMessage {
		message = nil
	}
	return w.cfg.Prober(mode, message, w.share)
}

// Run works chunks until ctx ends, then stops: the chunks it holds stop
// taking references, their probes in flight get the grace, their results
// are saved and each tenant's next chunk is queued for another worker.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start queue worker: %w", err)
	}
	w.cfg.Logger.Info("worker started", "jobs", w.cfg.Jobs, "concurrency", w.cfg.Concurrency,
		"chunk_size", w.cfg.ChunkSize, "chunk_time", w.cfg.ChunkTime, "rescue_after", w.cfg.RescueAfter)
	select {
	case <-ctx.Done():
	case <-w.client.Stopped():
		return errors.New("the queue worker stopped on its own")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), w.cfg.Grace+30*time.Second)
	defer cancel()
	if err := w.client.StopAndCancel(stopCtx); err != nil {
		return fmt.Errorf("stop queue worker: %w", err)
	}
	return nil
}
