package graph_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/graph"
	"github.com/blockreport/blockreport/internal/memtest"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkGraphOnOff: one run over BENCH_GRAPH_REFS references (default
// 100,000) in BENCH_GRAPH_TENANTS tenants against faketeams at the
// documented limits (connector 50/s per tenant, Graph's installedApps
// 30/s per tenant, 20 ms median latency), probed at 45/s per tenant,
// three ways: connector only, with Graph checking every personal
// reference, and with Graph skipping the reachable ones. It reports each
// wall time, the ratios to the connector-only run and the peak memory.
//
//	BENCH_GRAPH_REFS=10000 go test -run '^$' -bench GraphOnOff -benchtime 1x ./graph
func BenchmarkGraphOnOff(b *testing.B) {
	refs, tenants := envInt("BENCH_GRAPH_REFS", 100_000), envInt("BENCH_GRAPH_TENANTS", 100)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: refs, Tenants: tenants, Seed: 5,
		Blocked: 0.06, Uninstalled: 0.04, AdminDisabled: 0.01, Deleted: 0.01})
	g := faketeams.GenerateGraph(pop, faketeams.GraphOptions{Seed: 5, WritesBlockedUninstalled: 0.3, Stale: 0.2, Left: 0.01})
	for range b.N {
		var base time.Duration
		for _, mode := range []string{"off", "all", "skip-reachable"} {
			el, rss, goMiB := graphRun(b, pop, g, mode)
			b.Logf("graph %-14s %d refs, %d tenants: %v, peak RSS %.0f MiB, Go %.0f MiB", mode, refs, tenants, el.Round(time.Millisecond), rss, goMiB)
			switch mode {
			case "off":
				base = el
				b.ReportMetric(el.Seconds(), "s-off")
			case "all":
				b.ReportMetric(el.Seconds()/base.Seconds(), "ratio-all")
				b.ReportMetric(rss, "MiB-all")
			default:
				b.ReportMetric(el.Seconds()/base.Seconds(), "ratio-skip")
				b.ReportMetric(rss, "MiB-skip")
			}
		}
	}
}

func graphRun(b *testing.B, pop []faketeams.Conversation, g faketeams.Graph, mode string) (time.Duration, float64, float64) {
	b.Helper()
	g.Rate = faketeams.DefaultGraphRate
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Graph: g, Latency: 20 * time.Millisecond, Seed: 5})
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "b.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.UpsertReferences(ctx, fake.References(), time.Now()); err != nil {
		b.Fatal(err)
	}
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		b.Fatal(err)
	}
	p, err := probe.New(probe.Config{AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"}, Rate: 45})
	if err != nil {
		b.Fatal(err)
	}
	var opts runs.Options
	if mode != "off" {
		c, err := graph.New(graph.Config{URL: fake.GraphURL(), Credential: cred, AppID: faketeams.DefaultCatalogAppID})
		if err != nil {
			b.Fatal(err)
		}
		k := graph.NewChecker(graph.CheckerConfig{Client: c, Store: db, SkipReachable: mode == "skip-reachable", Parallel: 64})
		opts.Alongside = k.Run
	}
	mem := memtest.Start(50 * time.Millisecond)
	start := time.Now()
	sess, err := runs.Begin(ctx, db, runs.Choice{Mode: probe.ModeTyping}, opts)
	if err != nil {
		b.Fatal(err)
	}
	run, err := sess.Probe(ctx, p)
	sess.Close()
	el := time.Since(start)
	rss, goMiB := mem.Stop()
	if err != nil || run.State != blockreport.RunFinished {
		b.Fatalf("run %s: %v", run.State, err)
	}
	return el, rss, goMiB
}

// BenchmarkCoverage: coverage of a directory of BENCH_COVERAGE_USERS
// users (default 100,000) without references in BENCH_COVERAGE_TENANTS
// tenants, at Graph's 30 installedApps lookups per second per tenant,
// against its floor: users / tenants / 30 seconds.
//
//	BENCH_COVERAGE_USERS=3000 BENCH_COVERAGE_TENANTS=3 go test -run '^$' -bench Coverage -benchtime 1x ./graph
func BenchmarkCoverage(b *testing.B) {
	users, tenants := envInt("BENCH_COVERAGE_USERS", 100_000), envInt("BENCH_COVERAGE_TENANTS", 10)
	// One stored reference per tenant, so that every tenant is known.
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: tenants, Tenants: tenants, Seed: 9})
	g := faketeams.GenerateGraph(pop, faketeams.GraphOptions{Seed: 9, NeverInstalled: float64(users) / float64(tenants) * 0.9, InstalledNoReference: float64(users) / float64(tenants) * 0.1})
	for range b.N {
		g.Rate = faketeams.DefaultGraphRate
		fake, err := faketeams.Start(faketeams.Config{Population: pop, Graph: g, Latency: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		db, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "c.db"), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.UpsertReferences(ctx, fake.References(), time.Now()); err != nil {
			b.Fatal(err)
		}
		run, err := db.CreateRun(ctx, "typing", nil, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
		if err != nil {
			b.Fatal(err)
		}
		c, err := graph.New(graph.Config{URL: fake.GraphURL(), Credential: cred, AppID: faketeams.DefaultCatalogAppID})
		if err != nil {
			b.Fatal(err)
		}
		k := graph.NewChecker(graph.CheckerConfig{Client: c, Store: db, Coverage: true, Parallel: 64})
		done := make(chan struct{})
		close(done)
		mem := memtest.Start(50 * time.Millisecond)
		start := time.Now()
		if err := k.Run(ctx, run.ID, done); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		rss, _ := mem.Stop()
		floor := time.Duration(float64(users) / float64(tenants) / faketeams.DefaultGraphRate * float64(time.Second))
		n := 0
		_ = db.Coverage(ctx, run.ID, func(blockreport.CoverageUser, blockreport.DirectoryUser) error { n++; return nil })
		b.Logf("coverage of %d users in %d tenants: %v (floor %v, %.2fx), %d listed, peak RSS %.0f MiB", users, tenants, el.Round(time.Millisecond), floor, el.Seconds()/floor.Seconds(), n, rss)
		b.ReportMetric(el.Seconds()/floor.Seconds(), "x-floor")
		b.ReportMetric(rss, "MiB")
		db.Close()
		fake.Close()
	}
}
