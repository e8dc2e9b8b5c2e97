package faketeams

import (
	"math"
	"net/http"
	"time"
)

// Window is a sliding-window rate limit: at most Requests per Per.
type Window struct {
	Requests int
	Per      time.Duration
}

// Limits are the simulated Teams rate limits
// (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit).
type Limits struct {
	// TenantPerSecond is the global limit per app per tenant, over a
	// sliding 1 s window; 0 disables it.
	TenantPerSecond int
	// ConversationWrites are the per-conversation limits of writes (send
	// activity, create conversation); reads (members) get double. Empty
	// disables them.
	ConversationWrites []Window
}

// DefaultLimits are the documented limits: 50 requests/s per tenant; per
// conversation 7/1 s, 8/2 s, 60/30 s for writes.
func DefaultLimits() Limits {
	return Limits{
		TenantPerSecond: 50,
		ConversationWrites: []Window{
			{7, time.Second}, {8, 2 * time.Second}, {60, 30 * time.Second},
		},
	}
}

// NoLimits disables every rate limit.
func NoLimits() *Limits { return &Limits{} }

// retryAfter returns how long until list (accepted times, oldest first)
// holds fewer than limit entries newer than now-per, or 0 when it already
// does.
func retryAfter(list []time.Time, limit int, per time.Duration, now time.Time) time.Duration {
	if limit <= 0 {
		return 0
	}
	cut := now.Add(-per)
	n := 0
	for i := len(list) - 1; i >= 0 && list[i].After(cut); i-- {
		n++
	}
	if n < limit {
		return 0
	}
	return list[len(list)-limit].Add(per).Sub(now)
}

// trim drops the entries of list not newer than cut.
func trim(list []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(list) && !list[i].After(cut) {
		i++
	}
	if i == 0 {
		return list
	}
	return append(list[:0], list[i:]...)
}

// admit applies the rate limits to a connector request of tenant (and of
// conversation c when known); it answers 429 and returns false when a limit
// is exceeded. Every request counts toward the per-tenant peak rate in
// Stats; only admitted ones count toward the limits.
func (s *Server) admit(w http.ResponseWriter, req request, tenant string, c *conv) bool {
	s.mu.Lock()
	now := s.cfg.Now()
	ts := s.tenants[tenant]
	if ts == nil {
		ts = &tenantState{}
		s.tenants[tenant] = ts
	}
	ts.seen = append(trim(ts.seen, now.Add(-time.Second)), now)
	if n := len(ts.seen); n > s.stats.MaxTenantRate[tenant] {
		s.stats.MaxTenantRate[tenant] = n
	}
	ts.accepted = trim(ts.accepted, now.Add(-time.Second))

	var wait time.Duration
	if now.Before(ts.burstUntil) {
		wait = ts.burstUntil.Sub(now)
	}
	wait = max(wait, retryAfter(ts.accepted, s.limits.TenantPerSecond, time.Second, now))
	var list *[]time.Time
	mult := 1
	if c != nil {
		list = &c.writes
		if !req.write {
			list, mult = &c.reads, 2
		}
		for _, win := range s.limits.ConversationWrites {
			wait = max(wait, retryAfter(*list, win.Requests*mult, win.Per, now))
		}
	}
	if wait > 0 {
		s.mu.Unlock()
		secs := max(1, int(math.Ceil(wait.Seconds())))
		convID := ""
		if c != nil {
			convID = c.ConversationID
		}
		s.reply(w, req.route, tenant, convID, http.StatusTooManyRequests,
			envelope("Throttled", codeMessages["Throttled"]),
			http.Header{"Retry-After": {itoa(secs)}})
		return false
	}
	if s.limits.TenantPerSecond > 0 {
		ts.accepted = append(ts.accepted, now)
	}
	if list != nil && len(s.limits.ConversationWrites) > 0 {
		var longest time.Duration
		for _, win := range s.limits.ConversationWrites {
			longest = max(longest, win.Per)
		}
		*list = append(trim(*list, now.Add(-longest)), now)
	}
	s.mu.Unlock()
	return true
}
