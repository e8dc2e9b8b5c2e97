package probe

import (
	"container/heap"
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
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

// simClock is a virtual clock the simulation moves.
type simClock struct{ t time.Time }

func (c *simClock) now() time.Time { return c.t }

// event is one step of a simulated request: at at, phase says what it does.
type event struct {
	at    time.Time
	id    int
	phase int // 0: reserve, 1: send (take), 2: answer
	seq   int
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if !e[i].at.Equal(e[j].at) {
		return e[i].at.Before(e[j].at)
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any     { old := *e; x := old[len(old)-1]; *e = old[:len(old)-1]; return x }

// sim drives one pacer with a virtual clock: requests arrive in bursts,
// wait for their reservation, then for a connection slot (a random extra
// delay, up to slotDelay), then take; the server answers after latency,
// 429 (Retry-After retryAfter) when more than serverLimit sends arrived
// in its sliding second, and a throttled request is retried.
type sim struct {
	ceiling     float64
	requests    int
	burst       int           // requests that reserve at the same instant
	burstEvery  time.Duration // between bursts
	slotDelay   time.Duration
	latency     time.Duration // answer after latency/2 .. latency
	serverLimit int           // 0: never throttles
	retryAfter  time.Duration

	sends    []time.Time // every take that returned 0
	throttle []time.Time // answer times of 429s
	pauses   [][2]time.Time
	cuts     int
	minRate  float64
	pc       *pacer
}

func (s *sim) run(t *testing.T, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	clock := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	start := clock.t
	s.pc = newPacer(s.ceiling, clock.now)
	s.minRate = s.ceiling
	q := &events{}
	seq := 0
	push := func(at time.Time, id, phase int) {
		seq++
		heap.Push(q, event{at, id, phase, seq})
	}
	for i := range s.requests {
		push(start.Add(time.Duration(i/max(1, s.burst))*s.burstEvery), i, 0)
	}
	sentAt := map[int]time.Time{}
	var arrived []time.Time // accepted by the simulated server
	for q.Len() > 0 {
		e := heap.Pop(q).(event)
		if e.at.Before(clock.t) {
			t.Fatalf("time went back: %v < %v", e.at, clock.t)
		}
		clock.t = e.at
		switch e.phase {
		case 0:
			at := s.pc.reserve()
			if at.Before(clock.t.Add(-catchUp)) {
				t.Fatalf("reservation %v more than catchUp in the past (now %v)", at, clock.t)
			}
			at = later(at, clock.t)
			delay := time.Duration(0)
			if s.slotDelay > 0 {
				delay = time.Duration(rng.Int64N(int64(s.slotDelay)))
			}
			push(at.Add(delay), e.id, 1)
		case 1:
			if d, paused := s.pc.take(); paused {
				push(clock.t, e.id, 0) // slot given back, a new reservation
				continue
			} else if d > 0 {
				push(clock.t.Add(d), e.id, 1) // slot given back, ask again
				continue
			}
			s.sends = append(s.sends, clock.t)
			sentAt[e.id] = clock.t
			lat := s.latency/2 + time.Duration(rng.Int64N(int64(s.latency/2)+1))
			push(clock.t.Add(lat), e.id, 2)
		case 2:
			// The server counts at arrival = send time (latency is on the answer).
			sent := sentAt[e.id]
			n := 0
			for i := len(arrived) - 1; i >= 0 && sent.Sub(arrived[i]) < time.Second; i-- {
				n++
			}
			if s.serverLimit > 0 && n >= s.serverLimit {
				before := s.pc.current()
				s.pc.throttled(sent, s.retryAfter)
				if s.pc.current() < before {
					s.cuts++
				}
				s.minRate = min(s.minRate, s.pc.current())
				s.throttle = append(s.throttle, clock.t)
				s.pauses = append(s.pauses, [2]time.Time{clock.t, clock.t.Add(s.retryAfter)})
				push(clock.t, e.id, 0) // retry: a new reservation
				continue
			}
			arrived = append(arrived, sent)
			s.pc.ok()
		}
	}
	if len(s.sends) < s.requests {
		t.Fatalf("%d sends for %d requests", len(s.sends), s.requests)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestPacerNeverExceedsWindow: whatever the bursts, slot delays and 429
// storms, no sliding window of 1 s (nor 2 s, nor 10 s) holds more sends
// than floor(ceiling) per second, nothing is sent during a pause, and the
// rate is halved at most once per pause.
func TestPacerNeverExceedsWindow(t *testing.T) {
	tests := []struct {
		name string
		sim  sim
	}{
		{"steady at the default", sim{ceiling: DefaultRate, requests: 600, burst: 1, burstEvery: 20 * time.Millisecond, latency: 100 * time.Millisecond}},
		{"one burst of 1000", sim{ceiling: DefaultRate, requests: 1000, burst: 1000, latency: 300 * time.Millisecond}},
		{"bursts and slow slots", sim{ceiling: DefaultRate, requests: 1200, burst: 300, burstEvery: 2 * time.Second,
			slotDelay: 700 * time.Millisecond, latency: 300 * time.Millisecond}},
		{"non-integer ceiling", sim{ceiling: 47.9, requests: 600, burst: 600, slotDelay: 50 * time.Millisecond, latency: 100 * time.Millisecond}},
		{"ceiling under 1/s", sim{ceiling: 0.5, requests: 20, burst: 20, latency: 100 * time.Millisecond}},
		{"--rate above the limit", sim{ceiling: 200, requests: 1500, burst: 1500, slotDelay: 20 * time.Millisecond, latency: 100 * time.Millisecond}},
		{"429 storm: server allows 20/s", sim{ceiling: DefaultRate, requests: 1500, burst: 1500, slotDelay: 100 * time.Millisecond,
			latency: 300 * time.Millisecond, serverLimit: 20, retryAfter: time.Second}},
		{"429 storm with long pauses", sim{ceiling: DefaultRate, requests: 800, burst: 400, burstEvery: 3 * time.Second,
			latency: 300 * time.Millisecond, serverLimit: 5, retryAfter: 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(3) {
				s := tt.sim
				s.run(t, seed)
				for _, w := range []time.Duration{time.Second, 2 * time.Second, 10 * time.Second} {
					allowed := int(float64(w/time.Second) * max(1, float64(int(s.ceiling))))
					if s.ceiling < 1 {
						allowed = int(float64(w/time.Second)*s.ceiling) + 1
					}
					if n := maxInWindow(s.sends, w); n > allowed {
						t.Fatalf("seed %d: %d sends in a %v window, ceiling %g allows %d", seed, n, w, s.ceiling, allowed)
					}
				}
				for i := 1; i < len(s.sends); i++ {
					if gap := s.sends[i].Sub(s.sends[i-1]); gap < s.pc.minGap {
						t.Fatalf("seed %d: sends %d and %d %v apart, under %v (twice the ceiling)", seed, i-1, i, gap, s.pc.minGap)
					}
				}
				for _, p := range s.pauses {
					i := sort.Search(len(s.sends), func(i int) bool { return s.sends[i].After(p[0]) })
					if i < len(s.sends) && s.sends[i].Before(p[1]) {
						t.Fatalf("seed %d: a send at %v inside the pause %v–%v", seed, s.sends[i], p[0], p[1])
					}
				}
				if s.serverLimit > 0 {
					if len(s.throttle) == 0 {
						t.Fatalf("seed %d: the storm gave no 429", seed)
					}
					if s.cuts > len(s.throttle) || s.cuts == 0 {
						t.Fatalf("seed %d: %d rate cuts for %d 429s", seed, s.cuts, len(s.throttle))
					}
					if s.minRate < minRate {
						t.Fatalf("seed %d: rate fell to %g, under the floor %g", seed, s.minRate, minRate)
					}
				}
			}
		})
	}
}

// TestPacerAIMD: a 429 halves the rate once per pause (429s to requests
// sent before the cut do not cut again), Retry-After sets the pause,
// answers bring the rate back additively, never above the ceiling.
func TestPacerAIMD(t *testing.T) {
	clock := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	pc := newPacer(40, clock.now)
	sent := clock.t
	clock.t = clock.t.Add(100 * time.Millisecond)
	pc.throttled(sent, 2*time.Second)
	if got := pc.current(); got != 28 {
		t.Fatalf("after a 429: %g/s, want 28 (70 %%)", got)
	}
	// Three more 429s to requests sent before the cut: same pause, no cut.
	for range 3 {
		pc.throttled(sent, 2*time.Second)
	}
	if got := pc.current(); got != 28 {
		t.Errorf("after more 429s of the same pause: %g/s, want 28", got)
	}
	if d, paused := pc.take(); !paused || d != 2*time.Second {
		t.Errorf("take during the pause: %v, paused %v; want 2s (Retry-After)", d, paused)
	}
	if at := pc.reserve(); !at.Equal(clock.t.Add(2 * time.Second)) {
		t.Errorf("reservation during the pause at %v, want its end", at)
	}
	// A request sent after the cut and throttled again: a new pause, a cut.
	clock.t = clock.t.Add(3 * time.Second)
	if d, _ := pc.take(); d != 0 {
		t.Fatalf("take after the pause: wait %v", d)
	}
	sent2 := clock.t
	clock.t = clock.t.Add(100 * time.Millisecond)
	pc.throttled(sent2, time.Second)
	if got := pc.current(); math.Abs(got-19.6) > 1e-9 {
		t.Errorf("after a 429 of a new pause: %g/s, want 19.6", got)
	}
	// Additive increase: ceiling/10 per second of answers, 4/s per second
	// here: from 19.6/s to 23.6/s takes about a second of answers (~22).
	n := 0
	for pc.current() < 23.6 {
		pc.ok()
		n++
	}
	if n < 19 || n > 24 {
		t.Errorf("%d answers from 19.6/s to 23.6/s, want about 22", n)
	}
	for range 10000 {
		pc.ok()
	}
	if got := pc.current(); got != 40 {
		t.Errorf("after recovery: %g/s, want the ceiling 40", got)
	}
	for range 100 {
		pc.throttled(clock.t.Add(time.Hour), 0) // each a new pause
		clock.t = clock.t.Add(time.Hour)
	}
	if got := pc.current(); got != minRate {
		t.Errorf("floor: %g/s, want %g", got, minRate)
	}
}

// TestPacerSchedule: reservations follow the current rate; after idle time
// only catchUp of the schedule is made up at once; a late send does not
// move the schedule; take allows bursts up to k sends in any second, and
// no more.
func TestPacerSchedule(t *testing.T) {
	clock := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	pc := newPacer(50, clock.now)
	a, b := pc.reserve(), pc.reserve()
	if got := b.Sub(a); got != 20*time.Millisecond {
		t.Errorf("reservations %v apart at 50/s, want 20ms", got)
	}
	clock.t = clock.t.Add(10 * time.Second) // idle
	var past int
	for range 10 {
		if !pc.reserve().After(clock.t) {
			past++
		}
	}
	if past != 10 { // now-1s, -980ms, ...: a second of catch-up
		t.Errorf("%d of 10 reservations due at once after idling, want all (1 s of catch-up at 50/s)", past)
	}
	for pc.reserve().Before(clock.t) {
		past++
	}
	if past != 50 { // now-1s ... now-20ms
		t.Errorf("%d reservations in the past after idling, want 50", past)
	}
	// A late send: the next reservation is still on the schedule.
	next := pc.reserve()
	clock.t = next.Add(15 * time.Millisecond)
	if d, _ := pc.take(); d != 0 {
		t.Fatalf("late send refused: %v", d)
	}
	if got := pc.reserve(); !got.Equal(next.Add(20 * time.Millisecond)) {
		t.Errorf("reservation after a late send at +%v, want +20ms", got.Sub(next))
	}

	w := newPacer(3, clock.now)
	t0 := clock.t
	// At 3/s sends may come every 4/15 s (1.25 × the pace), not sooner,
	// and no 4 in a second.
	if d, _ := w.take(); d != 0 {
		t.Fatalf("first send refused: %v", d)
	}
	clock.t = t0.Add(10 * time.Millisecond)
	if d, _ := w.take(); d != 4*time.Second/15-10*time.Millisecond {
		t.Errorf("send 10 ms after the last: wait %v, want the rest of 4/15 s", d)
	}
	for i := 1; i < 3; i++ {
		clock.t = t0.Add(time.Duration(i) * 4 * time.Second / 15)
		if d, _ := w.take(); d != 0 {
			t.Fatalf("send %d, 4/15 s apart at 3/s, refused: %v", i, d)
		}
	}
	clock.t = t0.Add(time.Second/3*2 + time.Millisecond)
	if d, paused := w.take(); d != time.Second-time.Second/3*2-time.Millisecond || paused {
		t.Errorf("4th send within a second: wait %v (paused %v), want 332ms", d, paused)
	}
	clock.t = t0.Add(time.Second - time.Millisecond)
	if d, _ := w.take(); d != time.Millisecond {
		t.Errorf("4th send 1 ms before the first left the window: wait %v, want 1ms", d)
	}
	clock.t = t0.Add(time.Second)
	if d, _ := w.take(); d != 0 {
		t.Errorf("send once the first left the window: wait %v", d)
	}
}

// TestNoSleepHoldingASlot: with one connection slot, a tenant paused by a
// 429 with Retry-After 2 does not keep another tenant from being probed
// meanwhile: the paused probe waits without the slot.
func TestNoSleepHoldingASlot(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 2 s pause")
	}
	var mu sync.Mutex
	var order []string
	throttledOnce := false
	conn := newConnector(t, func(r recorded, _ int) (int, string, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		tenant := "b"
		if strings.Contains(r.Path, "a:paused") {
			tenant = "a"
			if !throttledOnce {
				throttledOnce = true
				order = append(order, "a429")
				return http.StatusTooManyRequests, "", http.Header{"Retry-After": {"2"}}
			}
		}
		order = append(order, tenant)
		return http.StatusCreated, `{"id":"1"}`, nil
	})
	tok, _ := tokenServer(t)
	refs := []blockreport.Reference{personal(1, "tenant-a", conn.URL+"/amer/")}
	refs[0].ConversationID = "a:paused"
	for i := range 5 {
		refs = append(refs, personal(int64(i+2), "tenant-b", conn.URL+"/amer/"))
	}
	cfg := testConfig(t, tok.URL, nil)
	cfg.Concurrency = 1
	p := mustNew(t, cfg)
	if err := p.Run(context.Background(), newMemStore(refs), 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 7 || order[len(order)-1] != "a" {
		t.Fatalf("order %v: want tenant b's 5 answers before tenant a's retry", order)
	}
}
