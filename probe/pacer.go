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
// by first attempts and retries.
//
// Its rate adapts (AIMD): it starts at the ceiling (--rate); a 429 pauses
// the tenant (Retry-After, else backoff) and halves the rate, once per
// pause: only a 429 to a request sent after the last decrease lowers it
// again. Every other answer adds ceiling/20 requests/s per second of
// answers back (additive increase) up to the ceiling.
//
// Requests ask for a send time (reserve) and wait for it without holding a
// connection slot. Holding one, right before the request goes out, take
// checks the hard guarantee: consecutive sends are at least minGap =
// 1 s / floor(ceiling) apart, so no sliding 1 s window holds more than
// floor(ceiling) sends, however late slots free up, bursts included; and
// nothing is sent while the tenant is paused. When take refuses, the
// caller gives its slot back before it waits.
type pacer struct {
	now     func() time.Time
	ceiling float64
	minGap  time.Duration

	mu          sync.Mutex
	cur         float64   // current rate, in [floor, ceiling]
	next        time.Time // earliest time the next reservation gets
	last        time.Time // the last send
	pausedUntil time.Time
	lastCut     time.Time // when the rate was last halved
}

const minRate = 0.5 // requests per second a throttled tenant never drops below

func newPacer(ceiling float64, now func() time.Time) *pacer {
	if now == nil {
		now = time.Now
	}
	// Integer nanoseconds rounded up: k sends minGap apart span
	// (k-1)·minGap, which is under 1 s only for k <= floor(ceiling).
	n := math.Floor(ceiling)
	if n < 1 {
		n = ceiling // under 1/s: one send per 1/ceiling seconds
	}
	gap := time.Duration(math.Ceil(float64(time.Second) / n))
	return &pacer{now: now, ceiling: ceiling, minGap: gap, cur: ceiling}
}

// gap is the spacing of reservations at the current rate (at least minGap).
func (p *pacer) gap() time.Duration {
	return max(p.minGap, time.Duration(math.Ceil(float64(time.Second)/p.cur)))
}

// reserve returns the time at which the caller may send and books it.
func (p *pacer) reserve() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if p.next.After(t) {
		t = p.next
	}
	if p.pausedUntil.After(t) {
		t = p.pausedUntil
	}
	p.next = t.Add(p.gap())
	return t
}

// take is called holding a connection slot, right before the request is
// sent: it records the send and returns 0, or how long to wait before
// asking again when another send went out less than minGap ago, or
// paused when the tenant is paused. Either way the caller gives the slot
// back first; after a pause it reserves a new time (asking again at the
// pause's end would wake every waiter together).
//
// A late send does not push the schedule: the sends behind it wait at
// most minGap each, and the tenant keeps its pace.
func (p *pacer) take() (wait time.Duration, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.pausedUntil) {
		return p.pausedUntil.Sub(now), true
	}
	if !p.last.IsZero() {
		if d := p.last.Add(p.minGap).Sub(now); d > 0 {
			return d, false
		}
	}
	p.last = now
	return 0, false
}

// throttled records a 429 to a request sent at sentAt: pause the tenant
// for d and, once per pause, halve its rate.
func (p *pacer) throttled(sentAt time.Time, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if until := now.Add(d); until.After(p.pausedUntil) {
		p.pausedUntil = until
	}
	if p.lastCut.IsZero() || sentAt.After(p.lastCut) {
		p.cur = max(p.cur/2, min(minRate, p.ceiling))
		p.lastCut = now
	}
}

// ok records an answer that was not throttled: recover the rate by
// ceiling/20 requests/s per second of answers (1/cur of that per answer).
func (p *pacer) ok() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur < p.ceiling {
		p.cur = min(p.ceiling, p.cur+p.ceiling/20/p.cur)
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
