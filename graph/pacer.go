package graph

import (
	"context"
	"sync"
	"time"
)

// window paces requests to at most limit per sliding second, a request
// counting n (a $batch counts its members): the same shape as Graph's
// "requests per second per app per tenant", so a full batch never pushes
// a second over the limit the way a token bucket's burst would.
type window struct {
	limit int
	now   func() time.Time

	mu   sync.Mutex
	sent []stamp // oldest first, within the last second
	used int     // sum of sent[i].n
}

// span is the window: a second, and a little more, so that requests the
// client counted in one second do not arrive in the server's next one
// bunched up with the following ones.
const span = time.Second + 25*time.Millisecond

type stamp struct {
	at time.Time
	n  int
}

func newWindow(perSecond float64, now func() time.Time) *window {
	return &window{limit: max(1, int(perSecond)), now: now}
}

// wait blocks until n more requests fit in the last second, then counts
// them.
func (w *window) wait(ctx context.Context, n int) error {
	n = max(1, min(n, w.limit))
	for {
		w.mu.Lock()
		now := w.now()
		cut := now.Add(-span)
		i := 0
		for i < len(w.sent) && !w.sent[i].at.After(cut) {
			w.used -= w.sent[i].n
			i++
		}
		w.sent = w.sent[i:]
		if w.used+n <= w.limit {
			w.sent = append(w.sent, stamp{now, n})
			w.used += n
			w.mu.Unlock()
			return nil
		}
		// Wait until enough of the oldest stamps leave the window.
		need, j := w.used+n-w.limit, 0
		for ; j < len(w.sent) && need > 0; j++ {
			need -= w.sent[j].n
		}
		d := w.sent[j-1].at.Add(span).Sub(now) + time.Millisecond
		w.mu.Unlock()
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}
