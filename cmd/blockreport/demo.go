package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

// demoConfig is the configuration of the demo command.
type demoConfig struct {
	Out       string
	Users     int
	Tenants   int
	Seed      int
	LogFormat string
	LogLevel  string
}

const (
	demoSynopsis = "demo [--out DIR] [--users N] [--tenants T] [--seed S]\n\n" +
		"Runs the whole tool against a simulated Teams on loopback, with nothing to configure:\n" +
		"a generated organisation is imported into DIR/" + demoDBName + ", probed twice a simulated\n" +
		"month apart (states drift in between) and both runs' reports are written into DIR.\n" +
		"The simulated Teams allows 200 requests/s per tenant; the demo probes at 150/s per tenant."

	demoDBName = "blockreport-demo.db"
	// demoTenantLimit is the simulated per-tenant rate limit (Teams: 50/s),
	// raised so the demo is quick; demoRate stays under it, so the demo
	// still shows pacing without 429s.
	demoTenantLimit = 200
	demoRate        = 150
	demoLatency     = 20 * time.Millisecond
	demoMonth       = 30 * 24 * time.Hour
)

// The demo organisation's shares of each state (fractions of users).
var demoShares = faketeams.GenerateOptions{
	Blocked: 0.06, Uninstalled: 0.04, AdminDisabled: 0.01, Deleted: 0.01, Transient: 0.02, TeamShare: 0.05,
}

// demoGraph is the demo organisation's Graph side: who uninstalled behind
// MessageWritesBlocked, stale conversations, people who left, the
// directory users the bot never reached, and (with two tenants or more)
// the last tenant without admin consent.
var demoGraph = faketeams.GraphOptions{
	WritesBlockedUninstalled: 0.3, Stale: 0.2, Left: 0.01, Disabled: 0.01,
	NeverInstalled: 0.15, InstalledNoReference: 0.02,
}

// runDemo generates an organisation, serves it from an in-process
// faketeams, and runs import, two probe runs a month apart and the reports.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := newFlagSet("demo", demoSynopsis, getenv, stderr)
	fs.stringVar(&cfg.Out, "out", "demo", "directory for the demo database and reports (created if missing)", "BLOCKREPORT_DEMO_OUT")
	fs.intVar(&cfg.Users, "users", 2000, "conversations in the generated organisation", "BLOCKREPORT_DEMO_USERS")
	fs.intVar(&cfg.Tenants, "tenants", 3, "tenants the users are spread over", "BLOCKREPORT_DEMO_TENANTS")
	fs.intVar(&cfg.Seed, "seed", 1, "seed of the generated organisation and of the drift between the runs", "BLOCKREPORT_DEMO_SEED")
	fs.stringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json", "BLOCKREPORT_LOG_FORMAT")
	fs.stringVar(&cfg.LogLevel, "log-level", "warn", "log level: debug, info, warn or error", "BLOCKREPORT_LOG_LEVEL")
	if err := fs.parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("demo: unexpected argument %q", fs.Arg(0))
	case cfg.Out == "":
		return usageErrorf("demo: --out must not be empty")
	case cfg.Users < 1 || cfg.Users > 1_000_000:
		return usageErrorf("demo: --users must be between 1 and 1000000")
	case cfg.Tenants < 1 || cfg.Tenants > cfg.Users:
		return usageErrorf("demo: --tenants must be between 1 and --users")
	case cfg.Seed < 0:
		return usageErrorf("demo: --seed must not be negative")
	}
	logger, err := commonConfig{LogFormat: cfg.LogFormat, LogLevel: cfg.LogLevel}.logger(stderr)
	if err != nil {
		return err
	}
	if err := checkOutDir(cfg.Out); err != nil {
		return err
	}
	limitMemory(getenv)
	dbPath := filepath.Join(cfg.Out, demoDBName)
	if err := removeDemoDB(dbPath); err != nil {
		return err
	}

	opts := demoShares
	opts.Users, opts.Tenants, opts.Seed = cfg.Users, cfg.Tenants, uint64(cfg.Seed)
	limits := faketeams.DefaultLimits()
	limits.TenantPerSecond = demoTenantLimit
	// The bot proves itself with a certificate, as enterprises have it:
	// made now, registered with the simulated Entra, used through
	// azidentity over TLS that trusts the simulator's CA only.
	appCert, err := faketeams.NewAppCertificate(faketeams.AppCertificateOptions{Subject: "blockreport demo"})
	if err != nil {
		return fmt.Errorf("make the demo app certificate: %w", err)
	}
	pop := faketeams.Generate(opts)
	gopts := demoGraph
	gopts.Seed = uint64(cfg.Seed)
	if cfg.Tenants >= 2 {
		gopts.NoConsent = 1
	}
	graphSim := faketeams.GenerateGraph(pop, gopts)
	graphSim.Rate = demoTenantLimit
	fake, err := faketeams.Start(faketeams.Config{
		Population: pop, Limits: &limits, Latency: demoLatency, Seed: uint64(cfg.Seed),
		Entra: faketeams.Entra{Certificates: []*x509.Certificate{appCert.Cert}},
		Graph: graphSim,
	})
	if err != nil {
		return fmt.Errorf("start the simulated Teams: %w", err)
	}
	defer fake.Close()

	monthAgo := func() time.Time { return time.Now().Add(-demoMonth) }
	db, err := store.Open(ctx, "sqlite:"+dbPath, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.UpsertReferences(ctx, fake.References(), monthAgo()); err != nil {
		return fmt.Errorf("import the demo references: %w", err)
	}

	pcfg := probeConfig{
		common: commonConfig{DB: "sqlite:" + dbPath, LogFormat: cfg.LogFormat, LogLevel: cfg.LogLevel},
		cred: credentialConfig{
			AppID: faketeams.DefaultAppID, AuthorityHost: fake.AuthorityHost(), kind: auth.Certificate,
			certs: []*x509.Certificate{appCert.Cert}, key: appCert.Key, rootCAs: fake.RootCAs(),
		},
		Cloud:      "public",
		AllowHosts: hostList{"127.0.0.1"}, GCCServiceURL: fake.ServiceURL("gcc"),
		Mode: "typing", Concurrency: 32, Rate: demoRate, Timeout: 15 * time.Second, Attempts: 5,
		Grace: 5 * time.Second, progressEvery: 5 * time.Second,
		// Microsoft Graph and coverage on, against the simulated Graph.
		graph: graphConfig{TeamsAppID: faketeams.DefaultManifestID, URL: fake.GraphURL(), Coverage: true, Rate: demoRate},
	}
	rcfg := reportConfig{common: pcfg.common, Out: cfg.Out}

	// Run 1, dated a month ago.
	pcfg.now = monthAgo
	run1, err := probeRun(ctx, pcfg, db, logger, stderr)
	if err != nil {
		return err
	}
	paths, err := writeReports(ctx, rcfg, db, run1, logger)
	if err != nil {
		return err
	}

	drifted := drift(fake, uint64(cfg.Seed))
	logger.Info("states drifted", "conversations", drifted)

	// Run 2, today.
	pcfg.now = nil
	run2, err := probeRun(ctx, pcfg, db, logger, stderr)
	if err != nil {
		return err
	}
	paths2, err := writeReports(ctx, rcfg, db, run2, logger)
	if err != nil {
		return err
	}
	changes, err := countChanges(ctx, db, run2.ID)
	if err != nil {
		return err
	}
	graphCounts, err := db.GraphCounts(ctx, run2.ID)
	if err != nil {
		return err
	}
	graphTenants, err := db.TenantGraphs(ctx, run2.ID)
	if err != nil {
		return err
	}
	return printDemo(stdout, demoSummary{
		cfg: cfg, fake: fake, cert: appCert.Cert, dbPath: dbPath, runs: []blockreport.Run{run1, run2},
		paths: append(paths, paths2...), changes: changes, graph: graphCounts, tenants: graphTenants,
	})
}

// removeDemoDB removes the demo database of an earlier demo (and its
// SQLite side files and lock file), so a rerun starts clean. Nothing else
// in the directory is touched.
func removeDemoDB(path string) error {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".lock"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the previous demo database %s: %w", path+suffix, err)
		}
	}
	return nil
}

// drift changes some states between the runs, as a month would: about 3 %
// of the active conversations block the bot and 2 % uninstall it, and a
// quarter of those that had blocked it unblock. It returns how many
// conversations changed.
func drift(fake *faketeams.Server, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, 0x6d6f6e7468))
	var active, blocked []string
	for _, c := range fake.Population() {
		switch c.State {
		case faketeams.StateActive:
			active = append(active, c.ConversationID)
		case faketeams.StateBlocked:
			blocked = append(blocked, c.ConversationID)
		}
	}
	rng.Shuffle(len(active), func(i, j int) { active[i], active[j] = active[j], active[i] })
	rng.Shuffle(len(blocked), func(i, j int) { blocked[i], blocked[j] = blocked[j], blocked[i] })
	share := func(n int, f float64) int {
		if n == 0 {
			return 0
		}
		return min(n, max(1, int(math.Round(f*float64(n)))))
	}
	nBlock := share(len(active), 0.03)
	nUninstall := min(share(len(active), 0.02), len(active)-nBlock)
	nUnblock := share(len(blocked), 0.25)
	for _, id := range active[:nBlock] {
		fake.SetState(id, faketeams.StateBlocked)
	}
	for _, id := range active[nBlock : nBlock+nUninstall] {
		fake.SetState(id, faketeams.StateUninstalled)
	}
	for _, id := range blocked[:nUnblock] {
		fake.SetState(id, faketeams.StateActive)
	}
	return nBlock + nUninstall + nUnblock
}

// change is a status transition between two runs and how many
// conversations made it.
type change struct {
	From, To blockreport.Status
	N        int
}

// countChanges counts the status transitions of runID's results against
// their previous results, most frequent first.
func countChanges(ctx context.Context, db *store.DB, runID int64) ([]change, error) {
	counts := map[[2]blockreport.Status]int{}
	err := db.Rows(ctx, runID, func(r blockreport.Row) error {
		if r.PreviousStatus != "" && r.PreviousStatus != r.Status {
			counts[[2]blockreport.Status{r.PreviousStatus, r.Status}]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read results of run %d: %w", runID, err)
	}
	var out []change
	for k, n := range counts {
		out = append(out, change{k[0], k[1], n})
	}
	slices.SortFunc(out, func(a, b change) int {
		return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return out, nil
}

type demoSummary struct {
	cfg     demoConfig
	fake    *faketeams.Server
	cert    *x509.Certificate
	dbPath  string
	runs    []blockreport.Run
	paths   []string
	changes []change
	graph   map[blockreport.GraphOutcome]int
	tenants []blockreport.TenantGraph
}

func printDemo(w io.Writer, s demoSummary) error {
	var b strings.Builder
	st := s.fake.Stats()
	peak := 0
	for _, n := range st.MaxTenantRate {
		peak = max(peak, n)
	}
	fmt.Fprintf(&b, "Demo: %d conversations in %d tenants, served by a simulated Teams at %s\n", s.cfg.Users, s.cfg.Tenants, s.fake.URL())
	fmt.Fprintf(&b, "(limit %d requests/s per tenant, probed at %d/s per tenant; busiest second of a tenant: %d requests)\n",
		demoTenantLimit, demoRate, peak)
	fmt.Fprintf(&b, "Credential: certificate %s (thumbprint %s) through azidentity, %d tokens from the simulated Entra at %s\n\n",
		s.cert.Subject, auth.Thumbprint(s.cert), st.TokensIssued, s.fake.AuthorityHost())
	for i, r := range s.runs {
		when := "today"
		if i == 0 {
			when = "a simulated month ago"
		}
		fmt.Fprintf(&b, "Run %d, %s (%s): %s\n", r.ID, r.StartedAt.UTC().Format("2006-01-02"), when, summary(r.Totals))
	}
	if last := s.runs[len(s.runs)-1].Total(); last > s.cfg.Users {
		fmt.Fprintf(&b, "(%d conversations, not %d: coverage found %d users who installed the bot without a stored reference, and probed them too)\n",
			last, s.cfg.Users, last-s.cfg.Users)
	}
	total := 0
	var parts []string
	for _, c := range s.changes {
		total += c.N
		parts = append(parts, fmt.Sprintf("%s → %s %d", c.From, c.To, c.N))
	}
	fmt.Fprintf(&b, "Changes in run %d: %d", s.runs[len(s.runs)-1].ID, total)
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	g := s.graph
	fmt.Fprintf(&b, "\nMicrosoft Graph (simulated at %s) in run %d: %d verdicts confirmed, %d changed (blocked → uninstalled), %d stale conversations re-linked, %d disagreements noted, %d without an answer",
		s.fake.GraphURL(), s.runs[len(s.runs)-1].ID, g[blockreport.GraphConfirmed], g[blockreport.GraphChanged], g[blockreport.GraphRelinked], g[blockreport.GraphNoted], g[blockreport.GraphUnknown])
	for _, t := range s.tenants {
		switch {
		case !t.Available:
			fmt.Fprintf(&b, "\n  tenant %s: Graph unavailable (%s)", t.TenantID, t.Reason)
		case t.EnabledUsers >= 0:
			fmt.Fprintf(&b, "\n  tenant %s (%s): %d enabled users in the directory", t.Name, t.TenantID, t.EnabledUsers)
		}
	}
	b.WriteString("\n\nReports (open the .html in a browser, the .xlsx in Excel):\n")
	for _, p := range s.paths {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	fmt.Fprintf(&b, "\nDatabase: %s (list its runs: blockreport runs --db sqlite:%s)\n", s.dbPath, s.dbPath)
	_, err := io.WriteString(w, b.String())
	return err
}
