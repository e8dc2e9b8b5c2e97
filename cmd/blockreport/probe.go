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
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/graph"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

// probeConfig is the configuration of the probe command.
type probeConfig struct {
	common         commonConfig
	cred           credentialConfig
	Cloud          string
	AllowHosts     hostList
	GCCServiceURL  string
	Mode           string
	MessageFile    string
	Concurrency    int
	Rate           float64
	Timeout        time.Duration
	Attempts       int
	Grace          time.Duration
	StoreWait      time.Duration
	Resume         int64
	RetryUnchecked bool  // re-probe the unchecked results of a finished run in place
	RetryRun       int64 // with RetryUnchecked: the run (0: the latest finished one)
	IncludeUnknown bool  // with RetryUnchecked: DeliveryUnknown results too
	metrics        metricsConfig
	graph          graphConfig
	Queue          bool // queue the run for workers and wait (PostgreSQL only)

	message       []byte           // contents of MessageFile
	progressEvery time.Duration    // log-line interval when stderr is not a terminal
	backoffBase   time.Duration    // first retry backoff (0: the probe default); tests shorten it
	resumeFlag    int              // --resume as parsed, copied into Resume
	retryRunFlag  int              // --run as parsed, copied into RetryRun
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

const probeSynopsis = "probe [--db URL] [--app-id ID] [--auth KIND] [--app-password-file FILE] [--mode typing|message|members] [--resume RUN | --retry-unchecked [--run RUN]] [flags]" + credentialsHelp

func runProbe(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := parseProbeFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	db, err := openExisting(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := probeRun(ctx, cfg, db, logger, stderr)
	if merr := cfg.metrics.write(run); err == nil {
		err = merr
	}
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
	cfg.cred.register(fs)
	cfg.metrics.register(fs)
	fs.stringVar(&cfg.Cloud, "cloud", "public", "cloud: public, gcc, gcch or dod", "BLOCKREPORT_CLOUD")
	if v := getenv("BLOCKREPORT_ALLOW_HOSTS"); v != "" {
		_ = cfg.AllowHosts.Set(v)
	}
	fs.Var(&cfg.AllowHosts, "allow-host", "extra host or IP (any port) allowed to receive the token; repeatable; plain http only for loopback (env BLOCKREPORT_ALLOW_HOSTS, comma list)")
	fs.stringVar(&cfg.GCCServiceURL, "gcc-service-url", "", "service URL to retry a 403 InvalidBotApiHost on (default: the cloud's GCC URL; tests)", "BLOCKREPORT_GCC_SERVICE_URL")
	fs.stringVar(&cfg.Mode, "mode", "typing", "probe: typing (low intrusion), message (sends --message-file; the documented method) or members (read-only; never detects blocks)", "BLOCKREPORT_MODE")
	fs.stringVar(&cfg.MessageFile, "message-file", "", "message mode: file with the text or Adaptive Card JSON to send", "BLOCKREPORT_MESSAGE_FILE")
	fs.intVar(&cfg.Concurrency, "concurrency", probe.DefaultConcurrency, "requests in flight at most, across tenants (the per-tenant --rate paces the run)", "BLOCKREPORT_CONCURRENCY")
	fs.floatVar(&cfg.Rate, "rate", probe.DefaultRate, "ceiling of requests per second per tenant: no second holds more (Teams allows 50); the pace adapts under it on 429s", "BLOCKREPORT_RATE")
	fs.durationVar(&cfg.Timeout, "timeout", 15*time.Second, "timeout of one request", "BLOCKREPORT_TIMEOUT")
	fs.intVar(&cfg.Attempts, "attempts", 5, "attempts per request for retryable answers (412, 429, 502, 503, 504, network errors; in message mode only 429 and connections that failed before sending)", "BLOCKREPORT_ATTEMPTS")
	fs.durationVar(&cfg.Grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, time in-flight probes get to finish (0: none, they are cut off)", "BLOCKREPORT_GRACE")
	fs.durationVar(&cfg.StoreWait, "store-wait", time.Minute, "how long a failing database is retried before the run stops as interrupted (resumable)", "BLOCKREPORT_STORE_WAIT")
	fs.intVar(&cfg.resumeFlag, "resume", 0, "resume this unfinished run (default: the unfinished run if any, else a new run)", "BLOCKREPORT_RESUME")
	fs.boolVar(&cfg.RetryUnchecked, "retry-unchecked", false, "re-probe, inside the latest finished run (or --run), only its forbidden, throttled and failed results, replacing them: no new run", "BLOCKREPORT_RETRY_UNCHECKED")
	fs.intVar(&cfg.retryRunFlag, "run", 0, "with --retry-unchecked: the finished run to retry (default: the latest finished run)", "BLOCKREPORT_RETRY_RUN")
	cfg.graph.register(fs)
	cfg.registerQueue(fs)
	fs.boolVar(&cfg.IncludeUnknown, "include-unknown", false, "with --retry-unchecked in message mode: also re-send to conversations whose delivery is unknown (they may get the message twice)", "BLOCKREPORT_INCLUDE_UNKNOWN")
}

// check validates the parsed probe flags and reads the credential and
// message files; cmd names the command in its usage errors.
func (cfg *probeConfig) check(cmd string, getenv func(string) string) error {
	if err := cfg.validate(cmd); err != nil {
		return err
	}
	if err := cfg.metrics.check(cmd); err != nil {
		return err
	}
	if err := cfg.cred.check(cmd, getenv); err != nil {
		return err
	}
	return cfg.loadMessage(cmd)
}

// validate checks the flag values that need no file or secret.
func (cfg *probeConfig) validate(cmd string) error {
	cfg.Resume, cfg.RetryRun = int64(cfg.resumeFlag), int64(cfg.retryRunFlag)
	switch {
	case cfg.RetryUnchecked && cfg.Resume != 0:
		return usageErrorf("%s: --resume continues an unfinished run, --retry-unchecked re-probes a finished one: give one of them", cmd)
	case !cfg.RetryUnchecked && cfg.RetryRun != 0:
		return usageErrorf("%s: --run needs --retry-unchecked (to continue an unfinished run, use --resume)", cmd)
	case !cfg.RetryUnchecked && cfg.IncludeUnknown:
		return usageErrorf("%s: --include-unknown needs --retry-unchecked", cmd)
	case cfg.RetryRun < 0:
		return usageErrorf("%s: --run must be a run id", cmd)
	}
	if _, _, err := store.ParseURL(cfg.common.DB); err != nil {
		return usageErrorf("%s: --db: %v", cmd, err)
	}
	if err := cfg.validateQueue(cmd); err != nil {
		return err
	}
	if err := cfg.graph.validate(cmd); err != nil {
		return err
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
	}
	return nil
}

// loadMessage reads --message-file.
func (cfg *probeConfig) loadMessage(cmd string) error {
	if cfg.MessageFile != "" {
		b, err := os.ReadFile(cfg.MessageFile)
		if err != nil {
			return usageErrorf("%s: --message-file: %v", cmd, err)
		}
		// Too big for Teams is known before anything is sent: a usage
		// error, no run recorded.
		if err := probe.CheckMessage(b); errors.Is(err, probe.ErrMessageTooBig) {
			return usageErrorf("%s: --message-file %s: %v", cmd, cfg.MessageFile, err)
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

// probeParams are the run parameters recorded with a run: no secrets.
type probeParams struct {
	Mode        string   `json:"mode"`
	Cloud       string   `json:"cloud"`
	AppID       string   `json:"appId"`
	AppTenant   string   `json:"appTenant,omitempty"`
	Auth        string   `json:"auth"`
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
		AppID: cfg.cred.AppID, Cloud: probe.Cloud(cfg.Cloud), AllowHosts: cfg.AllowHosts,
		GCCServiceURL: cfg.GCCServiceURL, Mode: probe.Mode(cfg.Mode), Message: cfg.message,
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Timeout: cfg.Timeout, Attempts: cfg.Attempts,
		Grace: grace, StoreWait: cfg.StoreWait, BackoffBase: cfg.backoffBase, Logger: logger, UserAgent: "blockreport/" + version, Now: cfg.now,
	}
}

// choice is the run the flags ask for.
func (cfg probeConfig) choice() runs.Choice {
	c := runs.Choice{Mode: probe.Mode(cfg.Mode), Resume: cfg.Resume}
	c.Params, _ = json.Marshal(probeParams{
		Mode: cfg.Mode, Cloud: cfg.Cloud, AppID: cfg.cred.AppID, AppTenant: cfg.cred.tenant, Auth: string(cfg.cred.kind),
		AllowHosts: cfg.AllowHosts, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		Timeout: cfg.Timeout.String(), Attempts: cfg.Attempts,
	})
	if cfg.RetryUnchecked {
		c.Retry = &runs.Retry{Run: cfg.RetryRun, IncludeUnknown: cfg.IncludeUnknown}
	}
	return c
}

// probeRun checks the token and the allow-list, chooses the run (runs.Begin:
// the store lock, a new, resumed or retried run), probes it to the end and
// prints its final line. It is the reusable core of the probe command.
func probeRun(ctx context.Context, cfg probeConfig, db *store.DB, logger *slog.Logger, stderr io.Writer) (blockreport.Run, error) {
	pcfg := cfg.proberConfig(logger)
	pcfg.Abort = abortOf(ctx)
	cred, err := cfg.cred.credential(probe.Cloud(cfg.Cloud), logger)
	if err != nil {
		return blockreport.Run{}, err
	}
	pcfg.Credential = cred
	prober, err := probe.New(pcfg)
	if err != nil {
		return blockreport.Run{}, err
	}
	// A wrong secret or certificate, an unreachable token endpoint or an
	// allow-list that admits nobody stops here, before a run is recorded or
	// anything sent.
	if err := prober.CheckToken(); err != nil {
		return blockreport.Run{}, err
	}
	if err := checkAllowList(ctx, db, prober, stderr); err != nil {
		return blockreport.Run{}, err
	}

	if cfg.Queue {
		return queueRun(ctx, cfg, db, logger, stderr)
	}
	opts := runs.Options{Now: cfg.now, Logger: logger, OnStop: stopNotice(stderr)}
	var checker *graph.Checker
	if cfg.graph.enabled() {
		if checker, _, err = cfg.graph.checker(cred, cfg, db, logger); err != nil {
			return blockreport.Run{}, err
		}
		opts.Alongside = checker.Run
	}
	sess, err := runs.Begin(ctx, db, cfg.choice(), opts)
	if err != nil {
		return blockreport.Run{}, beginError(cfg, err)
	}
	defer sess.Close()
	run := sess.Run()
	if cfg.RetryUnchecked {
		if sess.Reopened() == 0 {
			what := "no forbidden, throttled or failed result"
			if !cfg.IncludeUnknown {
				what += " other than DeliveryUnknown (--include-unknown re-sends those)"
			}
			fmt.Fprintf(stderr, "run %d: nothing to retry: %s\n", run.ID, what)
			return run, nil
		}
		fmt.Fprintf(stderr, "run %d: re-probing %d results that could not be checked\n", run.ID, sess.Reopened())
	}
	if run.Mode != "" && run.Mode != string(prober.Mode()) {
		// A resumed run keeps its mode, so that all its results mean the same.
		if probe.Mode(run.Mode) == probe.ModeMessage && cfg.message == nil {
			return run, fmt.Errorf("run %d was started in message mode: pass --mode message --message-file FILE to go on with it", run.ID)
		}
		logger.Warn("probing the run in its own mode", "run", run.ID, "mode", run.Mode, "asked", cfg.Mode)
		pcfg.Mode = probe.Mode(run.Mode)
		if prober, err = probe.New(pcfg); err != nil {
			return run, err
		}
	}
	total, err := sess.Pending(ctx)
	if err != nil {
		return run, err
	}
	logger.Info("probe run", "run", run.ID, "mode", run.Mode, "pending", total)

	progress := showProgress(progressView{
		desc:  "probing",
		total: int64(total),
		done:  func() int64 { return int64(prober.Progress().Done) },
		fields: func() []any {
			pr := prober.Progress()
			return []any{"done", pr.Done, "total", total, "statuses", summary(pr.ByStatus)}
		},
	}, cfg.progressEvery, logger, stderr)
	run, runErr := sess.Probe(ctx, prober)
	progress.Stop()
	if errors.Is(runErr, store.ErrLockLost) {
		return run, runErr // nothing more was recorded: no final line
	}
	if errors.Is(runErr, probe.ErrInterrupted) {
		runErr = fmt.Errorf("run %d interrupted; run the same command again (blockreport probe or run) to resume it: %w", run.ID, runErr)
	}
	fmt.Fprintf(stderr, "run %d %s: %s\n", run.ID, run.State, summary(run.Totals))
	return run, runErr
}

// beginError words a runs.Begin failure for the command line.
func beginError(cfg probeConfig, err error) error {
	switch {
	case errors.Is(err, runs.ErrBusy):
		return errors.New("another blockreport run is in progress on this store; wait for it to finish")
	case errors.Is(err, runs.ErrFinished):
		return usageErrorf("--resume %d: the run is already finished (to re-probe what it could not check: --retry-unchecked --run %d)", cfg.Resume, cfg.Resume)
	case errors.Is(err, runs.ErrNoRun) && cfg.Resume > 0:
		return usageErrorf("--resume %d: no such run", cfg.Resume)
	case errors.Is(err, runs.ErrNoRun) && cfg.RetryRun > 0:
		return usageErrorf("--run %d: no such run", cfg.RetryRun)
	case errors.Is(err, runs.ErrNoRun):
		return errors.New("--retry-unchecked: there is no finished run yet")
	case errors.Is(err, runs.ErrNotRetryable):
		return fmt.Errorf("--retry-unchecked: %w", err)
	}
	return err
}

// checkAllowList is the allow-list preflight: with no reference whose
// service host may receive the token it is a usage error naming the hosts
// and --allow-host (no run is recorded); otherwise each refused host gets
// one warning line with its number of references.
func checkAllowList(ctx context.Context, db *store.DB, prober *probe.Prober, stderr io.Writer) error {
	cov, err := runs.CheckCoverage(ctx, db, prober.CheckServiceURL)
	if err != nil {
		return err
	}
	if err := cov.Err(); err != nil {
		return usageErrorf("%v: add the hosts that are yours with --allow-host (or pick the right --cloud); nothing was probed and no run was recorded", err)
	}
	for _, h := range cov.RefusedHosts() {
		fmt.Fprintf(stderr, "warning: %d references point at %s, which may not receive the token (%v): they will be recorded as invalid\n",
			h.References, h.Host, h.Refused)
	}
	return nil
}

// stopNotice tells the user, on the first Ctrl-C or SIGTERM, what the run
// does before it stops.
func stopNotice(stderr io.Writer) func(int, time.Duration) {
	return func(n int, grace time.Duration) {
		switch {
		case n == 0:
			fmt.Fprintln(stderr, "stopping: saving the results so far")
		case grace < 0:
			fmt.Fprintf(stderr, "stopping: cutting off %d probes in flight (--grace 0)\n", n)
		default:
			fmt.Fprintf(stderr, "stopping: waiting up to %s for %d probes in flight (press Ctrl-C again to stop now)\n", grace, n)
		}
	}
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
