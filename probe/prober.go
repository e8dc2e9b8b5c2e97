package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	blockreport "github.com/blockreport/blockreport"
)

// Store is what the engine needs from persistence (implemented by *store.DB).
type Store interface {
	PendingTenants(ctx context.Context, runID int64) ([]string, error)
	Pending(ctx context.Context, runID int64, tenantID string, fn func(blockreport.Reference) error) error
	SaveResults(ctx context.Context, results []blockreport.Result) error
}

// Sentinel errors of a run; each is wrapped with the details of what to fix.
var (
	// ErrUnauthorized means the Bot Connector answered 401 to a request
	// retried with a freshly fetched token: the app id or credential is
	// wrong or the bot is not registered. The run stops as interrupted
	// (it wraps ErrInterrupted too), resumable once that is fixed.
	ErrUnauthorized = errors.New("the Bot Connector rejected the bot's token (HTTP 401)")
	// ErrInterrupted means the run was cancelled; what was answered is saved
	// and the next run resumes the rest.
	ErrInterrupted = errors.New("probe run interrupted")
)

// DefaultConcurrency is the default bound on requests in flight: 20
// tenants at 48/s with Teams' latency (a mean of 0.4 s) keep ~400 in flight.
const DefaultConcurrency = 512

// Mode is what the probe sends to each conversation.
type Mode string

// The probe modes.
const (
	// ModeTyping posts a typing activity: the lowest-intrusion write.
	// Microsoft documents the 403 answers for messages; a typing activity is
	// treated as the same write (teams-api.md §1(c): UNCONFIRMED).
	ModeTyping Mode = "typing"
	// ModeMessage posts a real message (text or Adaptive Card): the
	// documented way to find who blocked or uninstalled the bot.
	ModeMessage Mode = "message"
	// ModeMembers reads one roster member. It sends nothing to the user and
	// detects uninstalled, admin-disabled and deleted conversations, never a
	// block.
	ModeMembers Mode = "members"
)

// Config configures a Prober. Zero values take the documented defaults.
type Config struct {
	AppID string // the bot's app id (its id in conversations is "28:" + AppID)
	// Credential gets the Bot Connector token (*auth.Credential).
	Credential Credential
	Cloud      Cloud // default public
	AllowHosts []string
	// GCCServiceURL is where a 403 InvalidBotApiHost is retried once
	// (default: the cloud's GCC service URL). It must pass the allow-list.
	GCCServiceURL string

	Mode    Mode   // default typing
	Message []byte // ModeMessage: plain text, or Adaptive Card / activity JSON

	// Concurrency bounds the requests in flight across tenants (default
	// 512). The per-tenant rate, not this, paces the run; it only has to
	// cover tenants × rate × latency (20 tenants at 48/s with a 150 ms mean
	// latency keep ~150 requests in flight). A request holds its slot only
	// while it is on the wire, never while it waits for its pace, a pause
	// or a backoff.
	Concurrency       int
	TenantParallelism int // tenants dispatched at once, default 64
	// Rate is the ceiling of each tenant's pace in requests per second
	// (default DefaultRate, Teams' 50 less 4 %): no sliding second holds
	// more than floor(Rate) of a tenant's requests. The pace adapts under
	// it (see pacer).
	Rate float64

	Timeout       time.Duration // per request, default 15s
	Attempts      int           // per request, default 5
	Grace         time.Duration // for in-flight probes after cancellation, default 10s; negative: none
	BackoffBase   time.Duration // first retry backoff, default 1s
	BackoffMax    time.Duration // default 30s
	MaxRetryAfter time.Duration // cap on a Retry-After pause, default 2m
	BatchSize     int           // results per SaveResults, default 500
	FlushEvery    time.Duration // default 250ms (message mode 100ms)
	// StoreWait is how long a failing store (SaveResults, Pending) is
	// retried with backoff before the run stops as interrupted: a database
	// restart or failover only pauses the run. Default 60s; negative: no retry.
	StoreWait time.Duration
	// ClaimBatch is, in message mode, how many conversations of a tenant
	// are recorded as being sent per store write before their messages go
	// out (default: a quarter second of Rate, 1 to 25).
	ClaimBatch int
	// Abort, when closed after the run's context was cancelled, cuts off
	// the probes in flight at once instead of after Grace (a second
	// Ctrl-C). Their references get no result; the run stays resumable.
	Abort <-chan struct{}

	HTTPClient *http.Client     // default: a pooled client; redirects are never followed
	Now        func() time.Time // default time.Now
	Rand       func() float64   // jitter in [0,1), default math/rand/v2
	Logger     *slog.Logger     // default discards
	UserAgent  string           // default "blockreport"
}

func (c *Config) defaults() {
	if c.Cloud == "" {
		c.Cloud = CloudPublic
	}
	if c.Mode == "" {
		c.Mode = ModeTyping
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.TenantParallelism <= 0 {
		c.TenantParallelism = 64
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 2 * time.Minute
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = 250 * time.Millisecond
		if c.Mode == ModeMessage {
			// An answer not yet saved when the process dies ends as
			// DeliveryUnknown: keep that window short.
			c.FlushEvery = 100 * time.Millisecond
		}
	}
	if c.StoreWait == 0 {
		c.StoreWait = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.UserAgent == "" {
		c.UserAgent = "blockreport"
	}
}

// Prober probes conversation references. It is safe for concurrent use; its
// token and its per-tenant pacing are shared by every run it makes.
type Prober struct {
	cfg     Config
	client  *http.Client
	allow   allowList
	cred    Credential
	scope   string   // of the connector token
	gcc     *url.URL // nil: no InvalidBotApiHost retry
	message map[string]any

	bases  sync.Map     // service URL → parsed base (serviceBase)
	nbases atomic.Int64 // entries stored in bases

	mu       sync.Mutex
	pacers   map[string]*pacer
	prog     Progress
	inflight atomic.Int64 // probes started and not finished
}

// Progress counts the results a Prober has saved.
type Progress struct {
	Done     int
	ByStatus map[blockreport.Status]int
}

// New checks cfg and returns a Prober. It does not contact anything yet.
func New(cfg Config) (*Prober, error) {
	cfg.defaults()
	prof, err := profile(cfg.Cloud)
	if err != nil {
		return nil, err
	}
	if cfg.AppID == "" {
		return nil, errors.New("no app id: set --app-id or MICROSOFT_APP_ID")
	}
	if cfg.Credential == nil {
		return nil, errors.New("no credential for the Bot Connector token")
	}
	switch cfg.Mode {
	case ModeTyping, ModeMembers:
	case ModeMessage:
	default:
		return nil, fmt.Errorf("unknown mode %q: want typing, message or members", cfg.Mode)
	}
	if cfg.Attempts > 20 {
		return nil, fmt.Errorf("attempts %d: want at most 20", cfg.Attempts)
	}
	allow, err := newAllowList(prof.hosts, cfg.AllowHosts)
	if err != nil {
		return nil, err
	}
	p := &Prober{cfg: cfg, allow: allow, cred: cfg.Credential, scope: prof.scope, pacers: map[string]*pacer{}}
	p.prog.ByStatus = map[blockreport.Status]int{}
	if cfg.Mode == ModeMessage {
		if p.message, err = parseMessage(cfg.Message); err != nil {
			return nil, err
		}
		if err := checkSize(p.message); err != nil {
			return nil, err
		}
	}
	gcc := cfg.GCCServiceURL
	if gcc == "" {
		gcc = prof.gccServiceURL
	}
	if gcc != "" {
		u, err := serviceBase(gcc)
		if err != nil {
			return nil, fmt.Errorf("GCC service URL: %w", err)
		}
		if err := allow.check(u); err != nil {
			return nil, fmt.Errorf("GCC service URL: %w", err)
		}
		p.gcc = u
	}

	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        2 * cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	client := *base
	// Never follow a redirect: the bearer token must not be carried to a
	// host the allow-list did not approve. A 3xx is a failed result.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.client = &client
	return p, nil
}

// parseMessage turns --message-file contents into an activity template:
// an Adaptive Card JSON becomes an attachment, an activity JSON is used as
// is, anything else is the message text.
func parseMessage(b []byte) (map[string]any, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, errors.New("message mode needs a non-empty --message-file")
	}
	if strings.HasPrefix(s, "{") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(s), &obj); err != nil {
			return nil, fmt.Errorf("message file looks like JSON but does not parse: %w", err)
		}
		switch obj["type"] {
		case "AdaptiveCard":
			return map[string]any{"attachments": []any{map[string]any{
				"contentType": "application/vnd.microsoft.card.adaptive",
				"content":     obj,
			}}}, nil
		case "message":
			return obj, nil
		}
		return nil, errors.New(`message file JSON must be an Adaptive Card ("type": "AdaptiveCard") or an activity ("type": "message")`)
	}
	return map[string]any{"text": s}, nil
}

// Progress returns the counts of results saved so far.
func (p *Prober) Progress() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Progress{Done: p.prog.Done, ByStatus: make(map[blockreport.Status]int, len(p.prog.ByStatus))}
	for k, v := range p.prog.ByStatus {
		out.ByStatus[k] = v
	}
	return out
}

func (p *Prober) count(results []blockreport.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range results {
		p.prog.Done++
		p.prog.ByStatus[r.Status]++
	}
}

func (p *Prober) pacer(tenant string) *pacer {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.pacers[tenant]
	if !ok {
		pc = newPacer(p.cfg.Rate, time.Now)
		p.pacers[tenant] = pc
	}
	return pc
}

// InFlight returns the number of probes started and not finished, and the
// grace they get once the run is cancelled (negative: none).
func (p *Prober) InFlight() (n int, grace time.Duration) {
	return int(p.inflight.Load()), p.cfg.Grace
}

// Mode returns the probe mode.
func (p *Prober) Mode() Mode { return p.cfg.Mode }

// CheckServiceURL returns nil when a reference with this service URL would
// be probed: it parses and its host may receive the token. Otherwise the
// error says why the reference would be recorded as invalid.
func (p *Prober) CheckServiceURL(raw string) error { return p.allow.checkServiceURL(raw) }

// ServiceURLChecker is Prober.CheckServiceURL for a cloud and extra
// allowed hosts, without a Prober (no credentials needed).
func ServiceURLChecker(cloud Cloud, allowHosts []string) (func(serviceURL string) error, error) {
	prof, err := profile(cloud)
	if err != nil {
		return nil, err
	}
	allow, err := newAllowList(prof.hosts, allowHosts)
	if err != nil {
		return nil, err
	}
	return allow.checkServiceURL, nil
}

// CheckMessage returns nil when b, the contents of a message file, is a
// message message mode can send (text, an Adaptive Card or an activity)
// within Teams' size limit; an error wrapping ErrMessageTooBig otherwise
// says by how much it is over.
func CheckMessage(b []byte) error {
	msg, err := parseMessage(b)
	if err != nil {
		return err
	}
	return checkSize(msg)
}

// MaxMessageBytes is Teams' documented size limit of a bot message: 100 KB
// of the activity encoded as UTF-16 ("format your bot messages"; Teams
// answers 413 MessageSizeTooBig over it).
const MaxMessageBytes = 100 << 10

// ErrMessageTooBig is the error of a message file over MaxMessageBytes.
var ErrMessageTooBig = errors.New("message too big for Teams")

// activityOverhead bounds what the probe adds to the message for each
// conversation (type, channel, from, recipient, conversation, locale).
const activityOverhead = 1024

// checkSize rejects a message whose activity would be over Teams' limit.
func checkSize(msg map[string]any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("message file: %w", err)
	}
	if n := utf16Size(b) + 2*activityOverhead; n > MaxMessageBytes {
		return fmt.Errorf("%w: the activity would be about %d KB as UTF-16, Teams accepts at most %d KB (it answers 413 MessageSizeTooBig); shorten the message or the card",
			ErrMessageTooBig, (n+1023)/1024, MaxMessageBytes/1024)
	}
	return nil
}

// utf16Size is the size of b (UTF-8) once encoded as UTF-16.
func utf16Size(b []byte) int {
	n := 0
	for _, r := range string(b) {
		if r >= 0x10000 {
			n += 4
		} else {
			n += 2
		}
	}
	return n
}

// CheckToken gets the connector token; its error wraps ErrToken and says
// what to fix.
func (p *Prober) CheckToken() error {
	if _, err := p.cred.Token(context.Background(), "", p.scope); err != nil {
		return fmt.Errorf("%w: %w", ErrToken, err)
	}
	return nil
}

// Run probes every reference of runID that has no result yet, tenant by
// tenant (several at once), and saves the results. It returns nil when every
// pending reference got a result; an error wrapping ErrToken or
// ErrUnauthorized on a configuration problem (no result is recorded for the
// references it concerns); ErrInterrupted when ctx was cancelled (in-flight
// probes finish within the grace period and are saved); or a store error.
// In message mode st must also be a SendLog.
func (p *Prober) Run(ctx context.Context, st Store, runID int64) error {
	if err := p.CheckToken(); err != nil {
		return err
	}
	tenants, err := st.PendingTenants(ctx, runID)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("probe run %d: %w", runID, ErrInterrupted)
		}
		return fmt.Errorf("list pending tenants of run %d: %w", runID, err)
	}
	return p.run(ctx, st, runID, tenants)
}

// ProbeTenant probes the pending references of one tenant in runID: the
// resumable unit of work several workers could share.
func (p *Prober) ProbeTenant(ctx context.Context, st Store, runID int64, tenantID string) error {
	if err := p.CheckToken(); err != nil {
		return err
	}
	return p.run(ctx, st, runID, []string{tenantID})
}

// session is the state of one call to run.
type session struct {
	p        *Prober
	runID    int64
	dispatch context.Context // cancelled on ctx cancel or a fatal error
	inflight context.Context // detached from ctx; cancelled after the grace
	results  chan blockreport.Result
	slots    errgroup.Group // probes alive (bounds memory)
	conns    chan struct{}  // requests on the wire (Concurrency)
	sends    SendLog        // message mode only
	unsent   unsent         // message mode: claimed, provably never sent

	once   sync.Once
	err    error
	cancel context.CancelFunc
}

// fail records the first fatal error and stops dispatching at once.
func (s *session) fail(err error) {
	s.once.Do(func() {
		s.err = err
		s.cancel()
	})
}

func (p *Prober) run(ctx context.Context, st Store, runID int64, tenants []string) error {
	var sends SendLog
	if p.cfg.Mode == ModeMessage {
		var ok bool
		if sends, ok = st.(SendLog); !ok {
			return errNoSendLog
		}
	}
	dispatch, cancel := context.WithCancel(ctx)
	defer cancel()
	inflight, cancelInflight := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelInflight()
	s := &session{
		p: p, runID: runID, dispatch: dispatch, inflight: inflight, cancel: cancel,
		results: make(chan blockreport.Result, p.cfg.BatchSize), sends: sends,
		conns: make(chan struct{}, p.cfg.Concurrency),
	}
	// Probes waiting for their pace, a pause or a backoff hold no
	// connection slot; this bounds how many are alive at once.
	s.slots.SetLimit(2*p.cfg.Concurrency + p.cfg.TenantParallelism)

	done := make(chan struct{})
	defer close(done)
	go func() { // after cancellation, in-flight probes get the grace period
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		t := time.NewTimer(max(p.cfg.Grace, 0))
		defer t.Stop()
		select {
		case <-t.C:
			cancelInflight()
		case <-p.cfg.Abort:
			cancelInflight()
		case <-done:
		}
	}()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.write(ctx, st)
	}()

	var tg errgroup.Group
	tg.SetLimit(p.cfg.TenantParallelism)
	for _, t := range tenants {
		tg.Go(func() error {
			s.dispatchTenant(st, t)
			return nil
		})
	}
	_ = tg.Wait()
	_ = s.slots.Wait()
	close(s.results)
	<-writerDone
	s.release()

	if s.err != nil {
		return s.err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("probe run %d: %w", runID, ErrInterrupted)
	}
	return nil
}

// dispatchTenant streams the tenant's pending references and starts one
// probe per reference at the time the tenant's pacer gives it; waiting
// for it holds no slot, so a slow or paused tenant does not hold slots
// others could use.
func (s *session) dispatchTenant(st Store, tenant string) {
	log := s.p.cfg.Logger.With("run", s.runID, "tenant", tenant)
	pc := s.p.pacer(tenant)
	n := 0
	// The store lists references in id order (keyset pages), so a listing
	// retried after a store failure skips what was already handed out: a
	// reference is never probed twice in one run. A listing seen out of
	// order is not retried.
	var last int64
	ordered, pass := true, 0
	// Message mode: references wait here for their claim (see claimAndStart).
	var batch []toProbe
	size := claimBatch(s.p.cfg.Rate, s.p.cfg.ClaimBatch)
	err := s.retryStore(s.dispatch, "list pending references", func() error {
		pass++
		retried := pass > 1
		err := st.Pending(s.dispatch, s.runID, tenant, func(ref blockreport.Reference) error {
			if err := s.dispatch.Err(); err != nil {
				return err
			}
			if ref.ID <= last {
				if retried {
					return nil // dispatched before the store failed
				}
				ordered = false
			}
			last = max(last, ref.ID)
			n++
			r, base, ok := s.p.precheck(ref)
			if !ok {
				r.RunID = s.runID
				s.results <- r
				return nil
			}
			if s.sends == nil {
				return s.start(toProbe{ref, base}, pc)
			}
			if batch = append(batch, toProbe{ref, base}); len(batch) >= size {
				err := s.claimAndStart(batch, pc)
				batch = batch[:0]
				return err
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = s.claimAndStart(batch, pc)
			batch = batch[:0]
		}
		return err
	}, func() bool { return ordered && s.dispatch.Err() == nil })
	if err != nil && s.dispatch.Err() == nil {
		s.fail(fmt.Errorf("list pending references of tenant %q in run %d: %w", tenant, s.runID, err))
		return
	}
	log.Debug("tenant dispatched", "references", n)
}

// start paces and starts the probe of one reference; its result, if it
// gets one, goes to the writer.
func (s *session) start(t toProbe, pc *pacer) error {
	if err := sleepUntil(s.dispatch, time.Now, pc.reserve()); err != nil {
		if s.sends != nil {
			s.unsent.add(t.ref.ID)
		}
		return err
	}
	s.slots.Go(func() error {
		s.p.inflight.Add(1)
		defer s.p.inflight.Add(-1)
		if r, ok := s.probe(t.ref, t.base, pc); ok {
			s.results <- r
		} else if s.sends != nil {
			s.unsent.add(t.ref.ID) // dropped before its message went out
		}
		return nil // a probe outcome is data, never an errgroup error
	})
	return nil
}

// retryStore runs op, and while it fails and canRetry allows, runs it again
// with backoff (100 ms doubling to 5 s) for up to StoreWait: a database
// restart or failover pauses the run instead of failing it. Meanwhile
// probes wait, as the writer stops draining results. When the store is
// still failing after StoreWait (or ctx ends first) the error wraps
// ErrInterrupted: the run stops cleanly and the next run resumes it.
func (s *session) retryStore(ctx context.Context, what string, op func() error, canRetry func() bool) error {
	wait := s.p.cfg.StoreWait
	var start time.Time
	for n := 0; ; n++ {
		err := op()
		if err == nil {
			if n > 0 {
				s.p.cfg.Logger.Info("store available again", "run", s.runID, "op", what, "after", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if wait < 0 || !canRetry() {
			return err
		}
		if n == 0 {
			start = time.Now()
			s.p.cfg.Logger.Warn("store failing, retrying", "run", s.runID, "op", what, "for", wait, "err", err)
		}
		left := wait - time.Since(start)
		d := min(100*time.Millisecond<<min(n, 6), 5*time.Second)
		d = d/2 + time.Duration(s.p.cfg.Rand()*float64(d/2))
		if left <= 0 || sleep(ctx, min(d, left)) != nil {
			return fmt.Errorf("the store kept failing for %s, the run stops (%w): %w",
				time.Since(start).Round(time.Second), ErrInterrupted, err)
		}
	}
}

// write is the single writer: it batches results into SaveResults.
func (s *session) write(ctx context.Context, st Store) {
	batch := make([]blockreport.Result, 0, s.p.cfg.BatchSize)
	tick := time.NewTicker(s.p.cfg.FlushEvery)
	defer tick.Stop()
	broken := false
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if !broken {
			// The last flush happens after cancellation: it must not be cut
			// off, and a failing store is retried while the grace lasts.
			err := s.retryStore(s.inflight, "save results", func() error {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				return st.SaveResults(sctx, batch)
			}, func() bool { return true })
			if err != nil {
				broken = true
				s.fail(fmt.Errorf("save %d results of run %d: %w", len(batch), s.runID, err))
			} else {
				s.p.count(batch)
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case r, ok := <-s.results:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= s.p.cfg.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
