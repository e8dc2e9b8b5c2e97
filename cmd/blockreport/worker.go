package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/queue"
	"github.com/blockreport/blockreport/store"
)

// workerConfig is the configuration of the worker command: the probe
// settings a worker applies to the chunks it holds, and the queue's.
type workerConfig struct {
	probe       probeConfig
	Jobs        int
	ChunkSize   int
	ChunkTime   time.Duration
	RescueAfter time.Duration
	Schedule    string
}

// workerRate is the worker's default --rate: below the in-process
// default, because a tenant handed from one worker's pacer to another's
// adds the network's jitter at the boundary (a run at 48/s saw one second
// of 51 at faketeams; at 40 none went above 50).
const workerRate = 40

const workerSynopsis = "worker --db postgres://... [--app-id ID] [--auth KIND] [--concurrency N] [--jobs N] [--grace D] [--schedule CRON [--mode M] [--message-file F]] [flags]" + credentialsHelp

// runWorker takes probe work off the store's River queue until SIGTERM
// (or SIGINT): then the chunks it holds stop taking references, their
// probes in flight get --grace, and the rest goes back to the queue for
// another worker. PostgreSQL only; any number of workers on any machines.
func runWorker(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := parseWorkerFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.probe.common.logger(stderr)
	if err != nil {
		return err
	}
	db, err := openExisting(ctx, cfg.probe.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()

	pcfg := cfg.probe.proberConfig(logger)
	pcfg.Abort = abortOf(ctx)
	cred, err := cfg.probe.cred.credential(probe.Cloud(cfg.probe.Cloud), logger)
	if err != nil {
		return err
	}
	pcfg.Credential = cred
	// One connection pool for every chunk's prober.
	pcfg.HTTPClient = &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2 * cfg.probe.Concurrency,
		MaxIdleConnsPerHost: cfg.probe.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	check, err := probe.New(pcfg)
	if err != nil {
		return err
	}
	// A wrong credential stops the worker before it takes any work.
	if err := check.CheckToken(); err != nil {
		return err
	}

	qcfg := queue.Config{
		Prober: func(mode probe.Mode, message []byte, concurrency int) (*probe.Prober, error) {
			c := pcfg
			c.Mode, c.Message, c.Concurrency = mode, message, concurrency
			return probe.New(c)
		},
		Concurrency: cfg.probe.Concurrency, Jobs: cfg.Jobs, ChunkSize: cfg.ChunkSize, ChunkTime: cfg.ChunkTime,
		Grace: cfg.probe.Grace, RescueAfter: cfg.RescueAfter, Logger: logger, Now: cfg.probe.now,
	}
	if cfg.Schedule != "" {
		c := cfg.probe.choice()
		qcfg.Schedule = &queue.Schedule{Cron: cfg.Schedule, Mode: c.Mode, Message: cfg.probe.message, Params: c.Params}
	}
	w, err := queue.NewWorker(ctx, db, qcfg)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

func parseWorkerFlags(args []string, getenv func(string) string, stderr io.Writer) (workerConfig, error) {
	var cfg workerConfig
	fs := newFlagSet("worker", workerSynopsis, getenv, stderr)
	fs.common(&cfg.probe.common)
	p := &cfg.probe
	p.progressEvery = 5 * time.Second
	p.cred.register(fs)
	fs.stringVar(&p.Cloud, "cloud", "public", "cloud: public, gcc, gcch or dod", "BLOCKREPORT_CLOUD")
	if v := getenv("BLOCKREPORT_ALLOW_HOSTS"); v != "" {
		_ = p.AllowHosts.Set(v)
	}
	fs.Var(&p.AllowHosts, "allow-host", "extra host or IP (any port) allowed to receive the token; repeatable (env BLOCKREPORT_ALLOW_HOSTS, comma list)")
	fs.stringVar(&p.GCCServiceURL, "gcc-service-url", "", "service URL to retry a 403 InvalidBotApiHost on (default: the cloud's GCC URL; tests)", "BLOCKREPORT_GCC_SERVICE_URL")
	fs.intVar(&p.Concurrency, "concurrency", 64, "requests in flight at most in this worker, shared by the chunks it holds", "BLOCKREPORT_CONCURRENCY")
	fs.floatVar(&p.Rate, "rate", workerRate, "ceiling of requests per second per tenant (Teams allows 50); a tenant is probed by one worker at a time", "BLOCKREPORT_RATE")
	fs.durationVar(&p.Timeout, "timeout", 15*time.Second, "timeout of one request", "BLOCKREPORT_TIMEOUT")
	fs.intVar(&p.Attempts, "attempts", 5, "attempts per request for retryable answers", "BLOCKREPORT_ATTEMPTS")
	fs.durationVar(&p.Grace, "grace", 10*time.Second, "on SIGTERM, time the probes in flight get to finish before the worker hands its chunks back (0: none)", "BLOCKREPORT_GRACE")
	fs.durationVar(&p.StoreWait, "store-wait", time.Minute, "how long a failing database is retried before a chunk stops (it is retried later)", "BLOCKREPORT_STORE_WAIT")
	fs.intVar(&cfg.Jobs, "jobs", queue.DefaultJobs, "chunks (tenants) this worker holds at once; each gets --concurrency / --jobs requests in flight", "BLOCKREPORT_JOBS")
	fs.intVar(&cfg.ChunkSize, "chunk-size", queue.DefaultChunkSize, "references of one tenant per chunk at most", "BLOCKREPORT_CHUNK_SIZE")
	fs.durationVar(&cfg.ChunkTime, "chunk-time", queue.DefaultChunkTime, "time a chunk takes references for at most; then the tenant's next chunk goes back to the queue", "BLOCKREPORT_CHUNK_TIME")
	fs.durationVar(&cfg.RescueAfter, "rescue-after", 0, "a chunk running this long is taken from its (dead) worker and given to another; the same on every worker (default: chunk time + grace + 20s, 60s at the defaults)", "BLOCKREPORT_RESCUE_AFTER")
	fs.stringVar(&cfg.Schedule, "schedule", "", `start a run on this cron schedule ("0 6 1 * *", "@daily", "@every 24h"), one per tick however many workers have it (the elected leader starts it)`, "BLOCKREPORT_SCHEDULE")
	fs.stringVar(&p.Mode, "mode", "typing", "with --schedule: the mode of the runs it starts (typing, message or members)", "BLOCKREPORT_MODE")
	fs.stringVar(&p.MessageFile, "message-file", "", "with --schedule --mode message: the message to send; a worker takes other runs' messages from the queue", "BLOCKREPORT_MESSAGE_FILE")
	if err := fs.parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageErrorf("worker: unexpected argument %q", fs.Arg(0))
	}
	if err := p.validate("worker"); err != nil {
		return cfg, err
	}
	if d, _, _ := store.ParseURL(p.common.DB); d != store.Postgres {
		return cfg, usageErrorf("worker: --db must be a PostgreSQL URL (postgres://...): workers share a run through PostgreSQL; the embedded SQLite store probes in-process with \"blockreport run\"")
	}
	switch {
	case cfg.Jobs < 1:
		return cfg, usageErrorf("worker: --jobs must be at least 1")
	case cfg.ChunkSize < 1:
		return cfg, usageErrorf("worker: --chunk-size must be at least 1")
	case cfg.ChunkTime <= 0:
		return cfg, usageErrorf("worker: --chunk-time must be positive")
	case cfg.RescueAfter < 0:
		return cfg, usageErrorf("worker: --rescue-after must not be negative")
	case cfg.RescueAfter > 0 && cfg.RescueAfter <= queue.JobTimeout(cfg.ChunkTime, p.Grace):
		return cfg, usageErrorf("worker: --rescue-after %s must exceed --chunk-time + --grace + 10s (%s): a live chunk must never be rescued",
			cfg.RescueAfter, queue.JobTimeout(cfg.ChunkTime, p.Grace))
	}
	if cfg.Schedule != "" {
		if err := queue.ParseCron(cfg.Schedule); err != nil {
			return cfg, usageErrorf("worker: --schedule %q: %v", cfg.Schedule, err)
		}
	} else if p.MessageFile != "" {
		return cfg, usageErrorf("worker: --message-file is for the runs --schedule starts; other runs bring their message")
	}
	if err := p.cred.check("worker", getenv); err != nil {
		return cfg, err
	}
	return cfg, p.loadMessage("worker")
}

// errQueueSQLite is the usage error of --queue on the embedded store.
func errQueueSQLite(cmd string) error {
	return usageErrorf("%s: --queue needs a PostgreSQL store (--db postgres://...) shared with the workers; the embedded SQLite store probes in-process (drop --queue)", cmd)
}

// migrateQueue creates or updates River's tables beside goose's on a
// PostgreSQL store (the embedded SQLite store has no queue) and prints
// their version.
func migrateQueue(ctx context.Context, db *store.DB, stdout io.Writer) error {
	if db.Driver() != store.Postgres {
		return nil
	}
	if _, err := queue.Migrate(ctx, db); err != nil {
		return err
	}
	v, err := queue.Version(ctx, db)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "queue tables version %d (river)\n", v)
	return err
}
