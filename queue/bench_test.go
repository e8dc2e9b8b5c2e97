package queue

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
)

// benchRun queues one run over tenants × perTenant references against a
// faketeams with the given median latency, works it with n workers and
// returns the wall time from queueing to finished.
func benchRun(b *testing.B, n, tenants, perTenant int, latency time.Duration, cfg Config) time.Duration {
	b.Helper()
	b.StopTimer()
	url := pgtest.URL(b)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: tenants * perTenant, Tenants: tenants, Seed: 40})
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Latency: latency, Seed: 40})
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	db := openDB(b, url)
	ctx := context.Background()
	if _, err := db.UpsertReferences(ctx, fake.References(), time.Now()); err != nil {
		b.Fatal(err)
	}
	q, err := Open(ctx, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Prober = proberFactory(b, fake, 40)
	cfg.Logger = logger(b)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	var ws []*Worker
	for range n {
		w, err := NewWorker(ctx, openDB(b, url), cfg)
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		go func() { _ = w.Run(wctx); done <- struct{}{} }()
	}
	b.StartTimer()
	start := time.Now()
	sess, err := q.Begin(ctx, runs.Choice{Mode: probe.ModeTyping}, nil, runs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	run, err := q.Wait(ctx, sess.Run().ID, nil, 100*time.Millisecond, nil)
	elapsed := time.Since(start)
	b.StopTimer()
	sess.Close()
	stop()
	for range ws {
		<-done
	}
	if err != nil || run.State != blockreport.RunFinished || run.Total() != len(pop) {
		b.Fatalf("run %s with %d of %d results: %v", run.State, run.Total(), len(pop), err)
	}
	for tenant, m := range fake.Stats().MaxTenantRate {
		if m > 50 {
			b.Errorf("tenant %s: %d requests in one second", tenant, m)
		}
	}
	return elapsed
}

// BenchmarkWorkersLatencyBound is issue 14's scaling run: 40 tenants × 80
// references, 200 ms median connector latency, each worker bounded by its
// --concurrency 8 (8 chunks of 1 request in flight), with 1, 2 and 4
// workers. refs/s should grow with the workers (speed-up = refs/s ÷ the
// 1-worker refs/s).
//
//	go test -run '^$' -bench BenchmarkWorkersLatencyBound -benchtime 1x ./queue
func BenchmarkWorkersLatencyBound(b *testing.B) {
	const tenants, perTenant = 40, 80
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += benchRun(b, n, tenants, perTenant, 200*time.Millisecond,
					Config{Concurrency: 8, Jobs: 8, ChunkSize: 20})
			}
			per := total / time.Duration(b.N)
			b.ReportMetric(float64(tenants*perTenant)/per.Seconds(), "refs/s")
			b.ReportMetric(per.Seconds(), "wall-s")
		})
	}
}

// BenchmarkWorkersManyTenants is the wide run: 200 tenants ×
// BLOCKREPORT_BENCH_PER_TENANT references (default 100; the run is
// 1000), no added latency, 4 workers of --concurrency 256 holding 64
// chunks each, against its floor: the largest tenant's references / 50
// per second (Teams' per-tenant limit; blockreport paces at 40/s).
//
//	BLOCKREPORT_BENCH_PER_TENANT=1000 go test -run '^$' -bench BenchmarkWorkersManyTenants -benchtime 1x -timeout 60m ./queue
func BenchmarkWorkersManyTenants(b *testing.B) {
	const tenants = 200
	perTenant := 100
	if v, err := strconv.Atoi(os.Getenv("BLOCKREPORT_BENCH_PER_TENANT")); err == nil && v > 0 {
		perTenant = v
	}
	floor := time.Duration(float64(perTenant) / 50 * float64(time.Second))
	var total time.Duration
	for range b.N {
		total += benchRun(b, 4, tenants, perTenant, 0, Config{Concurrency: 256, Jobs: 64})
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(tenants*perTenant)/per.Seconds(), "refs/s")
	b.ReportMetric(per.Seconds(), "wall-s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(per.Seconds()/floor.Seconds(), "x-floor")
}
