package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	blockreport "github.com/blockreport/blockreport"
)

// Store is what the cross-check needs from persistence (*store.DB).
type Store interface {
	// GraphTenants lists the tenants with results of the run not yet
	// cross-checked (personal references with an AAD object id).
	GraphTenants(ctx context.Context, runID int64) ([]string, error)
	// GraphPending returns up to limit such results of the tenant, in
	// reference id order after the id after.
	GraphPending(ctx context.Context, runID int64, tenantID string, after int64, limit int) ([]blockreport.Row, error)
	// SaveGraphChecks records checks in one transaction: the check rows,
	// revised results (GraphChanged) and re-linked references, whose
	// result is dropped so that the run probes the new chat.
	SaveGraphChecks(ctx context.Context, checks []blockreport.GraphCheck) error
	SaveDirectoryUsers(ctx context.Context, users []blockreport.DirectoryUser, now time.Time) error
	SaveTenantGraph(ctx context.Context, runID int64, t blockreport.TenantGraph, now time.Time) error
}

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	Client *Client
	Store  Store
	// SkipReachable leaves reachable results without an installation
	// lookup (their users are still looked up in the directory): the only
	// thing such a lookup can add is a note.
	SkipReachable bool
	// Coverage lists every enabled member of each tenant once per run and
	// checks the installation of those without a reference (the Store
	// must be a CoverageStore).
	Coverage bool
	// GlobalServiceURL is the service URL of references coverage creates
	// in a tenant without stored references (default: the public cloud's).
	GlobalServiceURL string
	// BotID is the bot's id in conversations ("28:" + app id), stored on
	// references coverage creates.
	BotID    string
	Parallel int           // tenants checked at once, default 16
	Page     int           // results per page, default 300
	Poll     time.Duration // while probing, how often to look for new results; default 1s
	Logger   *slog.Logger
	Now      func() time.Time
}

// Checker cross-checks a run's results with Graph as they are saved,
// tenant by tenant, and enriches them with the directory.
type Checker struct {
	cfg CheckerConfig
	c   *Client

	mu      sync.Mutex
	tenants map[string]*tenantRun
}

// tenantRun is what the checker learnt about a tenant in this process.
type tenantRun struct {
	info blockreport.TenantGraph
	once sync.Once // ensure
	err  error
}

// NewChecker returns a Checker.
func NewChecker(cfg CheckerConfig) *Checker {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	if cfg.Page <= 0 {
		cfg.Page = 300
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GlobalServiceURL == "" {
		cfg.GlobalServiceURL = GlobalServiceURL(blockreport.CloudPublic)
	}
	return &Checker{cfg: cfg, c: cfg.Client, tenants: map[string]*tenantRun{}}
}

// Run cross-checks the results of runID until probing is closed (the
// probes of this pass are done) and nothing is left unchecked. Graph being
// unavailable for a tenant is no error: that tenant's verdicts stand, the
// tenant is logged once and recorded. Errors are the store's, or ctx's.
func (k *Checker) Run(ctx context.Context, runID int64, probing <-chan struct{}) error {
	covered := make(chan error, 1)
	if k.cfg.Coverage {
		go func() { covered <- k.coverage(ctx, runID) }()
	} else {
		covered <- nil
	}
	err := k.checks(ctx, runID, probing)
	if cerr := <-covered; err == nil {
		err = cerr
	}
	return err
}

// checks cross-checks results until probing is closed and none is left.
func (k *Checker) checks(ctx context.Context, runID int64, probing <-chan struct{}) error {
	for {
		done := false
		select {
		case <-probing:
			done = true
		default:
		}
		tenants, err := k.cfg.Store.GraphTenants(ctx, runID)
		if err != nil {
			return fmt.Errorf("graph: tenants to check in run %d: %w", runID, err)
		}
		var g errgroup.Group
		g.SetLimit(k.cfg.Parallel)
		for _, t := range tenants {
			g.Go(func() error { return k.tenant(ctx, runID, t) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if done && len(tenants) == 0 {
			return nil
		}
		if len(tenants) == 0 || !done {
			select {
			case <-probing:
			case <-time.After(k.cfg.Poll):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// Tenants returns what the checker recorded per tenant, by tenant id.
func (k *Checker) Tenants() []blockreport.TenantGraph {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]blockreport.TenantGraph, 0, len(k.tenants))
	for _, t := range k.tenants {
		out = append(out, t.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantID < out[j].TenantID })
	return out
}

func (k *Checker) state(tenantID string) *tenantRun {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tenants[tenantID]
	if t == nil {
		t = &tenantRun{info: blockreport.TenantGraph{TenantID: tenantID, Available: true, EnabledUsers: -1}}
		k.tenants[tenantID] = t
	}
	return t
}

// setTenant records t's Graph state (once unavailable it stays so).
func (k *Checker) saveTenant(ctx context.Context, runID int64, t *tenantRun) error {
	k.mu.Lock()
	info := t.info
	k.mu.Unlock()
	if err := k.cfg.Store.SaveTenantGraph(ctx, runID, info, k.cfg.Now()); err != nil {
		return fmt.Errorf("graph: save tenant %s of run %d: %w", info.TenantID, runID, err)
	}
	return nil
}

func (k *Checker) down(ctx context.Context, runID int64, t *tenantRun, te *TenantError) error {
	k.mu.Lock()
	first := t.info.Available
	t.info.Available, t.info.Reason = false, te.Reason
	k.mu.Unlock()
	if first {
		k.cfg.Logger.Warn("Microsoft Graph unavailable for a tenant; its connector verdicts stand and Installed (Graph) is unknown",
			"tenant", te.Tenant, "reason", te.Reason)
		return k.saveTenant(ctx, runID, t)
	}
	return nil
}

// ensure names the tenant (organization) once, which also tells whether
// Graph is available for it, and records it.
func (k *Checker) ensure(ctx context.Context, runID int64, t *tenantRun) error {
	t.once.Do(func() {
		tenantID := t.info.TenantID
		name, err := k.c.Organization(ctx, tenantID)
		var te *TenantError
		switch {
		case errors.As(err, &te):
			t.err = k.down(ctx, runID, t, te)
			return
		case err != nil && ctx.Err() != nil:
			t.err = ctx.Err()
			return
		case err != nil:
			k.cfg.Logger.Warn("graph: tenant name unavailable", "tenant", tenantID, "err", err)
		default:
			k.mu.Lock()
			t.info.Name = name
			k.mu.Unlock()
		}
		t.err = k.saveTenant(ctx, runID, t)
	})
	return t.err
}

func (k *Checker) available(t *tenantRun) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return t.info.Available
}

// tenant checks every unchecked result of one tenant.
func (k *Checker) tenant(ctx context.Context, runID int64, tenantID string) error {
	t := k.state(tenantID)
	if err := k.ensure(ctx, runID, t); err != nil {
		return err
	}
	for {
		rows, err := k.cfg.Store.GraphPending(ctx, runID, tenantID, 0, k.cfg.Page)
		if err != nil {
			return fmt.Errorf("graph: results to check of tenant %s in run %d: %w", tenantID, runID, err)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := k.page(ctx, runID, t, rows); err != nil {
			return err
		}
		if len(rows) < k.cfg.Page {
			return nil
		}
	}
}

// page checks one page of a tenant's results and saves the checks.
func (k *Checker) page(ctx context.Context, runID int64, t *tenantRun, rows []blockreport.Row) error {
	tenantID := t.info.TenantID
	now := k.cfg.Now()
	unknown := func(note string) []blockreport.GraphCheck {
		out := make([]blockreport.GraphCheck, len(rows))
		for i, r := range rows {
			out[i] = blockreport.GraphCheck{RunID: runID, ReferenceID: r.Reference.ID, Installed: InstalledUnknown,
				Outcome: blockreport.GraphUnknown, Note: note, Result: r.Result, CheckedAt: now}
		}
		return out
	}
	save := func(checks []blockreport.GraphCheck) error {
		if err := k.cfg.Store.SaveGraphChecks(ctx, checks); err != nil {
			return fmt.Errorf("graph: save %d checks of tenant %s in run %d: %w", len(checks), tenantID, runID, err)
		}
		return nil
	}
	// handle turns a Graph error into the tenant being unavailable (the
	// page then gets unknown checks) or returns it.
	handle := func(err error) error {
		var te *TenantError
		if errors.As(err, &te) {
			if err := k.down(ctx, runID, t, te); err != nil {
				return err
			}
			return save(unknown("Graph unavailable for the tenant: " + te.Reason))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if !k.available(t) {
		k.mu.Lock()
		reason := t.info.Reason
		k.mu.Unlock()
		return save(unknown("Graph unavailable for the tenant: " + reason))
	}

	ids := make([]string, 0, len(rows))
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.AADObjectID] {
			seen[r.AADObjectID] = true
			ids = append(ids, r.AADObjectID)
		}
	}
	users, err := k.c.Users(ctx, tenantID, ids)
	if err != nil {
		return handle(err)
	}
	dir := make([]blockreport.DirectoryUser, 0, len(ids))
	for _, id := range ids {
		u, ok := users[id]
		dir = append(dir, directoryUser(tenantID, id, u, ok))
	}
	if err := k.cfg.Store.SaveDirectoryUsers(ctx, dir, now); err != nil {
		return fmt.Errorf("graph: save directory users of tenant %s: %w", tenantID, err)
	}

	var ask []string
	asked := map[string]bool{}
	for _, r := range rows {
		if k.cfg.SkipReachable && r.Status == blockreport.StatusReachable {
			continue
		}
		if _, ok := users[r.AADObjectID]; !ok || asked[r.AADObjectID] {
			continue // not in the directory: installedApps would answer 404
		}
		asked[r.AADObjectID] = true
		ask = append(ask, r.AADObjectID)
	}
	byUser := map[string]Installation{}
	if len(ask) > 0 {
		ins, err := k.c.Installations(ctx, tenantID, ask)
		if err != nil {
			return handle(err)
		}
		for _, in := range ins {
			byUser[in.UserID] = in
		}
	}
	checks := make([]blockreport.GraphCheck, len(rows))
	stale := map[string]string{}
	for i, r := range rows {
		in, ok := byUser[r.AADObjectID]
		if !ok {
			in = Installation{UserID: r.AADObjectID, Installed: InstalledUnknown}
		}
		d := Decide(r, in)
		d.Check.RunID, d.Check.CheckedAt = runID, now
		if _, found := users[r.AADObjectID]; !found {
			d.Check.Note = joinNote(d.Check.Note, "not in directory")
		} else if !users[r.AADObjectID].AccountEnabled {
			d.Check.Note = joinNote(d.Check.Note, "account disabled")
		}
		if k.cfg.SkipReachable && r.Status == blockreport.StatusReachable {
			d.Check.Answer = "not asked (reachable)"
		}
		checks[i] = d.Check
		if d.NeedChat {
			stale[r.AADObjectID] = in.ID
		}
	}
	if len(stale) > 0 {
		chats, err := k.c.Chats(ctx, tenantID, stale)
		if err != nil {
			return handle(err)
		}
		for i := range checks {
			c := &checks[i]
			if c.Outcome != blockreport.GraphRelinked {
				continue
			}
			if chat := chats[rows[i].AADObjectID]; chat != "" && chat != rows[i].ConversationID {
				c.ChatID = chat
			} else {
				// Installed, but its chat is unknown: the verdict stands.
				c.Outcome, c.ConnectorStatus = blockreport.GraphNoted, ""
				c.Note = joinNote(c.Note, "the installation's chat could not be read; not re-linked")
			}
		}
	}
	return save(checks)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func directoryUser(tenantID, id string, u User, found bool) blockreport.DirectoryUser {
	if !found {
		return blockreport.DirectoryUser{TenantID: tenantID, AADObjectID: id}
	}
	return blockreport.DirectoryUser{
		TenantID: tenantID, AADObjectID: id, InDirectory: true, DisplayName: u.DisplayName, UPN: u.UPN, Mail: u.Mail,
		Department: u.Department, JobTitle: u.JobTitle, OfficeLocation: u.OfficeLocation, Country: u.Country,
		AccountEnabled: u.AccountEnabled, UserType: u.UserType,
	}
}
