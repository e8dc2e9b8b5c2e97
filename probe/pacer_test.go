package probe

import (
	"context"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// maxInWindow is the most times within any window of length d.
func maxInWindow(ts []time.Time, d time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= d {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func TestPacerSendTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("paces 70 requests at 40/s")
	}
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	var refs []blockreport.Reference
	for i := range 70 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	cfg := testConfig(t, tok.URL, nil)
	cfg.Rate, cfg.Concurrency = 40, 8
	p := mustNew(t, cfg)
	if err := p.Run(context.Background(), newMemStore(refs), 1); err != nil {
		t.Fatal(err)
	}
	var ts []time.Time
	for _, r := range conn.requests() {
		ts = append(ts, r.At)
	}
	// The client sends at most 40 in any second; arrival adds scheduling
	// jitter, so the assertion is Teams' limit of 50.
	n := maxInWindow(ts, time.Second)
	t.Logf("at most %d requests arrived in one second", n)
	if n > 50 {
		t.Errorf("%d requests arrived within one second at --rate 40", n)
	}
}

func TestPacerThrottleAndRecover(t *testing.T) {
	pc := newPacer(40)
	pc.throttled(time.Millisecond)
	if got := pc.current(); got != 20 {
		t.Errorf("after one 429: %g/s, want 20", got)
	}
	pc.throttled(0)
	if got := pc.current(); got != 10 {
		t.Errorf("after two 429s: %g/s, want 10", got)
	}
	for range 100 {
		pc.ok()
	}
	if got := pc.current(); got != 40 {
		t.Errorf("after recovery: %g/s, want 40", got)
	}
	start := time.Now()
	pc.throttled(50 * time.Millisecond)
	if err := pc.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if since := time.Since(start); since < 50*time.Millisecond {
		t.Errorf("wait returned %v after a 50ms pause", since)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pc.throttled(time.Hour)
	if err := pc.wait(ctx); err == nil {
		t.Error("wait ignored cancellation")
	}
}
