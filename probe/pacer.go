package probe

import (
	"context"
	"math"
	"sync"
	"time"
)

// Teams' documented limit and the default pace under it.
const (
	// TeamsTenantLimit is the documented limit of Bot Connector requests
	// per second per app per tenant (rate-limit page, 2026-10-08).
	TeamsTenantLimit = 50
	// DefaultRate is the default ceiling of a tenant's pace: the
	// documented limit less 4 %, the margin for the network's jitter
	// between blockreport's send and Teams' count.
	DefaultRate = 48
)

// pacer paces one tenant's requests: one schedule of send times, shared
// by first attempts and retries, and at the moment of sending the check of
// the sliding window it promises.
//
// Its rate adapts (AIMD): it starts at the ceiling (--rate); a 429 pauses
// the tenant (Retry-After, else backoff) and cuts the rate to 70 %, once per
// pause: only a 429 to a request sent after the last decrease lowers it
// again. Every other answer adds ceiling/10 requests/s per second of
// answers back (additive increase) up to the ceiling.
//
// Requests ask for a send time (reserve) and wait for it without holding a
// connection slot. The schedule is anchored: a request that goes out late
// does not move the ones after it, and up to catchUp of time lost (a late
// timer, a busy machine) is made up, at 1.25 × the ceiling at most: smooth,
// so that the network's jitter cannot bunch sends at Teams' door. Holding
// a slot, right before the request goes out, take checks the guarantee:
// no sliding window of span (1 s) holds more than k = floor(ceiling) sends,
// bursts and catch-up included, no two sends are closer than 80 % of the
// ceiling's spacing, and nothing is sent while the tenant is paused. When take refuses, the caller gives its slot back before it
// waits.
type pacer struct {
	now     func() time.Time
	ceiling float64
	span    time.Duration // window of the guarantee: 1 s (longer under 1/s, shorter over maxWindow/s)
	minGap  time.Duration // between two sends: 80 % of the spacing at the ceiling

	mu          sync.Mutex
	cur         float64     // current rate, in [minRate, ceiling]
	next        time.Time   // the next free slot of the schedule
	sent        []time.Time // ring of the last k send times
	head        int         // oldest entry of sent
	pausedUntil time.Time
	lastCut     time.Time // when the rate was last cut
}

const (
	minRate = 0.5 // requests per second a throttled tenant never drops below
	// maxWindow bounds the ring of a very fast tenant (a --rate over 512/s
	// promises k sends per k/rate seconds instead of per second).
	maxWindow = 512
	// catchUp is how much lost schedule a tenant may make up at once.
	catchUp = time.Second
	// decrease is the multiplicative decrease of a 429 (TCP CUBIC's):
	// gentler than halving, as a tenant's 429 is usually one request over.
	decrease = 0.7
)

func newPacer(ceiling float64, now func() time.Time) *pacer {
	if now == nil {
		now = time.Now
	}
	k, span := int(ceiling), time.Second
	switch {
	case ceiling < 1:
		k, span = 1, time.Duration(math.Ceil(float64(time.Second)/ceiling))
	case k > maxWindow:
		k, span = maxWindow, time.Duration(float64(maxWindow)/ceiling*float64(time.Second))
	}
	return &pacer{now: now, ceiling: ceiling, span: span, minGap: span * 4 / time.Duration(5*k),
		cur: ceiling, sent: make([]time.Time, k)}
}

// gap is the spacing of the schedule at the current rate.
func (p *pacer) gap() time.Duration {
	return time.Duration(math.Ceil(float64(time.Second) / p.cur))
}

// reserve books the next slot of the schedule and returns its time, which
// may be just past (send at once).
func (p *pacer) reserve() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.next
	if floor := p.now().Add(-catchUp); t.Before(floor) {
		t = floor // idle: only catchUp of the lost schedule is made up
	}
	if t.Before(p.pausedUntil) {
		t = p.pausedUntil
	}
	p.next = t.Add(p.gap())
	return t
}

// take is called holding a connection slot, right before the request is
// sent: it records the send and returns 0, or how long to wait before
// asking again when the window is full, or paused when the tenant is
// paused. Either way the caller gives the slot back first; after a pause it
// reserves a new slot (asking again at the pause's end would wake every
// waiter together).
func (p *pacer) take() (wait time.Duration, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.pausedUntil) {
		return p.pausedUntil.Sub(now), true
	}
	// The k-th send back must have left the window (now-span, now], and
	// catching up never sends faster than 1.25 × the ceiling.
	if oldest := p.sent[p.head]; !oldest.IsZero() {
		if d := oldest.Add(p.span).Sub(now); d > 0 {
			return d, false
		}
	}
	last := p.sent[(p.head+len(p.sent)-1)%len(p.sent)]
	if d := last.Add(p.minGap).Sub(now); !last.IsZero() && d > 0 {
		return d, false
	}
	p.sent[p.head] = now
	p.head = (p.head + 1) % len(p.sent)
	return 0, false
}

// throttled records a 429 to a request sent at sentAt: pause the tenant
// for d and, once per pause, cut its rate.
func (p *pacer) throttled(sentAt time.Time, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if until := now.Add(d); until.After(p.pausedUntil) {
		p.pausedUntil = until
	}
	if p.lastCut.IsZero() || sentAt.After(p.lastCut) {
		p.cur = max(p.cur*decrease, min(minRate, p.ceiling))
		p.lastCut = now
	}
}

// ok records an answer that was not throttled: recover the rate by
// ceiling/10 requests/s per second of answers (1/cur of that per answer).
func (p *pacer) ok() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur < p.ceiling {
		p.cur = min(p.ceiling, p.cur+p.ceiling/10/p.cur)
	}
}

// current is the tenant's rate now.
func (p *pacer) current() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// sleepUntil waits until t (on the wall clock) or until ctx is done.
func sleepUntil(ctx context.Context, now func() time.Time, t time.Time) error {
	return sleep(ctx, t.Sub(now()))
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
