package probe

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// flakyStore is a memStore whose SaveResults fails its first failSaves
// calls, and whose first Pending listing of each tenant fails after
// handing out failAfter references (0: never).
type flakyStore struct {
	*memStore
	mu         sync.Mutex
	failSaves  int
	failAfter  int
	failed     map[string]bool
	saveCalls  int
	pendCalls  int
	alwaysFail bool
}

func (f *flakyStore) SaveResults(ctx context.Context, rs []blockreport.Result) error {
	f.mu.Lock()
	f.saveCalls++
	fail := f.alwaysFail || f.saveCalls <= f.failSaves
	f.mu.Unlock()
	if fail {
		return errBoom
	}
	return f.memStore.SaveResults(ctx, rs)
}

func (f *flakyStore) Pending(ctx context.Context, runID int64, tenant string, fn func(blockreport.Reference) error) error {
	f.mu.Lock()
	f.pendCalls++
	fail := f.failAfter > 0 && !f.failed[tenant]
	f.failed[tenant] = true
	f.mu.Unlock()
	n := 0
	return f.memStore.Pending(ctx, runID, tenant, func(r blockreport.Reference) error {
		if fail && n == f.failAfter {
			return errBoom // the page query failed half way
		}
		n++
		return fn(r)
	})
}

func storeFaultRefs(url string, n int) []blockreport.Reference {
	refs := make([]blockreport.Reference, n)
	for i := range refs {
		refs[i] = personal(int64(i+1), []string{"t1", "t2"}[i%2], url+"/amer/")
	}
	return refs
}

// TestStoreOutageIsWaitedOut: a store that fails for a while (a database
// restart) pauses the run; when it is back every reference has exactly one
// result and none was probed twice.
func TestStoreOutageIsWaitedOut(t *testing.T) {
	tests := []struct {
		name      string
		failSaves int
		failAfter int
	}{
		{"SaveResults fails 5 times", 5, 0},
		{"Pending fails half way through each tenant", 0, 30},
		{"both", 3, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _ := tokenServer(t)
			conn := newConnector(t, ok200)
			refs := storeFaultRefs(conn.URL, 120)
			st := &flakyStore{memStore: newMemStore(refs), failSaves: tt.failSaves, failAfter: tt.failAfter, failed: map[string]bool{}}
			cfg := testConfig(t, tok.URL, nil)
			cfg.StoreWait = 30 * time.Second // far more than the outage
			cfg.BatchSize = 20
			p := mustNew(t, cfg)
			if err := p.Run(context.Background(), st, 1); err != nil {
				t.Fatalf("run: %v", err)
			}
			if st.count() != len(refs) || st.dupes != 0 {
				t.Errorf("%d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
			}
			if n := len(conn.requests()); n != len(refs) {
				t.Errorf("%d requests, want %d: a reference was probed twice or not at all", n, len(refs))
			}
			if tt.failSaves > 0 && st.saveCalls <= tt.failSaves {
				t.Errorf("SaveResults called %d times: the failures were not retried", st.saveCalls)
			}
			if tt.failAfter > 0 && st.pendCalls < 4 {
				t.Errorf("Pending called %d times for 2 tenants: the failed listings were not retried", st.pendCalls)
			}
			if got := p.Progress().Done; got != len(refs) {
				t.Errorf("progress %d, want %d", got, len(refs))
			}
		})
	}
}

// TestStoreOutageStopsRunAsInterrupted: a store still failing after
// StoreWait stops the run with an error that names the run, keeps the
// store's error and wraps ErrInterrupted (so the command marks the run
// interrupted and the next run resumes it).
func TestStoreOutageStopsRunAsInterrupted(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	refs := storeFaultRefs(conn.URL, 40)
	st := &flakyStore{memStore: newMemStore(refs), alwaysFail: true, failed: map[string]bool{}}
	cfg := testConfig(t, tok.URL, nil)
	cfg.StoreWait = 300 * time.Millisecond
	p := mustNew(t, cfg)
	err := p.Run(context.Background(), st, 7)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want ErrInterrupted wrapping the store error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "run 7") || !strings.Contains(msg, "kept failing") {
		t.Errorf("error %q does not say what failed for how long", msg)
	}
	if st.saveCalls < 2 {
		t.Errorf("SaveResults called %d times, want retries", st.saveCalls)
	}
	// The store is back: the same run resumes and completes.
	st.mu.Lock()
	st.alwaysFail = false
	st.mu.Unlock()
	if err := p.Run(context.Background(), st, 7); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) || st.dupes != 0 {
		t.Errorf("after resume: %d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
	}
}

// TestStoreWaitNegativeFailsAtOnce keeps the old behaviour on request.
func TestStoreWaitNegativeFailsAtOnce(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	st := &flakyStore{memStore: newMemStore(storeFaultRefs(conn.URL, 5)), alwaysFail: true, failed: map[string]bool{}}
	cfg := testConfig(t, tok.URL, nil)
	cfg.StoreWait = -1
	err := mustNew(t, cfg).Run(context.Background(), st, 1)
	if !errors.Is(err, errBoom) || errors.Is(err, ErrInterrupted) || st.saveCalls != 1 {
		t.Errorf("err = %v after %d calls, want the store error at once, not interrupted", err, st.saveCalls)
	}
}

// TestStoreOutageDuringShutdownEndsWithGrace: cancelled while the store is
// down, the writer retries only while the grace lasts.
func TestStoreOutageDuringShutdownEndsWithGrace(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	st := &flakyStore{memStore: newMemStore(storeFaultRefs(conn.URL, 40)), alwaysFail: true, failed: map[string]bool{}}
	cfg := testConfig(t, tok.URL, nil)
	cfg.StoreWait = time.Hour
	cfg.Grace = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			st.mu.Lock()
			n := st.saveCalls
			st.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- mustNew(t, cfg).Run(ctx, st, 1) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Errorf("err = %v, want ErrInterrupted", err)
		}
	case <-time.After(30 * time.Second): // a liveness bound, far above the grace
		t.Fatal("run still waiting for the store long after the grace period")
	}
}
