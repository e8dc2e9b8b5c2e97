package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// Errors of Begin; each is wrapped with the run it concerns.
var (
	// ErrBusy means another process holds the store's run lock.
	ErrBusy = errors.New("another blockreport run is in progress on this store")
	// ErrNoRun means the run asked for does not exist, or there is no
	// finished run to retry.
	ErrNoRun = errors.New("no such run")
	// ErrFinished means a finished run was asked to be resumed.
	ErrFinished = errors.New("the run is already finished")
	// ErrNotRetryable means the run asked to be retried is not finished,
	// or a later run already compared its results with it.
	ErrNotRetryable = errors.New("the run cannot be retried in place")
)

// Choice says which run Begin works on. The zero Choice resumes the newest
// unfinished run, or starts a new one.
type Choice struct {
	Mode   probe.Mode      // the mode of a new run
	Params json.RawMessage // recorded with a new run; never secrets
	// Resume names an unfinished run to resume (0: the newest unfinished
	// run, if any, else a new run).
	Resume int64
	// Retry, when set, re-probes the unchecked results of a finished run
	// in place instead (Resume must be 0).
	Retry *Retry
}

// Retry re-probes, inside a finished run, its results that could not be
// checked (forbidden, throttled, failed), replacing them: no new run, and
// the trend keeps one point per run.
type Retry struct {
	// Run is the run to retry (0: the latest finished run). It must be the
	// newest run with results: a later run's changes were computed
	// against it.
	Run int64
	// IncludeUnknown also re-probes message-mode results whose delivery is
	// unknown (probe.ReasonDeliveryUnknown): those users may get the
	// message a second time.
	IncludeUnknown bool
}

// Options are the surroundings of a Session.
type Options struct {
	Now    func() time.Time // clock of the run's times (default time.Now)
	Logger *slog.Logger     // default discards
	// OnStop is called once when Probe's context is cancelled while probes
	// are in flight, with how many and the grace they get (negative:
	// none); a command tells the user what happens next.
	OnStop func(inFlight int, grace time.Duration)
	// Alongside, when set, runs next to every probe pass (Microsoft
	// Graph's cross-check): probing is closed when the pass's probes are
	// done, and it returns once it handled every result. The run is
	// finished only after it, and what it left pending (re-linked or
	// created references) is probed in another pass. Its error is logged:
	// the connector's verdicts stand.
	Alongside func(ctx context.Context, runID int64, probing <-chan struct{}) error
	// Start, when set, is called inside the transaction that creates a new
	// run, so that what it writes there (a queue's first jobs) commits
	// with the run or not at all. A resumed or retried run is not created,
	// so Start is not called for it.
	Start func(ctx context.Context, tx *store.Tx, run blockreport.Run) error
}

// maxPasses bounds the passes Probe makes over references that arrived
// while it probed, so that a bot adding references non-stop cannot keep a
// run open forever.
const maxPasses = 20

// Session is this process's hold on one run: the store lock and the run.
type Session struct {
	db       *store.DB
	release  func()
	run      blockreport.Run
	reopened int // results a Retry reopened
	opts     Options
}

// Begin takes the store's run lock (ErrBusy if another process holds it)
// and chooses the run c asks for, moving it to running. Nothing is created
// or changed when it fails. Close releases the lock.
func Begin(ctx context.Context, db *store.DB, c Choice, opts Options) (*Session, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	release, err := db.Lock(ctx)
	if errors.Is(err, store.ErrLocked) {
		return nil, ErrBusy
	}
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	s := &Session{db: db, release: release, opts: opts}
	if c.Retry != nil {
		err = s.retry(ctx, *c.Retry)
	} else {
		err = s.choose(ctx, c)
	}
	if err != nil {
		release()
		return nil, err
	}
	return s, nil
}

// choose resumes c.Resume or the newest unfinished run, else creates one.
func (s *Session) choose(ctx context.Context, c Choice) error {
	db := s.db
	switch {
	case c.Resume > 0:
		r, err := db.Run(ctx, c.Resume)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("run %d: %w", c.Resume, ErrNoRun)
		}
		if err != nil {
			return err
		}
		if r.State == blockreport.RunFinished {
			return fmt.Errorf("run %d: %w", c.Resume, ErrFinished)
		}
		s.run = r
	default:
		r, ok, err := db.UnfinishedRun(ctx)
		if err != nil {
			return err
		}
		if !ok {
			r, err := s.create(ctx, c)
			if err != nil {
				return err
			}
			s.run = r
			s.opts.Logger.Info("new run", "run", r.ID, "mode", r.Mode)
			return nil
		}
		s.run = r
	}
	s.opts.Logger.Info("resuming run", "run", s.run.ID, "state", s.run.State)
	if s.run.State != blockreport.RunRunning {
		if err := db.SetRunState(ctx, s.run.ID, blockreport.RunRunning, s.opts.Now()); err != nil {
			return err
		}
		s.run.State = blockreport.RunRunning
	}
	return nil
}

// create creates a new run, with what Options.Start writes beside it.
func (s *Session) create(ctx context.Context, c Choice) (blockreport.Run, error) {
	if s.opts.Start == nil {
		return s.db.CreateRun(ctx, string(c.Mode), c.Params, s.opts.Now())
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("create run: %w", err)
	}
	defer tx.Rollback()
	r, err := tx.CreateRun(ctx, string(c.Mode), c.Params, s.opts.Now())
	if err != nil {
		return blockreport.Run{}, err
	}
	if err := s.opts.Start(ctx, tx, r); err != nil {
		return blockreport.Run{}, fmt.Errorf("start run %d: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return blockreport.Run{}, fmt.Errorf("create run %d: %w", r.ID, err)
	}
	return r, nil
}

// retry reopens the unchecked results of a finished run.
func (s *Session) retry(ctx context.Context, r Retry) error {
	db := s.db
	var run blockreport.Run
	var err error
	if r.Run > 0 {
		run, err = db.Run(ctx, r.Run)
	} else {
		run, err = db.LatestFinishedRun(ctx)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) && r.Run > 0:
		return fmt.Errorf("run %d: %w", r.Run, ErrNoRun)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no finished run to retry: %w", ErrNoRun)
	case err != nil:
		return err
	case run.State != blockreport.RunFinished:
		return fmt.Errorf("run %d is %s, not finished (resume it instead): %w", run.ID, run.State, ErrNotRetryable)
	}
	later, err := db.Runs(ctx, 0, 0)
	if err != nil {
		return err
	}
	for _, l := range later {
		if l.ID > run.ID && l.Total() > 0 {
			return fmt.Errorf("run %d is not the newest run: run %d compared its results with it: %w", run.ID, l.ID, ErrNotRetryable)
		}
	}
	keep := []string{probe.ReasonDeliveryUnknown}
	if r.IncludeUnknown {
		keep = nil
	}
	var unchecked []blockreport.Status
	for _, st := range blockreport.Statuses {
		if st.Unchecked() {
			unchecked = append(unchecked, st)
		}
	}
	n, err := db.ReopenResults(ctx, run.ID, unchecked, keep)
	if err != nil {
		return err
	}
	s.reopened = n
	if s.run, err = db.Run(ctx, run.ID); err != nil {
		return err
	}
	s.opts.Logger.Info("retrying run in place", "run", run.ID, "reopened", n, "include_unknown", r.IncludeUnknown)
	return nil
}

// Run returns the run as Begin chose it (or as Probe left it).
func (s *Session) Run() blockreport.Run { return s.run }

// Reopened is the number of results a Retry reopened for re-probing; with
// none, the run was left finished and Probe has nothing to do.
func (s *Session) Reopened() int { return s.reopened }

// Pending counts the references without a result in the run.
func (s *Session) Pending(ctx context.Context) (int, error) {
	return s.db.CountPending(ctx, s.run.ID)
}

// Close releases the store lock; it may be called more than once.
func (s *Session) Close() { s.release() }

// Probe probes every reference without a result in the run with p, again
// until none is left (references imported meanwhile included), then marks
// the run finished and returns it with its totals. When p stops early the
// run is recorded interrupted (cancellation, a store that stayed down: the
// error wraps probe.ErrInterrupted) or failed (a configuration problem),
// and the error says so; when this process lost the store's lock to
// another one, nothing more is recorded, not even the state. p must probe
// in the run's mode.
func (s *Session) Probe(ctx context.Context, p *probe.Prober) (blockreport.Run, error) {
	if s.run.State == blockreport.RunFinished {
		return s.run, nil // a Retry with nothing to re-probe
	}
	if m := p.Mode(); string(m) != s.run.Mode && s.run.Mode != "" {
		return s.run, fmt.Errorf("run %d is a %s run; it cannot be probed in %s mode", s.run.ID, s.run.Mode, m)
	}
	runCtx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	stopWatch := s.watchStop(ctx, p)
	runErr := s.passes(runCtx, p, Guard(s.db, lost))
	stopWatch()
	if cause := context.Cause(runCtx); errors.Is(cause, store.ErrLockLost) {
		return s.run, fmt.Errorf("run %d stopped: another blockreport process took over the store's run lock: %w", s.run.ID, cause)
	}
	bg := context.WithoutCancel(ctx) // the state is recorded even when ctx was cancelled
	if runErr == nil {
		return s.reload(bg)
	}
	state := blockreport.RunFailed
	if errors.Is(runErr, probe.ErrInterrupted) {
		state = blockreport.RunInterrupted
		if ctx.Err() != nil { // a signal: the plain message
			runErr = probe.ErrInterrupted
		} // else the store stayed down: keep what failed
	}
	if err := s.db.SetRunState(bg, s.run.ID, state, s.opts.Now()); err != nil {
		s.opts.Logger.Error("could not record the run's state", "run", s.run.ID, "state", state, "err", err)
	}
	run, _ := s.reload(bg)
	return run, runErr
}

// passes runs the engine until the run can be marked finished.
func (s *Session) passes(ctx context.Context, p *probe.Prober, st *Guarded) error {
	bg := context.WithoutCancel(ctx)
	for pass := 1; ; pass++ {
		if err := s.pass(ctx, p, st); err != nil {
			return err
		}
		finished, err := s.db.FinishRun(bg, s.run.ID, s.opts.Now())
		if err != nil {
			return fmt.Errorf("finish run %d: %w", s.run.ID, err)
		}
		if finished {
			return nil
		}
		if pass == maxPasses {
			n, _ := s.db.CountPending(bg, s.run.ID)
			s.opts.Logger.Warn("references keep arriving; finishing the run without the newest", "run", s.run.ID, "left", n)
			return s.db.SetRunState(bg, s.run.ID, blockreport.RunFinished, s.opts.Now())
		}
		s.opts.Logger.Info("references were added during the run; probing them too", "run", s.run.ID, "pass", pass+1)
	}
}

// pass is one probe pass, with Options.Alongside next to it.
func (s *Session) pass(ctx context.Context, p *probe.Prober, st *Guarded) error {
	if s.opts.Alongside == nil {
		return p.Run(ctx, st, s.run.ID)
	}
	probing := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.opts.Alongside(ctx, s.run.ID, probing) }()
	err := p.Run(ctx, st, s.run.ID)
	close(probing)
	if aerr := <-done; aerr != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("the cross-check alongside the probes failed; the connector's verdicts stand", "run", s.run.ID, "err", aerr)
	}
	return err
}

func (s *Session) reload(ctx context.Context) (blockreport.Run, error) {
	r, err := s.db.Run(ctx, s.run.ID)
	if err != nil {
		return s.run, err
	}
	s.run = r
	return r, nil
}

// watchStop calls Options.OnStop when ctx is cancelled during Probe.
func (s *Session) watchStop(ctx context.Context, p *probe.Prober) (stop func()) {
	if s.opts.OnStop == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			n, grace := p.InFlight()
			s.opts.OnStop(n, grace)
		case <-done:
		}
	}()
	return func() { close(done); <-finished }
}

// Finish marks run runID finished if every reference has a result in it
// (see store.FinishRun): the last step of whoever probed its last
// references.
func Finish(ctx context.Context, db *store.DB, runID int64, now time.Time) (bool, error) {
	return db.FinishRun(ctx, runID, now)
}
