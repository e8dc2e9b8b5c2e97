//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockreport/blockreport/azstorage"
	"github.com/blockreport/blockreport/internal/azuritetest"
)

// benchAzureN is how many references the Azure import benchmarks store in
// Azurite: BLOCKREPORT_BENCH_AZURE_N, default 2,000 (BENCHMARKS.md has the
// numbers at larger sizes).
func benchAzureN(b *testing.B) int {
	n := 2000
	if s := os.Getenv("BLOCKREPORT_BENCH_AZURE_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("BLOCKREPORT_BENCH_AZURE_N=%q", s)
		}
		n = v
	}
	return n
}

// peakHeap samples the Go heap in use while f runs and returns f's wall
// time and the peak above the heap at the start.
func peakHeap(f func()) (time.Duration, float64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	f()
	d := time.Since(start)
	close(stop)
	wg.Wait()
	p := float64(0)
	if peak.Load() > base {
		p = float64(peak.Load()-base) / (1 << 20)
	}
	return d, p
}

func parallelN(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	var failed atomic.Value
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkImportAzureBlobs: `blockreport import azblob://bench` of N
// Agents SDK records (.NET-style names) into a fresh SQLite store, against
// the plain azblob loop in the same run: list the container, download each
// blob, read its body, nothing else. Metrics: seconds and peak Go heap of
// each, and the ratio (target ≤ 1.5).
func BenchmarkImportAzureBlobs(b *testing.B) {
	n := benchAzureN(b)
	e := azuritetest.Start(b)
	ctx := context.Background()
	acct, err := azstorage.ParseConnectionString(e.ConnectionString())
	if err != nil {
		b.Fatal(err)
	}
	blobs, _ := azstorage.NewBlobs(acct, nil)
	if err := blobs.CreateContainer(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	seed := time.Now()
	parallelN(b, n, func(i int) error {
		name := strings.ToLower(url.QueryEscape(fmt.Sprintf("proactive/conversations/a:c%d", i)))
		return blobs.Upload(ctx, "bench", name, []byte(agentsRecord(i, i%2 == 1)))
	})
	b.Logf("seeded %d blobs in %v", n, time.Since(seed).Round(time.Millisecond))
	env := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": e.ConnectionString()}
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The plain loop: what any program reading the container must do.
		base, baseHeap := peakHeap(func() {
			c := blobs.Client()
			pager := c.NewListBlobsFlatPager("bench", nil)
			got := 0
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for _, item := range page.Segment.BlobItems {
					resp, err := c.DownloadStream(ctx, "bench", *item.Name, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadAll(resp.Body); err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					got++
				}
			}
			if got != n {
				b.Fatalf("baseline read %d blobs, want %d", got, n)
			}
		})
		db := "sqlite:" + filepath.Join(dir, fmt.Sprintf("blobs-%d.db", i))
		imp, impHeap := peakHeap(func() {
			out, errOut, code := runEnv(b, env, "import", "--db", db, "azblob://bench")
			if code != 0 || !strings.Contains(out, fmt.Sprintf("added %d,", n)) {
				b.Fatalf("import: exit %d %s %s", code, out, errOut)
			}
		})
		b.ReportMetric(base.Seconds(), "baseline-s")
		b.ReportMetric(imp.Seconds(), "import-s")
		b.ReportMetric(imp.Seconds()/base.Seconds(), "ratio")
		b.ReportMetric(baseHeap, "baseline-peak-heap-MB")
		b.ReportMetric(impHeap, "import-peak-heap-MB")
	}
}

// BenchmarkImportAzureTable: `blockreport import aztable://UserData` of N
// Company Communicator rows into a fresh SQLite store, against a plain
// paged query of the same table in the same run.
func BenchmarkImportAzureTable(b *testing.B) {
	n := benchAzureN(b)
	e := azuritetest.Start(b)
	ctx := context.Background()
	acct, err := azstorage.ParseConnectionString(e.ConnectionString())
	if err != nil {
		b.Fatal(err)
	}
	tables := azstorage.NewTables(acct, nil)
	if err := tables.CreateTable(ctx, "UserData"); err != nil {
		b.Fatal(err)
	}
	seed := time.Now()
	parallelN(b, n, func(i int) error {
		return tables.Insert(ctx, "UserData", map[string]any{"PartitionKey": "UserData", "RowKey": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i),
			"AadId": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i), "UserId": fmt.Sprintf("29:1GcS4xV7qQyKp-u%d", i),
			"ConversationId": fmt.Sprintf("a:1xBqZ3wT9mJ-c%d", i), "ServiceUrl": "https://smba.trafficmanager.net/amer/",
			"TenantId": storeTenant, "UserType": "Member", "Name": "", "Email": "", "Upn": ""})
	})
	b.Logf("seeded %d rows in %v", n, time.Since(seed).Round(time.Millisecond))
	env := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": e.ConnectionString()}
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		base, baseHeap := peakHeap(func() {
			got := 0
			for _, err := range tables.Query(ctx, "UserData", "PartitionKey eq 'UserData'") {
				if err != nil {
					b.Fatal(err)
				}
				got++
			}
			if got != n {
				b.Fatalf("baseline read %d rows, want %d", got, n)
			}
		})
		db := "sqlite:" + filepath.Join(dir, fmt.Sprintf("table-%d.db", i))
		imp, impHeap := peakHeap(func() {
			out, errOut, code := runEnv(b, env, "import", "--db", db, "--service-url", "https://smba.trafficmanager.net/amer/", "aztable://UserData")
			if code != 0 || !strings.Contains(out, fmt.Sprintf("added %d,", n)) {
				b.Fatalf("import: exit %d %s %s", code, out, errOut)
			}
		})
		b.ReportMetric(base.Seconds(), "baseline-s")
		b.ReportMetric(imp.Seconds(), "import-s")
		b.ReportMetric(imp.Seconds()/base.Seconds(), "ratio")
		b.ReportMetric(baseHeap, "baseline-peak-heap-MB")
		b.ReportMetric(impHeap, "import-peak-heap-MB")
	}
}
