package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const maxPause = 2 * time.Minute
	for _, tt := range []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"absent", "", 0, false},
		{"seconds", "3", 3 * time.Second, true},
		{"fraction", "0.5", 500 * time.Millisecond, true},
		{"zero", "0", 0, true},
		{"spaces", "  7 ", 7 * time.Second, true},
		{"at the cap", "120", maxPause, true},
		{"above the cap", "121", maxPause, true},
		{"1e12 seconds", "1e12", maxPause, true},
		{"99999999999 seconds", "99999999999", maxPause, true},
		{"1e400 out of range", "1e400", maxPause, true},
		{"Inf", "Inf", maxPause, true},
		{"+Infinity", "+Infinity", maxPause, true},
		{"negative", "-5", 0, false},
		{"-Inf", "-Inf", 0, false},
		{"NaN", "NaN", 0, false},
		{"garbage", "soon", 0, false},
		{"date in 30s", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"date in a year", now.AddDate(1, 0, 0).Format(http.TimeFormat), maxPause, true},
		{"date far away", "Fri, 31 Dec 9999 23:59:59 GMT", maxPause, true},
		{"date long ago", "Mon, 01 Jan 0001 00:00:00 GMT", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := retryAfter(h, now, maxPause)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Retry-After %q: %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
			}
			if got < 0 || got > maxPause {
				t.Errorf("Retry-After %q: pause %v outside [0, %v]", tt.value, got, maxPause)
			}
		})
	}
}

// TestRateRecoversAfter429WhileBlocked: after one 429 the tenant's rate is
// cut to 70 %; the definite 403 answers that follow (blocked users) count as
// successes for the pacer, so the rate climbs back towards --rate.
func TestRateRecoversAfter429WhileBlocked(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if n == 1 {
			return 429, `{"error":{"code":"Throttled"}}`, http.Header{"Retry-After": {"0"}}
		}
		return 403, `{"error":{"code":"ConversationBlockedByUser","message":"User blocked the conversation with the bot."}}`, nil
	})
	var refs []blockreport.Reference
	for i := range 60 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	cfg := testConfig(t, tok.URL, nil)
	cfg.Concurrency = 1 // the 429 comes first
	p := mustNew(t, cfg)
	st := newMemStore(refs)
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if got := st.result(t, 1).Status; got != blockreport.StatusBlocked {
		t.Errorf("reference 1 after its 429: %s, want blocked", got)
	}
	if st.count() != len(refs) {
		t.Errorf("%d results, want %d", st.count(), len(refs))
	}
	// Cut to 700/s, then each answer adds (1000/10)/rate: after 59
	// answers r² = 700² + 2·100·59, r ≈ 708.4/s.
	if got := p.pacer("t").current(); got < 708 || got > 709 {
		t.Errorf("rate after one 429 and %d blocked answers: %g/s, want about 708.4/s", len(refs)-1, got)
	}
}

// TestNoGraceCutsInFlightProbes: with a negative Grace, cancellation cuts
// off the probe in flight at once (no result; the next run probes it), where
// the default grace would let it finish.
func TestNoGraceCutsInFlightProbes(t *testing.T) {
	tok, _ := tokenServer(t)
	inFlight := make(chan struct{}, 1)
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		time.Sleep(2 * time.Second) // answers, but only after a while
		return 200, `{}`, nil
	})
	st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
	cfg := testConfig(t, tok.URL, nil)
	cfg.Grace = -1
	p := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-inFlight; cancel() }()
	if err := p.Run(ctx, st, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if n := st.count(); n != 0 {
		t.Errorf("%d results: the in-flight probe was not cut off", n)
	}
}

// TestProbeTenantThenRun: ProbeTenant records the results of its tenant
// only; Run then probes the rest, and every reference has one result from
// one request.
func TestProbeTenantThenRun(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	var refs []blockreport.Reference
	for i := range 10 {
		refs = append(refs, personal(int64(i+1), []string{"tenant-a", "tenant-b"}[i%2], conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	p := mustNew(t, testConfig(t, tok.URL, nil))
	if err := p.ProbeTenant(context.Background(), st, 1, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	for _, r := range refs {
		_, ok := st.results[r.ID]
		if want := r.TenantID == "tenant-a"; ok != want {
			t.Errorf("after ProbeTenant(tenant-a): reference %d of %s has a result: %v, want %v", r.ID, r.TenantID, ok, want)
		}
	}
	st.mu.Unlock()
	if pending, _ := st.PendingTenants(context.Background(), 1); len(pending) != 1 || pending[0] != "tenant-b" {
		t.Errorf("pending tenants %v, want [tenant-b]", pending)
	}
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) || st.dupes != 0 {
		t.Errorf("%d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
	}
	if n := len(conn.requests()); n != len(refs) {
		t.Errorf("%d requests, want %d (each reference probed once)", n, len(refs))
	}
	for _, r := range refs {
		if got := st.result(t, r.ID); got.Status != blockreport.StatusReachable || got.RunID != 1 {
			t.Errorf("reference %d: %s in run %d, want reachable in run 1", r.ID, got.Status, got.RunID)
		}
	}
}

// TestTypingActivityBytes: the struct encoding of a typing activity is the
// same bytes as the map encoding it replaced, with and without the
// optional fields.
func TestTypingActivityBytes(t *testing.T) {
	for _, ref := range []blockreport.Reference{
		{TenantID: "t1", UserID: "29:u", ConversationType: blockreport.ConversationPersonal, Locale: "en-US"},
		{TenantID: "t1"},
	} {
		a := map[string]any{"type": "typing", "channelId": "msteams", "from": map[string]any{"id": "28:b"}}
		if ref.UserID != "" {
			a["recipient"] = map[string]any{"id": ref.UserID}
		}
		cv := map[string]any{"id": "a:c", "tenantId": ref.TenantID}
		if ref.ConversationType != "" {
			cv["conversationType"] = string(ref.ConversationType)
		}
		a["conversation"] = cv
		if ref.Locale != "" {
			a["locale"] = ref.Locale
		}
		want, _ := json.Marshal(a)
		if got := typingActivity(ref, "28:b", "a:c"); string(got) != string(want) {
			t.Errorf("typing activity\n got %s\nwant %s", got, want)
		}
	}
}
