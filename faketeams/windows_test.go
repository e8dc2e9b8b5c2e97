package faketeams

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWindowsCount places requests at exact times on a fake clock and
// checks what each sliding window counts: a window of length d ending at t
// holds the arrivals in (t-d, t], throttled ones included for the busiest
// windows, admitted ones only for the limit.
func TestWindowsCount(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	x, y := conversation("x", StateActive), conversation("y", StateActive)
	s := start(t, Config{
		Population: []Conversation{x, y},
		Limits:     &Limits{TenantPerSecond: 3, ConversationWrites: DefaultLimits().ConversationWrites},
		Now:        clock.Now,
	})
	tok := token(t, s)
	// Writes to a:x at 0, 0.4, 0.8, 1.0 and 1.3 s. The 1 s window ending
	// at 1.0 no longer holds the one at 0; the one ending at 1.3 holds 4
	// arrivals, of which only 3 fit the tenant's limit: the last is a 429.
	wantStatus := []int{201, 201, 201, 201, 429}
	for i, at := range []time.Duration{0, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, 1300 * time.Millisecond} {
		clock.now = t0.Add(at)
		got := call(t, "POST", activitiesURL(s, "amer", x.ConversationID), tok, `{"type":"typing"}`)
		if got.status != wantStatus[i] {
			t.Fatalf("write %d at %v: %d, want %d", i, at, got.status, wantStatus[i])
		}
	}
	// Reads of a:y: 3 at 3.5 s (the tenant window is empty again).
	clock.now = t0.Add(3500 * time.Millisecond)
	for range 3 {
		if got := call(t, "GET", s.URL()+"/amer/v3/conversations/a:y/pagedmembers", tok, ""); got.status != 200 {
			t.Fatalf("read: %d", got.status)
		}
	}
	st := s.Stats()
	want := TenantWindow{Arrived: 4, Accepted: 3, Limit: 3, Requests: 8, First: t0, Last: t0.Add(3500 * time.Millisecond)}
	if got := st.TenantWindows[tenantA]; got != want {
		t.Errorf("tenant window %+v, want %+v", got, want)
	}
	if r := want.Rate(); r != 2 { // 7 gaps in 3.5 s
		t.Errorf("rate %g, want 2/s", r)
	}
	if st.MaxTenantRate[tenantA] != 4 {
		t.Errorf("max tenant rate %d, want 4", st.MaxTenantRate[tenantA])
	}
	for _, w := range []struct {
		kind         string
		per          time.Duration
		limit, count int
		conv         string
	}{
		{kindWrite, time.Second, 7, 4, "a:x"},
		{kindWrite, 2 * time.Second, 8, 5, "a:x"},
		{kindWrite, 30 * time.Second, 60, 5, "a:x"},
		{kindWrite, time.Hour, 1800, 5, "a:x"},
		{kindRead, time.Second, 14, 3, "a:y"},
		{kindRead, time.Hour, 3600, 3, "a:y"},
	} {
		got, ok := st.Window(w.kind, w.per)
		if !ok || got.Limit != w.limit || got.Arrived != w.count || got.Conversation != w.conv {
			t.Errorf("%s %v window: %v (found %v), want %d of %d in %s", w.kind, w.per, got, ok, w.count, w.limit, w.conv)
		}
	}
	if len(st.ConversationWindows) != 8 || st.ConversationWindows[0].Kind != kindWrite || st.ConversationWindows[7].Window != time.Hour {
		t.Errorf("conversation windows %v: want 4 write windows then 4 read windows, shortest first", st.ConversationWindows)
	}
}

// TestHourWindow: 1,800 writes to one conversation within an hour are
// accepted (spread so that no shorter window binds), the next is a 429
// whose Retry-After is when the oldest leaves the hour.
func TestHourWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("1,801 requests")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	x := conversation("x", StateActive)
	s := start(t, Config{Population: []Conversation{x}, Limits: &Limits{ConversationWrites: DefaultLimits().ConversationWrites}, Now: clock.Now})
	tok := token(t, s)
	// 30 rounds 46 s apart, each of 15 groups of 4 writes 1.1 s apart: no
	// 1 s, 2 s or 30 s window binds, 1,800 writes within 1,350 s.
	for round := range 30 {
		for g := range 15 {
			clock.now = t0.Add(time.Duration(round)*46*time.Second + time.Duration(g)*1100*time.Millisecond)
			for i := range 4 {
				if got := call(t, "POST", activitiesURL(s, "amer", x.ConversationID), tok, `{"type":"typing"}`); got.status != 201 {
					t.Fatalf("round %d group %d write %d: %d (%s)", round, g, i, got.status, got.body)
				}
			}
		}
	}
	clock.now = t0.Add(time.Hour - time.Minute)
	got := call(t, "POST", activitiesURL(s, "amer", x.ConversationID), tok, `{"type":"typing"}`)
	if got.status != 429 || got.header.Get("Retry-After") != "60" {
		t.Fatalf("write 1801: %d Retry-After %q, want 429 after 60 s", got.status, got.header.Get("Retry-After"))
	}
	if w, _ := s.Stats().Window(kindWrite, time.Hour); w.Arrived != 1801 || w.Limit != 1800 {
		t.Errorf("hour window %v, want 1801 arrivals of 1800", w)
	}
}

// TestCountedOnArrival: a request is counted when it arrives, not when its
// simulated latency ends. One request arrives at 0 and is held for its
// latency while the clock moves 1.5 s on; then 3 requests arrive together.
// Counted at its arrival the first has left the 1 s window and all 3 fit
// a limit of 3; counted after its latency it would make the third a 429.
func TestCountedOnArrival(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	var pop []Conversation
	for i := range 4 {
		pop = append(pop, conversation(fmt.Sprint(i), StateActive))
	}
	s := start(t, Config{Population: pop, Limits: &Limits{TenantPerSecond: 3}, Now: clock.Now,
		Latency: 300 * time.Millisecond, LatencySigma: 1e-9})
	tok := token(t, s)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	wg.Go(func() {
		statuses[0] = call(t, "POST", activitiesURL(s, "amer", "a:0"), tok, `{"type":"typing"}`).status
	})
	for s.Stats().MaxTenantRate[tenantA] == 0 { // arrived, now in its latency
		time.Sleep(time.Millisecond)
	}
	clock.Advance(1500 * time.Millisecond)
	for i := 1; i < 4; i++ {
		wg.Go(func() {
			statuses[i] = call(t, "POST", activitiesURL(s, "amer", fmt.Sprintf("a:%d", i)), tok, `{"type":"typing"}`).status
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 201 {
			t.Errorf("request %d: %d, want 201", i, st)
		}
	}
	if w := s.Stats().TenantWindows[tenantA]; w.Arrived != 3 || w.Accepted != 3 {
		t.Errorf("tenant window %+v, want 3 arrived and accepted", w)
	}
}

// TestThrottledAtOnce: a 429 is the limiter's answer at the door, without
// the processing latency; other answers carry it.
func TestThrottledAtOnce(t *testing.T) {
	x := conversation("x", StateActive)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := start(t, Config{Population: []Conversation{x}, Limits: &Limits{TenantPerSecond: 1}, Now: clock.Now,
		Latency: time.Hour, LatencySigma: 1e-9})
	tok := token(t, s)
	done := make(chan int, 1)
	go func() { // held until Close; its outcome then does not matter
		req, _ := http.NewRequest("POST", activitiesURL(s, "amer", "a:x"), strings.NewReader(`{"type":"typing"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			done <- resp.StatusCode
		}
	}()
	for s.Stats().MaxTenantRate[tenantA] == 0 {
		time.Sleep(time.Millisecond)
	}
	// The first request is held for an hour; the second is refused now.
	if got := call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, `{"type":"typing"}`); got.status != 429 {
		t.Errorf("second request: %d, want 429", got.status)
	}
	select {
	case st := <-done:
		t.Errorf("first request answered %d before its latency", st)
	default:
	}
}

func TestArrivalJitterDraws(t *testing.T) {
	s := start(t, Config{ArrivalJitter: 5 * time.Millisecond, Seed: 3})
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := s.arrivalJitter()
		if d < 0 || d >= 5*time.Millisecond {
			t.Fatalf("jitter %v out of [0, 5ms)", d)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("%d distinct draws of 1000", len(seen))
	}
	if d := start(t, Config{}).arrivalJitter(); d != 0 {
		t.Errorf("no jitter configured: %v", d)
	}
	if _, err := Start(Config{ArrivalJitter: -time.Millisecond}); err == nil {
		t.Error("negative arrival jitter accepted")
	}
}

// TestMessageSizeTooBig: an activity over 100 KB as UTF-16 is answered 413
// MessageSizeTooBig and never counted as delivered.
func TestMessageSizeTooBig(t *testing.T) {
	x := conversation("x", StateActive)
	s := start(t, Config{Population: []Conversation{x}, Limits: NoLimits()})
	tok := token(t, s)
	body := func(textBytes int) string {
		return `{"type":"message","text":"` + strings.Repeat("a", textBytes) + `"}`
	}
	// 50 KB of ASCII is 100 KB as UTF-16, plus the JSON around it.
	if got := call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, body(MaxMessageBytes/2)); got.status != http.StatusRequestEntityTooLarge || errorCode(got.body) != "MessageSizeTooBig" {
		t.Errorf("large message: %d %s", got.status, got.body)
	}
	if got := call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, body(MaxMessageBytes/2-100)); got.status != http.StatusCreated {
		t.Errorf("message under the limit: %d %s", got.status, got.body)
	}
	if n := s.Stats().Messages["a:x"]; n != 1 {
		t.Errorf("messages delivered %d, want 1 (the 413 delivers nothing)", n)
	}
	if got := utf16Size([]byte("aé€😀")); got != 2+2+2+4 {
		t.Errorf("utf16Size %d", got)
	}
}
