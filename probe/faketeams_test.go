package probe

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
)

func fakeConfig(fake *faketeams.Server, rate float64, concurrency int) Config {
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		panic(err) // a constant configuration
	}
	return Config{
		AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"},
		GCCServiceURL: fake.ServiceURL("gcc"), Rate: rate, Concurrency: concurrency,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}
}

// TestPacingAgainstFaketeams: with Teams' limits and the default pace
// (rate 0: DefaultRate), no tenant has more than a few requests over 50
// arrive in a sliding second at faketeams (scheduling jitter), and at most
// 5 % is throttled. (How close to 50 it gets, and the ≤ 1 % 429 target, are
// measured by BenchmarkThroughput.)
func TestPacingAgainstFaketeams(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 4 s of paced requests")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 4 * 150, Tenants: 4, Seed: 2})
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Latency: 20 * time.Millisecond, ArrivalJitter: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	p := mustNew(t, fakeConfig(fake, 0, 0))
	st := newMemStore(fake.References())
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(pop) {
		t.Errorf("%d results, want %d", st.count(), len(pop))
	}
	stats := fake.Stats()
	if len(stats.TenantWindows) != 4 {
		t.Errorf("tenant windows %v, want 4 tenants", stats.TenantWindows)
	}
	for tenant, w := range stats.TenantWindows {
		t.Logf("tenant %s: busiest second %+v", tenant, w)
		if w.Arrived > faketeams.TenantLimit+5 {
			t.Errorf("tenant %s: busiest second %+v, want at most %d arrived", tenant, w, faketeams.TenantLimit+5)
		}
	}
	// The pacer sends at most 48 in any second; what faketeams counts also
	// carries the scheduling and network jitter between the two (under
	// -race on a loaded machine, tens of milliseconds), which the
	// 2-request margin absorbs but for the odd request. Unpaced, most
	// requests would be 429s; the ≤ 1 % target is BenchmarkThroughput's.
	if total := stats.Total(faketeams.RouteSendActivity); stats.Throttled*20 > total {
		t.Errorf("%d of %d requests throttled, want at most 5 %%", stats.Throttled, total)
	}
}

// genStore generates n references on the fly over a small population
// (memory stays flat) and only counts what is saved.
type genStore struct {
	refs  []blockreport.Reference // population, cycled
	n     int
	saved atomic.Int64
}

func (g *genStore) PendingTenants(context.Context, int64) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, r := range g.refs {
		if !seen[r.TenantID] {
			seen[r.TenantID] = true
			out = append(out, r.TenantID)
		}
	}
	return out, nil
}

func (g *genStore) Pending(ctx context.Context, _ int64, tenant string, fn func(blockreport.Reference) error) error {
	for i := range g.n {
		r := g.refs[i%len(g.refs)]
		if r.TenantID != tenant {
			continue
		}
		r.ID = int64(i + 1)
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (g *genStore) SaveResults(_ context.Context, rs []blockreport.Result) error {
	g.saved.Add(int64(len(rs)))
	return nil
}

// evenPopulation is perTenant active personal conversations in each of
// tenants tenants.
func evenPopulation(tenants, perTenant int) []faketeams.Conversation {
	var pop []faketeams.Conversation
	for i := range tenants {
		pop = append(pop, faketeams.Generate(faketeams.GenerateOptions{Users: perTenant, Tenants: 1, Seed: uint64(100 + i)})...)
	}
	return pop
}

// BenchmarkThroughput probes with default flags (the default --rate and
// --concurrency) against faketeams with Teams' documented limits (50/s per
// tenant, per-conversation windows) and a log-normal latency (median 100
// or 300 ms, sigma 0.8), 1 and 20 tenants, 30 s of references each. It
// reports, as faketeams counted them at arrival:
//
//   - %limit: each tenant's requests per second between its first and
//     last arrival, over 50/s (the lowest tenant's);
//   - %limit-wall: every request over the wall time of the whole run
//     (ramp-up and the latency tail of the last answers included) and
//     tenants × 50/s;
//   - %429: the share of requests answered 429;
//   - busiest-1s: the most requests that arrived in any sliding second of
//     one tenant (the highest tenant's).
func BenchmarkThroughput(b *testing.B) {
	const seconds = 30
	for _, tenants := range []int{1, 20} {
		for _, latency := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond} {
			b.Run(fmt.Sprintf("tenants=%d/latency=%v", tenants, latency), func(b *testing.B) {
				perTenant := DefaultRate * seconds
				pop := evenPopulation(tenants, perTenant)
				for b.Loop() {
					fake, err := faketeams.Start(faketeams.Config{Population: pop, Latency: latency, Seed: 5})
					if err != nil {
						b.Fatal(err)
					}
					p, err := New(fakeConfig(fake, 0, 0)) // default rate and concurrency
					if err != nil {
						b.Fatal(err)
					}
					if err := p.CheckToken(); err != nil {
						b.Fatal(err)
					}
					st := &genStore{refs: fake.References(), n: len(pop)}
					start := time.Now()
					if err := p.Run(context.Background(), st, 1); err != nil {
						b.Fatal(err)
					}
					el := time.Since(start).Seconds()
					stats := fake.Stats()
					fake.Close()
					total := stats.Total(faketeams.RouteSendActivity)
					low, busiest := math.Inf(1), 0
					for _, w := range stats.TenantWindows {
						low = min(low, w.Rate())
						busiest = max(busiest, w.Arrived)
					}
					b.ReportMetric(100*low/faketeams.TenantLimit, "%limit")
					b.ReportMetric(100*float64(total)/el/float64(tenants*faketeams.TenantLimit), "%limit-wall")
					b.ReportMetric(100*float64(stats.Throttled)/float64(total), "%429")
					b.ReportMetric(float64(busiest), "busiest-1s")
					b.ReportMetric(float64(total)/el, "req/s")
				}
			})
		}
	}
}

// BenchmarkMemory probes 100k and 1M generated references against a
// zero-latency faketeams without limits and reports the peak heap in use,
// sampled every 20 ms: it must not grow with the number of references.
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("refs=%d", n), func(b *testing.B) {
			pop := faketeams.Generate(faketeams.GenerateOptions{Users: 2000, Tenants: 20, Blocked: 0.06, Uninstalled: 0.04, Seed: 6})
			fake, err := faketeams.Start(faketeams.Config{Population: pop, Limits: faketeams.NoLimits(), Seed: 6})
			if err != nil {
				b.Fatal(err)
			}
			defer fake.Close()
			p, err := New(fakeConfig(fake, 1e6, 64))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				runtime.GC()
				var peak atomic.Uint64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					var ms runtime.MemStats
					t := time.NewTicker(20 * time.Millisecond)
					defer t.Stop()
					for {
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
						select {
						case <-stop:
							return
						case <-t.C:
						}
					}
				})
				st := &genStore{refs: fake.References(), n: n}
				start := time.Now()
				if err := p.Run(context.Background(), st, 1); err != nil {
					b.Fatal(err)
				}
				close(stop)
				wg.Wait()
				if got := st.saved.Load(); got != int64(n) {
					b.Fatalf("saved %d, want %d", got, n)
				}
				b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "refs/s")
			}
		})
	}
}
