package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// Schedule starts runs on a cron schedule, from the elected leader only:
// however many workers have it, each tick starts one run.
type Schedule struct {
	Cron    string          // standard 5-field cron spec, or @daily, @every 1h, ...
	Mode    probe.Mode      // of the runs it starts
	Message []byte          // message mode: what to send
	Params  json.RawMessage // recorded with each run; never secrets
}

// ParseCron checks a cron spec as Schedule.Cron takes it.
func ParseCron(spec string) error {
	_, err := cron.ParseStandard(spec)
	return err
}

// ScheduledRunArgs are the arguments of the job that starts a scheduled
// run: its tick, so that a tick starts at most one run even if leadership
// moves.
type ScheduledRunArgs struct {
	Tick time.Time `json:"tick" river:"unique"`
}

// Kind is the River job kind of a scheduled run.
func (ScheduledRunArgs) Kind() string { return "blockreport_scheduled_run" }

// InsertOpts: one job per tick, ever (completed ones included, as long as
// River keeps them).
func (ScheduledRunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// schedule registers the periodic job of s on the River config.
func (w *Worker) schedule(workers *river.Workers, rc *river.Config, s *Schedule) error {
	sched, err := cron.ParseStandard(s.Cron)
	if err != nil {
		return fmt.Errorf("schedule %q: %w", s.Cron, err)
	}
	river.AddWorker(workers, &scheduledRunWorker{w: w, s: s})
	rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
		// The tick is the scheduled time: the latest schedule time not
		// after now, to the second.
		return ScheduledRunArgs{Tick: time.Now().UTC().Truncate(time.Second)}, nil
	}, &river.PeriodicJobOpts{ID: "blockreport_scheduled_run"}))
	return nil
}

// scheduledRunWorker starts a scheduled run.
type scheduledRunWorker struct {
	river.WorkerDefaults[ScheduledRunArgs]
	w *Worker
	s *Schedule
}

// Work starts a run with its first chunks in one transaction, as run
// --queue does. A tick that finds a run unfinished resumes it (topping up
// its chains) instead of starting a second one.
func (sw *scheduledRunWorker) Work(ctx context.Context, job *river.Job[ScheduledRunArgs]) error {
	w := sw.w
	log := w.cfg.Logger.With("tick", job.Args.Tick)
	sess, err := Begin(ctx, w.db, w.client, runs.Choice{Mode: sw.s.Mode, Params: sw.s.Params}, sw.s.Message,
		runs.Options{Now: w.cfg.Now, Logger: log})
	if errors.Is(err, runs.ErrBusy) {
		log.Warn("scheduled run skipped: another blockreport run holds the store")
		return nil
	}
	if err != nil {
		return err
	}
	defer sess.Close()
	log.Info("scheduled run started", "run", sess.Run().ID)
	return nil
}

// Begin chooses a run as runs.Begin does (the store lock, a new, resumed or
// retried run) and queues its chunks: a new run's first chunks in the
// transaction that creates it, a resumed or retried run's missing chains
// right after. message is the message-mode message. Close the session to
// release the store lock.
func Begin(ctx context.Context, db *store.DB, client *river.Client[*sql.Tx], c runs.Choice, message []byte, opts runs.Options) (*runs.Session, error) {
	if db.Driver() != store.Postgres {
		return nil, ErrNeedsPostgres
	}
	opts.Start = func(ctx context.Context, tx *store.Tx, run blockreport.Run) error {
		_, err := enqueue(ctx, client, tx, run.ID, message)
		return err
	}
	sess, err := runs.Begin(ctx, db, c, opts)
	if err != nil {
		return nil, err
	}
	if run := sess.Run(); run.State == blockreport.RunRunning {
		tx, err := db.Begin(ctx)
		if err == nil {
			defer tx.Rollback()
			if _, err = enqueue(ctx, client, tx, run.ID, message); err == nil {
				err = tx.Commit()
			}
		}
		if err != nil {
			sess.Close()
			return nil, err
		}
	}
	return sess, nil
}

// Begin is the package's Begin on q's client.
func (q *Queue) Begin(ctx context.Context, c runs.Choice, message []byte, opts runs.Options) (*runs.Session, error) {
	return Begin(ctx, q.db, q.client, c, message, opts)
}
