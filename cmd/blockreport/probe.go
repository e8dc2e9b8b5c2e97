package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// probeConfig is the configuration of the probe command.
type probeConfig struct {
	common          commonConfig
	AppID           string
	AppPasswordFile string
	AppTenant       string
	Cloud           string
	TokenURL        string
	AllowHosts      hostList
	GCCServiceURL   string
	Mode            string
	MessageFile     string
	Concurrency     int
	Rate            float64
	Timeout         time.Duration
	Attempts        int
	Grace           time.Duration
	StoreWait       time.Duration
	Resume          int64

	appPassword   string           // from the file or the environment, never a flag
	message       []byte           // contents of MessageFile
	progressEvery time.Duration    // log-line interval when stderr is not a terminal
	backoffBase   time.Duration    // first retry backoff (0: the probe default); tests shorten it
	resumeFlag    int              // --resume as parsed, copied into Resume
	now           func() time.Time // clock of the run's times (nil: time.Now); the demo dates a run back
}

// hostList is a repeatable --allow-host flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

const probeSynopsis = "probe [--db URL] [--app-id ID] [--app-password-file FILE] [--mode typing|message|members] [--resume RUN] [flags]"

func runProbe(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := parseProbeFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = probeRun(ctx, cfg, db, logger, stderr)
	return err
}

func parseProbeFlags(args []string, getenv func(string) string, stderr io.Writer) (probeConfig, error) {
	var cfg probeConfig
	fs := newFlagSet("probe", probeSynopsis, getenv, stderr)
	fs.common(&cfg.common)
	cfg.register(fs, getenv)
	if err := fs.parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageErrorf("probe: unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.check("probe", getenv)
}

// register defines the probe flags (all but the common ones) on fs; the
// probe and run commands share them.
func (cfg *probeConfig) register(fs *flagSet, getenv func(string) string) {
	cfg.progressEvery = 5 * time.Second
	fs.stringVar(&cfg.AppID, "app-id", "", "bot app (client) id", "BLOCKREPORT_APP_ID", "MICROSOFT_APP_ID", "BOT_ID")
	fs.stringVar(&cfg.AppPasswordFile, "app-password-file", "", "file holding the app password (else env MICROSOFT_APP_PASSWORD or BOT_PASSWORD)", "BLOCKREPORT_APP_PASSWORD_FILE")
	fs.stringVar(&cfg.AppTenant, "app-tenant", "", "tenant id of a single-tenant bot (empty: multi-tenant, botframework.com)", "BLOCKREPORT_APP_TENANT", "MICROSOFT_APP_TENANT_ID")
	fs.stringVar(&cfg.Cloud, "cloud", "public", "cloud: public, gcc, gcch or dod", "BLOCKREPORT_CLOUD")
	fs.stringVar(&cfg.TokenURL, "token-url", "", "token endpoint override (tests); https, or plain http only to a loopback host", "BLOCKREPORT_TOKEN_URL")
	if v := getenv("BLOCKREPORT_ALLOW_HOSTS"); v != "" {
		_ = cfg.AllowHosts.Set(v)
	}
	fs.Var(&cfg.AllowHosts, "allow-host", "extra host or IP (any port) allowed to receive the token; repeatable; plain http only for loopback (env BLOCKREPORT_ALLOW_HOSTS, comma list)")
	fs.stringVar(&cfg.GCCServiceURL, "gcc-service-url", "", "service URL to retry a 403 InvalidBotApiHost on (default: the cloud's GCC URL; tests)", "BLOCKREPORT_GCC_SERVICE_URL")
	fs.stringVar(&cfg.Mode, "mode", "typing", "probe: typing (low intrusion), message (sends --message-file; the documented method) or members (read-only; never detects blocks)", "BLOCKREPORT_MODE")
	fs.stringVar(&cfg.MessageFile, "message-file", "", "message mode: file with the text or Adaptive Card JSON to send", "BLOCKREPORT_MESSAGE_FILE")
	fs.intVar(&cfg.Concurrency, "concurrency", probe.DefaultConcurrency, "requests in flight at most, across tenants (the per-tenant --rate paces the run)", "BLOCKREPORT_CONCURRENCY")
	fs.floatVar(&cfg.Rate, "rate", 40, "requests per second per tenant (Teams allows 50)", "BLOCKREPORT_RATE")
	fs.durationVar(&cfg.Timeout, "timeout", 15*time.Second, "timeout of one request", "BLOCKREPORT_TIMEOUT")
	fs.intVar(&cfg.Attempts, "attempts", 5, "attempts per request for retryable answers (412, 429, 502, 503, 504, network errors)", "BLOCKREPORT_ATTEMPTS")
	fs.durationVar(&cfg.Grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, time in-flight probes get to finish (0: none, they are cut off)", "BLOCKREPORT_GRACE")
	fs.durationVar(&cfg.StoreWait, "store-wait", time.Minute, "how long a failing database is retried before the run stops as interrupted (resumable)", "BLOCKREPORT_STORE_WAIT")
	fs.intVar(&cfg.resumeFlag, "resume", 0, "resume this run (default: the unfinished run if any, else a new run)", "BLOCKREPORT_RESUME")
}

// check validates the parsed probe flags and reads the app password and
// message files; cmd names the command in its usage errors.
func (cfg *probeConfig) check(cmd string, getenv func(string) string) error {
	cfg.Resume = int64(cfg.resumeFlag)
	if _, _, err := store.ParseURL(cfg.common.DB); err != nil {
		return usageErrorf("%s: --db: %v", cmd, err)
	}
	switch probe.Mode(cfg.Mode) {
	case probe.ModeTyping, probe.ModeMembers:
		if cfg.MessageFile != "" {
			return usageErrorf("%s: --message-file needs --mode message", cmd)
		}
	case probe.ModeMessage:
		if cfg.MessageFile == "" {
			return usageErrorf("%s: --mode message needs --message-file", cmd)
		}
	default:
		return usageErrorf("%s: --mode %q: want typing, message or members", cmd, cfg.Mode)
	}
	switch probe.Cloud(cfg.Cloud) {
	case probe.CloudPublic, probe.CloudGCC, probe.CloudGCCH, probe.CloudDoD:
	default:
		return usageErrorf("%s: --cloud %q: want public, gcc, gcch or dod", cmd, cfg.Cloud)
	}
	if cfg.TokenURL != "" {
		if err := probe.CheckTokenURL(cfg.TokenURL); err != nil {
			return usageErrorf("%s: --token-url: %v", cmd, err)
		}
	}
	switch {
	case cfg.Concurrency < 1:
		return usageErrorf("%s: --concurrency must be at least 1", cmd)
	case cfg.Rate <= 0:
		return usageErrorf("%s: --rate must be positive", cmd)
	case cfg.Attempts < 1 || cfg.Attempts > 20:
		return usageErrorf("%s: --attempts must be between 1 and 20", cmd)
	case cfg.Timeout <= 0 || cfg.Grace < 0 || cfg.StoreWait <= 0:
		return usageErrorf("%s: --timeout and --store-wait must be positive and --grace not negative", cmd)
	case cfg.Resume < 0:
		return usageErrorf("%s: --resume must be a run id", cmd)
	case cfg.AppID == "":
		return usageErrorf("%s: no app id: set --app-id or MICROSOFT_APP_ID", cmd)
	}
	if cfg.AppPasswordFile != "" {
		b, err := os.ReadFile(cfg.AppPasswordFile)
		if err != nil {
			// The path is not a secret; the contents are never shown.
			return usageErrorf("%s: --app-password-file: %v", cmd, err)
		}
		cfg.appPassword = strings.TrimRight(string(b), "\r\n")
	} else {
		cfg.appPassword = firstEnv(getenv, "MICROSOFT_APP_PASSWORD", "BOT_PASSWORD")
	}
	if cfg.appPassword == "" {
		return usageErrorf("%s: no app password: set --app-password-file or MICROSOFT_APP_PASSWORD", cmd)
	}
	if cfg.MessageFile != "" {
		b, err := os.ReadFile(cfg.MessageFile)
		if err != nil {
			return usageErrorf("%s: --message-file: %v", cmd, err)
		}
		cfg.message = b
	}
	return nil
}

// clock is the time the run records: cfg.now, else the wall clock.
func (cfg probeConfig) clock() time.Time {
	if cfg.now != nil {
		return cfg.now()
	}
	return time.Now()
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// probeParams are the run parameters recorded with a run: no secrets.
type probeParams struct {
	Mode        string   `json:"mode"`
	Cloud       string   `json:"cloud"`
	AppID       string   `json:"appId"`
	AppTenant   string   `json:"appTenant,omitempty"`
	AllowHosts  []string `json:"allowHosts,omitempty"`
	Concurrency int      `json:"concurrency"`
	Rate        float64  `json:"rate"`
	Timeout     string   `json:"timeout"`
	Attempts    int      `json:"attempts"`
}

// proberConfig is the probe.Config of the checked flags.
func (cfg probeConfig) proberConfig(logger *slog.Logger) probe.Config {
	grace := cfg.Grace
	if grace == 0 {
		grace = -1 // --grace 0: none (a zero probe.Config.Grace is the default)
	}
	return probe.Config{
		AppID: cfg.AppID, AppPassword: cfg.appPassword, AppTenant: cfg.AppTenant,
		Cloud: probe.Cloud(cfg.Cloud), TokenURL: cfg.TokenURL, AllowHosts: cfg.AllowHosts,
		GCCServiceURL: cfg.GCCServiceURL, Mode: probe.Mode(cfg.Mode), Message: cfg.message,
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Timeout: cfg.Timeout, Attempts: cfg.Attempts,
		Grace: grace, StoreWait: cfg.StoreWait, BackoffBase: cfg.backoffBase, Logger: logger, UserAgent: "blockreport/" + version, Now: cfg.now,
	}
}

// probeRun takes the store lock, resumes the unfinished run (or --resume
// RUN) or creates one, probes every pending reference and records the run's
// final state. It is the reusable core of the probe command.
func probeRun(ctx context.Context, cfg probeConfig, db *store.DB, logger *slog.Logger, stderr io.Writer) (blockreport.Run, error) {
	release, err := db.Lock(ctx)
	if errors.Is(err, store.ErrLocked) {
		return blockreport.Run{}, errors.New("another blockreport run is in progress on this store; wait for it to finish")
	}
	if err != nil {
		return blockreport.Run{}, fmt.Errorf("lock store: %w", err)
	}
	defer release()

	pcfg := cfg.proberConfig(logger)
	prober, err := probe.New(pcfg)
	if err != nil {
		return blockreport.Run{}, err
	}
	// A wrong secret or unreachable token endpoint stops here, before a run
	// is recorded or anything is sent.
	if err := prober.CheckToken(); err != nil {
		return blockreport.Run{}, err
	}

	run, err := pickRun(ctx, cfg, db, logger)
	if err != nil {
		return blockreport.Run{}, err
	}
	if run.Mode != "" && run.Mode != cfg.Mode {
		// A resumed run keeps its mode, so that all its results mean the same.
		if probe.Mode(run.Mode) == probe.ModeMessage && cfg.message == nil {
			return run, fmt.Errorf("run %d was started in message mode: pass --mode message --message-file FILE to resume it", run.ID)
		}
		logger.Warn("resuming the run in its own mode", "run", run.ID, "mode", run.Mode, "asked", cfg.Mode)
		pcfg.Mode = probe.Mode(run.Mode)
		if prober, err = probe.New(pcfg); err != nil {
			return run, err
		}
	}
	total, err := pendingCount(ctx, db, run.ID)
	if err != nil {
		return run, err
	}
	logger.Info("probe run", "run", run.ID, "mode", run.Mode, "pending", total)

	stopProgress := showProgress(prober, total, cfg.progressEvery, logger, stderr)
	runCtx, lost := context.WithCancelCause(ctx)
	runErr := prober.Run(runCtx, lockedStore{DB: db, lost: lost}, run.ID)
	lost(nil)
	stopProgress()
	if cause := context.Cause(runCtx); errors.Is(cause, store.ErrLockLost) {
		// Another process took the lock (after a database restart) and may
		// be probing this run: record nothing more, not even the state.
		return run, fmt.Errorf("run %d stopped: another blockreport process took over the store's run lock: %w", run.ID, cause)
	}

	state := blockreport.RunFinished
	switch {
	case errors.Is(runErr, probe.ErrInterrupted):
		state = blockreport.RunInterrupted
		if ctx.Err() != nil { // a signal: the plain message
			runErr = probe.ErrInterrupted
		} // else the store stayed down: keep what failed
		runErr = fmt.Errorf("run %d interrupted; run the same command again (blockreport probe or run) to resume it: %w", run.ID, runErr)
	case runErr != nil:
		state = blockreport.RunFailed
	}
	// The state is recorded even when ctx was cancelled.
	bg := context.WithoutCancel(ctx)
	if err := db.SetRunState(bg, run.ID, state, cfg.clock()); err != nil && runErr == nil {
		runErr = fmt.Errorf("set state of run %d: %w", run.ID, err)
	}
	if r, err := db.Run(bg, run.ID); err == nil {
		run = r
	}
	fmt.Fprintf(stderr, "run %d %s: %s\n", run.ID, state, summary(run.Totals))
	return run, runErr
}

// lockedStore saves results only while this process still holds the
// store's run lock. A PostgreSQL restart drops the advisory lock with its
// session; store.CheckLock takes it back, or reports that another process
// took it, in which case both must not go on probing the same run.
type lockedStore struct {
	*store.DB
	lost context.CancelCauseFunc
}

func (s lockedStore) SaveResults(ctx context.Context, results []blockreport.Result) error {
	if err := s.DB.CheckLock(ctx); err != nil {
		if errors.Is(err, store.ErrLockLost) {
			s.lost(err) // stop dispatching; nothing more is written
		}
		return err
	}
	return s.DB.SaveResults(ctx, results)
}

// pickRun resumes --resume RUN or the unfinished run, else creates one.
func pickRun(ctx context.Context, cfg probeConfig, db *store.DB, logger *slog.Logger) (blockreport.Run, error) {
	var run blockreport.Run
	switch {
	case cfg.Resume > 0:
		r, err := db.Run(ctx, cfg.Resume)
		if errors.Is(err, store.ErrNotFound) {
			return run, fmt.Errorf("--resume %d: no such run", cfg.Resume)
		}
		if err != nil {
			return run, fmt.Errorf("read run %d: %w", cfg.Resume, err)
		}
		if r.State == blockreport.RunFinished {
			return run, fmt.Errorf("--resume %d: the run is already finished", cfg.Resume)
		}
		run = r
	default:
		r, ok, err := db.UnfinishedRun(ctx)
		if err != nil {
			return run, fmt.Errorf("find unfinished run: %w", err)
		}
		if !ok {
			params, _ := json.Marshal(probeParams{
				Mode: cfg.Mode, Cloud: cfg.Cloud, AppID: cfg.AppID, AppTenant: cfg.AppTenant,
				AllowHosts: cfg.AllowHosts, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
				Timeout: cfg.Timeout.String(), Attempts: cfg.Attempts,
			})
			r, err := db.CreateRun(ctx, cfg.Mode, params, cfg.clock())
			if err != nil {
				return run, fmt.Errorf("create run: %w", err)
			}
			return r, nil
		}
		run = r
	}
	logger.Info("resuming run", "run", run.ID, "state", run.State)
	if run.State != blockreport.RunRunning {
		if err := db.SetRunState(ctx, run.ID, blockreport.RunRunning, cfg.clock()); err != nil {
			return run, fmt.Errorf("set state of run %d: %w", run.ID, err)
		}
	}
	return run, nil
}

func pendingCount(ctx context.Context, db *store.DB, runID int64) (int, error) {
	refs, err := db.CountReferences(ctx)
	if err != nil {
		return 0, fmt.Errorf("count references: %w", err)
	}
	done, err := db.CountResults(ctx, runID)
	if err != nil {
		return 0, fmt.Errorf("count results of run %d: %w", runID, err)
	}
	return max(refs-done, 0), nil
}

// showProgress shows a progress bar with rate and ETA on a terminal, else
// logs a progress line every interval. The returned func stops it.
func showProgress(p *probe.Prober, total int, every time.Duration, logger *slog.Logger, stderr io.Writer) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	f, isFile := stderr.(*os.File)
	if isFile && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("probing"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("refs"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					_ = bar.Set(p.Progress().Done)
					_ = bar.Exit()
					return
				case <-t.C:
					_ = bar.Set(p.Progress().Done)
				}
			}
		})
	} else {
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					pr := p.Progress()
					logger.Info("progress", "done", pr.Done, "total", total, "statuses", summary(pr.ByStatus))
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

// summary is "N results: reachable 10, blocked 2, ..." in report order.
func summary(totals map[blockreport.Status]int) string {
	n := 0
	var parts []string
	for _, s := range blockreport.Statuses {
		if c := totals[s]; c > 0 {
			parts = append(parts, string(s)+" "+strconv.Itoa(c))
			n += c
		}
	}
	var other []string
	for s, c := range totals {
		if !s.Valid() && c > 0 {
			other = append(other, string(s)+" "+strconv.Itoa(c))
			n += c
		}
	}
	sort.Strings(other)
	parts = append(parts, other...)
	if len(parts) == 0 {
		return "0 results"
	}
	return strconv.Itoa(n) + " results: " + strings.Join(parts, ", ")
}
