package probe

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer keeps one tenant under its request rate. Its token bucket has a
// burst of 1, so requests are spaced at least 1/rate apart and no
// one-second window holds more than rate requests, bursts included. On a 429
// the tenant pauses (Retry-After, else backoff) and its rate is halved
// (multiplicative decrease); each success then adds max/50 back (additive
// increase) until the configured rate is reached again.
//
// The bucket is waited on before a request takes a concurrency slot, so a
// request can leave a little later than its token; admit, called right
// before sending, keeps the send times themselves within the rate: it
// remembers the last k = floor(rate) sends (at most maxWindow) and holds a
// send until the one k sends earlier is k/rate seconds old (one second
// whenever rate <= maxWindow).
type pacer struct {
	lim *rate.Limiter
	max float64

	wmu    sync.Mutex
	window []time.Time // ring of the last len(window) send times
	span   time.Duration
	next   int

	mu          sync.Mutex
	cur         float64
	pausedUntil time.Time
}

const minRate = 0.5 // requests per second a throttled tenant never drops below

func newPacer(r float64) *pacer {
	k := min(max(1, int(r)), maxWindow)
	return &pacer{lim: rate.NewLimiter(rate.Limit(r), 1), max: r, cur: r,
		window: make([]time.Time, k), span: time.Duration(float64(k) / r * float64(time.Second))}
}

// maxWindow bounds the memory of the send-time ring of a very fast tenant.
const maxWindow = 512

// admit blocks until a send keeps every one-second window at or under the
// rate, and records the send.
func (p *pacer) admit(ctx context.Context) error {
	for {
		p.wmu.Lock()
		now := time.Now()
		if d := p.window[p.next].Add(p.span).Sub(now); d > 0 {
			p.wmu.Unlock()
			if err := sleep(ctx, d+time.Millisecond); err != nil {
				return err
			}
			continue
		}
		p.window[p.next] = now
		p.next = (p.next + 1) % len(p.window)
		p.wmu.Unlock()
		return nil
	}
}

// wait blocks until the tenant may send one request.
func (p *pacer) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		d := time.Until(p.pausedUntil)
		p.mu.Unlock()
		if d > 0 {
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		if err := p.lim.Wait(ctx); err != nil {
			return err
		}
		p.mu.Lock()
		paused := time.Now().Before(p.pausedUntil)
		p.mu.Unlock()
		if !paused {
			return nil
		}
	}
}

// throttled records a 429: pause the tenant for d and lower its rate.
func (p *pacer) throttled(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := time.Now().Add(d); until.After(p.pausedUntil) {
		p.pausedUntil = until
	}
	p.cur = max(p.cur/2, min(minRate, p.max))
	p.lim.SetLimit(rate.Limit(p.cur))
}

// ok records an answer that was not throttled: recover the rate gradually.
func (p *pacer) ok() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur < p.max {
		p.cur = min(p.max, p.cur+p.max/50)
		p.lim.SetLimit(rate.Limit(p.cur))
	}
}

// current is the tenant's rate now.
func (p *pacer) current() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
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
