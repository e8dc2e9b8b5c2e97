package faketeams

import (
	"maps"
	"slices"
	"strconv"
	"time"
)

// Stats are the server's counters, also served as JSON at GET /_fake/stats.
type Stats struct {
	// Requests counts answers by route (RouteToken, RouteSendActivity, ...)
	// and status: the HTTP status code as a string, or "reset" for a
	// connection reset and "stalled" for a stalled answer.
	Requests map[string]map[string]int `json:"requests"`
	// Throttled is the number of 429 answers.
	Throttled int `json:"throttled"`
	// MaxTenantRate is, per tenant, the most connector requests that
	// arrived in any sliding 1 s window (throttled ones included): the same
	// as TenantWindows[tenant].Arrived.
	MaxTenantRate map[string]int `json:"maxTenantRate"`
	// TenantWindows is, per tenant, its busiest sliding 1 s window, counted
	// when requests arrive (before the simulated latency).
	TenantWindows map[string]TenantWindow `json:"tenantWindows"`
	// ConversationWindows is, for each per-conversation window (writes,
	// then reads, shortest first), the conversation whose busiest window
	// of that length held the most arriving requests.
	ConversationWindows []ConversationWindow `json:"conversationWindows,omitempty"`
	// TokensIssued counts tokens handed out by the token endpoint.
	TokensIssued int `json:"tokensIssued"`
	// Conversations counts connector requests per conversation id.
	Conversations map[string]int `json:"conversations"`
	// Messages counts, per conversation id, the message activities that
	// may have reached the user: every one the fake read, except those it
	// answered 429 (or 400, 401, 413). A conversation with more than one got
	// the message more than once.
	Messages map[string]int `json:"messages"`
}

// TenantWindow is a tenant's busiest sliding 1 s window, and all its
// requests from the first to the last arrival.
type TenantWindow struct {
	Arrived  int `json:"arrived"`  // requests that arrived, throttled ones included
	Accepted int `json:"accepted"` // requests let through (not answered 429)
	Limit    int `json:"limit"`    // the tenant limit (0: none)

	Requests int       `json:"requests"` // every request that arrived
	First    time.Time `json:"first"`    // arrival of the first
	Last     time.Time `json:"last"`     // arrival of the last
}

// Rate is the tenant's requests per second between its first and last
// arrival: what it sent while it was being probed (0 for one request).
func (w TenantWindow) Rate() float64 {
	if d := w.Last.Sub(w.First).Seconds(); d > 0 {
		return float64(w.Requests-1) / d
	}
	return 0
}

// Kinds of ConversationWindow.
const (
	kindWrite = "write" // send activity, create conversation
	kindRead  = "read"  // get member, paged members
)

// ConversationWindow is the busiest conversation for one window length.
type ConversationWindow struct {
	Kind         string        `json:"kind"` // "write" or "read"
	Window       time.Duration `json:"-"`
	Seconds      float64       `json:"seconds"` // Window in seconds
	Limit        int           `json:"limit"`
	Arrived      int           `json:"arrived"` // requests (throttled ones included) in its busiest window
	Conversation string        `json:"conversation"`
}

// String is "write 1s: 3 of 7 (a:x)".
func (w ConversationWindow) String() string {
	return w.Kind + " " + w.Window.String() + ": " + itoa(w.Arrived) + " of " + itoa(w.Limit) + " (" + w.Conversation + ")"
}

func newStats() Stats {
	return Stats{
		Requests:      make(map[string]map[string]int),
		MaxTenantRate: make(map[string]int),
		TenantWindows: make(map[string]TenantWindow),
		Conversations: make(map[string]int),
		Messages:      make(map[string]int),
	}
}

// conversationPeak raises the busiest count of window i of kind to n for
// conversation id when n beats it.
func (st *Stats) conversationPeak(kind string, i int, win Window, mult int, id string, n int) {
	for j := range st.ConversationWindows {
		w := &st.ConversationWindows[j]
		if w.Kind == kind && w.Window == win.Per {
			if n > w.Arrived {
				w.Arrived, w.Conversation = n, id
			}
			return
		}
	}
	st.ConversationWindows = append(st.ConversationWindows, ConversationWindow{
		Kind: kind, Window: win.Per, Seconds: win.Per.Seconds(), Limit: win.Requests * mult, Arrived: n, Conversation: id,
	})
	slices.SortFunc(st.ConversationWindows, func(a, b ConversationWindow) int {
		if a.Kind != b.Kind {
			if a.Kind == kindWrite {
				return -1
			}
			return 1
		}
		return int(a.Window - b.Window)
	})
}

// Count is the number of answers of route with status (see Requests).
func (st Stats) Count(route, status string) int { return st.Requests[route][status] }

// Total is the number of answers of route, every status.
func (st Stats) Total(route string) int {
	n := 0
	for _, c := range st.Requests[route] {
		n += c
	}
	return n
}

// Window returns the busiest conversation of kind ("write" or "read") for
// the window length per.
func (st Stats) Window(kind string, per time.Duration) (ConversationWindow, bool) {
	for _, w := range st.ConversationWindows {
		if w.Kind == kind && w.Window == per {
			return w, true
		}
	}
	return ConversationWindow{}, false
}

func (st *Stats) count(route, status, convID string) {
	m := st.Requests[route]
	if m == nil {
		m = make(map[string]int)
		st.Requests[route] = m
	}
	m[status]++
	if convID != "" {
		st.Conversations[convID]++
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{
		Requests:            make(map[string]map[string]int, len(s.stats.Requests)),
		Throttled:           s.stats.Throttled,
		MaxTenantRate:       maps.Clone(s.stats.MaxTenantRate),
		TenantWindows:       make(map[string]TenantWindow, len(s.tenants)),
		ConversationWindows: slices.Clone(s.stats.ConversationWindows),
		TokensIssued:        s.stats.TokensIssued,
		Conversations:       maps.Clone(s.stats.Conversations),
		Messages:            maps.Clone(s.stats.Messages),
	}
	for k, v := range s.stats.Requests {
		out.Requests[k] = maps.Clone(v)
	}
	for k, ts := range s.tenants {
		w := ts.peak
		w.Limit = s.limits.TenantPerSecond
		if w.Arrived > 0 {
			out.TenantWindows[k] = w
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
