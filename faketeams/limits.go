package faketeams

import (
	"math"
	"net/http"
	"sort"
	"time"
	"unicode/utf8"
)

// Window is a sliding-window rate limit: at most Requests per Per.
type Window struct {
	Requests int
	Per      time.Duration
}

// Limits are the simulated Teams rate limits
// (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit,
// 2026-10-08).
type Limits struct {
	// TenantPerSecond is the global limit per app per tenant, over a
	// sliding 1 s window; 0 disables it.
	TenantPerSecond int
	// ConversationWrites are the per-conversation limits of writes (send
	// activity, create conversation); reads (members) get double. Empty
	// disables them.
	ConversationWrites []Window
}

// TenantLimit is the documented limit of requests per second per app per
// tenant.
const TenantLimit = 50

// DefaultLimits are the documented limits: 50 requests/s per app per
// tenant; per conversation 7/1 s, 8/2 s, 60/30 s and 1,800/3,600 s for
// writes, double for reads.
func DefaultLimits() Limits {
	return Limits{
		TenantPerSecond: TenantLimit,
		ConversationWrites: []Window{
			{7, time.Second}, {8, 2 * time.Second}, {60, 30 * time.Second}, {1800, time.Hour},
		},
	}
}

// NoLimits disables every rate limit.
func NoLimits() *Limits { return &Limits{} }

// MaxMessageBytes is the documented size limit of a bot message: 100 KB of
// the activity encoded as UTF-16 ("format your bot messages"; older
// versions said 40 KB). A larger activity is answered 413
// MessageSizeTooBig.
const MaxMessageBytes = 100 << 10

// utf16Size is the size of b (UTF-8 JSON) once encoded as UTF-16.
func utf16Size(b []byte) int {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r >= 0x10000 {
			n += 4
		} else {
			n += 2
		}
	}
	return n
}

// countIn is the number of times in list (oldest first) within the sliding
// window (now-per, now].
func countIn(list []time.Time, per time.Duration, now time.Time) int {
	cut := now.Add(-per)
	i := sort.Search(len(list), func(i int) bool { return list[i].After(cut) })
	return len(list) - i
}

// retryAfter returns how long until list (accepted times, oldest first)
// holds fewer than limit entries within (now-per, now], or 0 when it
// already does.
func retryAfter(list []time.Time, limit int, per time.Duration, now time.Time) time.Duration {
	if limit <= 0 || countIn(list, per, now) < limit {
		return 0
	}
	return list[len(list)-limit].Add(per).Sub(now)
}

// trim drops the entries of list not newer than cut.
func trim(list []time.Time, cut time.Time) []time.Time {
	i := sort.Search(len(list), func(i int) bool { return list[i].After(cut) })
	if i == 0 {
		return list
	}
	return append(list[:0], list[i:]...)
}

// peak records n in a busiest-window counter.
func peak(p *int, n int) {
	if n > *p {
		*p = n
	}
}

// admit counts a connector request of tenant (and of conversation c when
// known) at its arrival and applies the rate limits: it returns 0, or the
// 429 to answer. Every arriving request counts toward the busiest windows
// in Stats (throttled ones included); only admitted ones count toward the
// limits.
func (s *Server) admit(req request, tenant string, c *conv) (int, []byte, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	ts := s.tenants[tenant]
	if ts == nil {
		ts = &tenantState{}
		s.tenants[tenant] = ts
	}
	ts.seen = append(trim(ts.seen, now.Add(-time.Second)), now)
	peak(&ts.peak.Arrived, len(ts.seen))
	if ts.peak.Requests == 0 {
		ts.peak.First = now
	}
	ts.peak.Requests++
	ts.peak.Last = now
	if n := len(ts.seen); n > s.stats.MaxTenantRate[tenant] {
		s.stats.MaxTenantRate[tenant] = n
	}
	ts.accepted = trim(ts.accepted, now.Add(-time.Second))

	var wait time.Duration
	if now.Before(ts.burstUntil) {
		wait = ts.burstUntil.Sub(now)
	}
	wait = max(wait, retryAfter(ts.accepted, s.limits.TenantPerSecond, time.Second, now))
	wins := s.limits.ConversationWrites
	var accepted, seen *[]time.Time
	var peaks []int
	mult, kind := 1, kindWrite
	if c != nil && len(wins) > 0 {
		accepted, seen, peaks = &c.writes, &c.seenWrites, c.peakWrites
		if !req.write {
			accepted, seen, peaks, mult, kind = &c.reads, &c.seenReads, c.peakReads, 2, kindRead
		}
		if peaks == nil {
			peaks = make([]int, len(wins))
			if req.write {
				c.peakWrites = peaks
			} else {
				c.peakReads = peaks
			}
		}
		longest := wins[len(wins)-1].Per
		for _, win := range wins {
			longest = max(longest, win.Per)
		}
		*seen = append(trim(*seen, now.Add(-longest)), now)
		*accepted = trim(*accepted, now.Add(-longest))
		for i, win := range wins {
			peak(&peaks[i], countIn(*seen, win.Per, now))
			s.stats.conversationPeak(kind, i, win, mult, c.ConversationID, peaks[i])
			wait = max(wait, retryAfter(*accepted, win.Requests*mult, win.Per, now))
		}
	}
	if wait > 0 {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		return http.StatusTooManyRequests, envelope("Throttled", codeMessages["Throttled"]),
			http.Header{"Retry-After": {itoa(secs)}}
	}
	ts.accepted = append(ts.accepted, now)
	peak(&ts.peak.Accepted, len(ts.accepted))
	if accepted != nil {
		*accepted = append(*accepted, now)
	}
	return 0, nil, nil
}

// arrivalJitter draws the delay before a request reaches the door.
func (s *Server) arrivalJitter() time.Duration {
	if s.cfg.ArrivalJitter <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.rng.Int64N(int64(s.cfg.ArrivalJitter)))
}
