package report

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/internal/memtest"
)

// genSource generates n rows on the fly: a 1,000,000-conversation run
// without holding it in memory, like a store streaming its rows.
type genSource struct {
	n       int
	tenants int
	// changeEvery: every changeEvery-th row changed status since the
	// previous run (1: every row, the worst case for sheet "Changed").
	changeEvery int
}

var genRuns = func() []blockreport.Run {
	var runs []blockreport.Run
	for i := 1; i <= 12; i++ {
		runs = append(runs, blockreport.Run{ID: int64(i), StartedAt: t0.AddDate(0, 0, 7*i), FinishedAt: t0.AddDate(0, 0, 7*i).Add(time.Hour),
			Mode: "typing", State: blockreport.RunFinished,
			Totals: map[blockreport.Status]int{"reachable": 900000 - 1000*i, "blocked": 40000 + 1000*i, "uninstalled": 30000, "not_found": 20000, "failed": 10000}})
	}
	return runs
}()

func (g genSource) Run(ctx context.Context, id int64) (blockreport.Run, error) {
	return (&memSource{runs: genRuns}).Run(ctx, id)
}

func (g genSource) Runs(ctx context.Context, upTo int64, limit int) ([]blockreport.Run, error) {
	return (&memSource{runs: genRuns}).Runs(ctx, upTo, limit)
}

func (g genSource) CountPending(context.Context, int64) (int, error) { return 0, nil }

// genStatuses is the status mix, per 100 rows.
var genStatuses = func() []blockreport.Status {
	mix := []struct {
		s blockreport.Status
		n int
	}{{"reachable", 80}, {"blocked", 6}, {"uninstalled", 5}, {"admin_disabled", 1}, {"not_found", 3}, {"forbidden", 1}, {"throttled", 1}, {"failed", 1}, {"invalid", 1}, {"opted_out", 1}}
	var out []blockreport.Status
	for _, m := range mix {
		for range m.n {
			out = append(out, m.s)
		}
	}
	return out
}()

func (g genSource) Rows(ctx context.Context, runID int64, fn func(blockreport.Row) error) error {
	types := []blockreport.ConversationType{"personal", "personal", "personal", "channel", "groupChat"}
	for i := 0; i < g.n; i++ {
		id := strconv.Itoa(i)
		st := genStatuses[(i*7)%len(genStatuses)]
		prev := st
		if g.changeEvery > 0 && i%g.changeEvery == 0 {
			prev = genStatuses[(i*7+3)%len(genStatuses)]
		}
		r := blockreport.Row{
			Reference: blockreport.Reference{
				ID: int64(i), TenantID: "tenant-" + strconv.Itoa(i%g.tenants) + "-0000-4000-8000-000000000000",
				UserID: "29:1" + id + "abcdefghijklmnopqrstuvwxyz", AADObjectID: "aad-" + id + "-0000-4000-8000-000000000000",
				UserName: "User Number " + id, Email: "user" + id + "@contoso.example.com",
				ConversationID: "a:1" + id + "ZmFrZSBjb252ZXJzYXRpb24gaWQgZm9yIGJlbmNo", ConversationType: types[i%len(types)],
				ServiceURL: "https://smba.trafficmanager.net/amer/",
			},
			Result: blockreport.Result{RunID: runID, ReferenceID: int64(i), Status: st, HTTPStatus: 403, Reason: "ConversationBlockedByUser",
				ProbedAt: t2.Add(time.Duration(i) * time.Millisecond), Attempts: 1},
			PreviousStatus: prev,
			StatusSince:    t1,
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// reportPeak records the peak memory a sampler saw as benchmark metrics.
func reportPeak(b *testing.B, s *memtest.Sampler) {
	rss, goMem := s.Stop()
	b.ReportMetric(goMem, "peak-go-MB")
	if rss > 0 {
		b.ReportMetric(rss, "peak-rss-MB")
	}
}

// BenchmarkReport1M builds and writes both reports of a 1,000,000-row run
// under the soft memory limit the report command sets.
// Run: go test ./report -run '^$' -bench Report1M -benchtime 1x
func BenchmarkReport1M(b *testing.B) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(SuggestedMemoryLimit))
	src := genSource{n: 1_000_000, tenants: 40, changeEvery: 20}
	ctx := context.Background()
	dir := b.TempDir()
	b.Run("html", func(b *testing.B) {
		for range b.N {
			p := memtest.Start(5 * time.Millisecond)
			r, err := Build(ctx, src, 12, Options{})
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(dir + "/r.html")
			if err != nil {
				b.Fatal(err)
			}
			if err := WriteHTML(f, r); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			f.Close()
			reportPeak(b, p)
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MB")
		}
	})
	for _, wb := range []struct {
		name string
		src  genSource
	}{{"workbook", src}, {"workbook-all-changed", genSource{n: 1_000_000, tenants: 40, changeEvery: 1}}} {
		benchWorkbook(b, wb.name, wb.src, dir)
	}
}

func benchWorkbook(b *testing.B, name string, src genSource, dir string) {
	ctx := context.Background()
	b.Run(name, func(b *testing.B) {
		for range b.N {
			p := memtest.Start(5 * time.Millisecond)
			r, err := Build(ctx, src, 12, Options{})
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(dir + "/r.xlsx")
			if err != nil {
				b.Fatal(err)
			}
			if err := WriteExcel(ctx, f, r, src, Options{}); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			f.Close()
			reportPeak(b, p)
			b.ReportMetric(float64(st.Size())/(1<<20), "file-MB")
		}
	})
}
