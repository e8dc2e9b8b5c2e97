package faketeams

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerErrorFaults(t *testing.T) {
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits(), Faults: Faults{ServerErrors: 1}, Seed: 3})
	tok := token(t, s)
	seen := map[int]bool{}
	for range 60 {
		got := call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, `{"type":"message"}`)
		if !slices.Contains(faultStatuses, got.status) {
			t.Fatalf("status %d is not an injected fault", got.status)
		}
		seen[got.status] = true
		want := map[int]string{500: "ServiceError", 502: "ServiceError", 412: "PreconditionFailed"}[got.status]
		if errorCode(got.body) != want {
			t.Errorf("%d body %q, want code %q", got.status, got.body, want)
		}
	}
	if len(seen) != len(faultStatuses) {
		t.Errorf("saw statuses %v, want all of %v", seen, faultStatuses)
	}
}

// Faults fail one attempt without consuming the conversation's script.
func TestFaultsDoNotConsumeScript(t *testing.T) {
	sc := conversation("s", StateScripted)
	sc.Script = []Step{{Status: 409, Code: "First"}, {Status: 410, Code: "Second"}, {Status: 418, Code: "Third"}}
	s := start(t, Config{Population: []Conversation{sc}, Limits: NoLimits(), Faults: Faults{ServerErrors: 0.6}, Seed: 11})
	tok := token(t, s)
	var steps []int
	faults := 0
	for range 40 {
		got := call(t, "POST", activitiesURL(s, "amer", "a:s"), tok, `{"type":"message"}`)
		if slices.Contains(faultStatuses, got.status) {
			faults++
			continue
		}
		steps = append(steps, got.status)
	}
	if faults == 0 || len(steps) < 3 {
		t.Fatalf("faults %d, script answers %d: seed gives no mix", faults, len(steps))
	}
	if steps[0] != 409 || steps[1] != 410 || steps[2] != 418 {
		t.Errorf("script answers %v, want 409 410 418 in order despite faults", steps)
	}
}

func TestResetFault(t *testing.T) {
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits(), Faults: Faults{Resets: 1}})
	tok := token(t, s)
	req, _ := http.NewRequest("POST", activitiesURL(s, "amer", "a:x"), strings.NewReader(`{"type":"message"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a connection error", resp.StatusCode)
	}
	if got := s.Stats().Count(RouteSendActivity, "reset"); got != 1 {
		t.Errorf("stats resets %d", got)
	}
}

func TestStallFault(t *testing.T) {
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits(),
		Faults: Faults{Stalls: 1}, StallFor: time.Hour})
	tok := token(t, s)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("POST", activitiesURL(s, "amer", "a:x"), strings.NewReader(`{"type":"message"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a client timeout", resp.StatusCode)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a timeout", err)
	}
	if got := s.Stats().Count(RouteSendActivity, "stalled"); got != 1 {
		t.Errorf("stats stalls %d", got)
	}

	// Close ends a stall that is still hanging (the client never gives up).
	go func() {
		req, _ := http.NewRequest("POST", activitiesURL(s, "amer", "a:x"), strings.NewReader(`{"type":"message"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for s.Stats().Count(RouteSendActivity, "stalled") < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a stalled answer")
	}
}

func TestThrottleBurstFault(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	other := conversation("y", StateActive)
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive), other}, Limits: NoLimits(),
		Faults: Faults{Throttles: 1, BurstFor: 3 * time.Second}, Now: clock.Now})
	tok := token(t, s)
	got := call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, `{"type":"message"}`)
	if got.status != 429 || got.header.Get("Retry-After") != "3" || errorCode(got.body) != "Throttled" {
		t.Fatalf("burst start: %d Retry-After %q %s", got.status, got.header.Get("Retry-After"), got.body)
	}
	clock.Advance(time.Second)
	got = call(t, "POST", activitiesURL(s, "amer", other.ConversationID), tok, `{"type":"message"}`)
	if got.status != 429 || got.header.Get("Retry-After") != "2" {
		t.Fatalf("inside the burst: %d Retry-After %q", got.status, got.header.Get("Retry-After"))
	}
}

func TestFaultsValidate(t *testing.T) {
	for _, f := range []Faults{{ServerErrors: -0.1}, {Resets: 1.5}, {Stalls: 0.6, Throttles: 0.6}} {
		if s, err := Start(Config{Faults: f}); err == nil {
			s.Close()
			t.Errorf("Start accepted faults %+v", f)
		}
	}
}

func TestLatencyDistribution(t *testing.T) {
	draw := func(seed uint64) []time.Duration {
		s := start(t, Config{Latency: 100 * time.Millisecond, Seed: seed})
		out := make([]time.Duration, 2001)
		for i := range out {
			out[i] = s.latency()
		}
		return out
	}
	a, b := draw(5), draw(5)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different latencies")
	}
	slices.Sort(a)
	median, p99 := a[len(a)/2], a[len(a)*99/100]
	if median < 85*time.Millisecond || median > 115*time.Millisecond {
		t.Errorf("median %v, want about 100ms", median)
	}
	if p99 < 3*median {
		t.Errorf("p99 %v is not a long tail over median %v", p99, median)
	}
}
