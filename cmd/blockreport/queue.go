package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/queue"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// registerQueue defines --queue on the probe and run commands.
func (cfg *probeConfig) registerQueue(fs *flagSet) {
	fs.boolVar(&cfg.Queue, "queue", false, "PostgreSQL only: queue the run for \"blockreport worker\" processes and wait for them (progress bar or log lines) instead of probing here", "BLOCKREPORT_QUEUE")
}

// validateQueue checks --queue against the store.
func (cfg *probeConfig) validateQueue(cmd string) error {
	if !cfg.Queue {
		return nil
	}
	if d, _, _ := store.ParseURL(cfg.common.DB); d != store.Postgres {
		return errQueueSQLite(cmd)
	}
	if cfg.graph.enabled() {
		return usageErrorf("%s: --queue does not run the Microsoft Graph cross-check (--teams-app-id) yet: workers probe the connector only; drop one of them", cmd)
	}
	return nil
}

// queueRun is probeRun with --queue: it chooses the run as probeRun does
// (the store lock, a new, resumed or retried run), queues its chunks (a new
// run's in the transaction that creates it), waits while the workers probe
// it and prints its final line. Interrupted, it stops waiting; the run goes
// on in the workers and the same command waits for it again.
func queueRun(ctx context.Context, cfg probeConfig, db *store.DB, logger *slog.Logger, stderr io.Writer) (blockreport.Run, error) {
	q, err := queue.Open(ctx, db, logger)
	if err != nil {
		return blockreport.Run{}, err
	}
	choice := cfg.choice()
	choice.Params = withQueued(choice.Params)
	sess, err := q.Begin(ctx, choice, cfg.message, runs.Options{Now: cfg.now, Logger: logger})
	if err != nil {
		return blockreport.Run{}, beginError(cfg, err)
	}
	defer sess.Close()
	run := sess.Run()
	if cfg.RetryUnchecked {
		if sess.Reopened() == 0 {
			fmt.Fprintf(stderr, "run %d: nothing to retry\n", run.ID)
			return run, nil
		}
		fmt.Fprintf(stderr, "run %d: re-probing %d results that could not be checked\n", run.ID, sess.Reopened())
	}
	if probe.Mode(run.Mode) == probe.ModeMessage && cfg.message == nil {
		return run, fmt.Errorf("run %d was started in message mode: pass --mode message --message-file FILE to go on with it", run.ID)
	}
	message := cfg.message
	if probe.Mode(run.Mode) != probe.ModeMessage {
		message = nil
	}
	pending, err := sess.Pending(ctx)
	if err != nil {
		return run, err
	}
	done0 := run.Total()
	logger.Info("run queued for the workers", "run", run.ID, "mode", run.Mode, "pending", pending)

	var mu sync.Mutex
	var last queue.Progress
	latest := func() queue.Progress { mu.Lock(); defer mu.Unlock(); return last }
	total := done0 + pending
	progress := showProgress(progressView{
		desc:  "workers probing",
		total: int64(total),
		done:  func() int64 { return int64(latest().Run.Total()) },
		fields: func() []any {
			p := latest()
			return []any{"run", p.Run.ID, "done", p.Run.Total(), "total", total, "chunks", p.Live, "statuses", summary(p.Run.Totals)}
		},
		// The last poll may be short of the total: clear the bar rather
		// than leave it part-way under the final line.
		clear: true,
	}, cfg.progressEvery, logger, stderr)
	run, err = q.Wait(ctx, run.ID, message, time.Second, func(p queue.Progress) { mu.Lock(); last = p; mu.Unlock() })
	progress.Stop()
	if err != nil && ctx.Err() != nil {
		return run, fmt.Errorf("run %d goes on in the workers; run the same command again to wait for it: %w", run.ID, probe.ErrInterrupted)
	}
	if err != nil {
		return run, err
	}
	fmt.Fprintf(stderr, "run %d %s: %s\n", run.ID, run.State, summary(run.Totals))
	return run, nil
}

// withQueued records in a run's parameters that workers probe it.
func withQueued(params []byte) []byte {
	if len(params) > 1 && params[len(params)-1] == '}' {
		return append(params[:len(params)-1:len(params)-1], []byte(`,"queue":true}`)...)
	}
	return params
}
