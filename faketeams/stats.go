package faketeams

import (
	"maps"
	"strconv"
)

// Stats are the server's counters, also served as JSON at GET /_fake/stats.
type Stats struct {
	// Requests counts answers by route (RouteToken, RouteSendActivity, ...)
	// and status: the HTTP status code as a string, or "reset" for a
	// connection reset and "stalled" for a stalled answer.
	Requests map[string]map[string]int `json:"requests"`
	// Throttled is the number of 429 answers.
	Throttled int `json:"throttled"`
	// MaxTenantRate is, per tenant, the most connector requests seen in any
	// sliding 1 s window (throttled ones included).
	MaxTenantRate map[string]int `json:"maxTenantRate"`
	// TokensIssued counts tokens handed out by the token endpoint.
	TokensIssued int `json:"tokensIssued"`
	// Conversations counts connector requests per conversation id.
	Conversations map[string]int `json:"conversations"`
	// Messages counts, per conversation id, the message activities that
	// may have reached the user: every one the fake read, except those it
	// answered 429 (or 400, 401). A conversation with more than one got
	// the message more than once.
	Messages map[string]int `json:"messages"`
}

func newStats() Stats {
	return Stats{
		Requests:      make(map[string]map[string]int),
		MaxTenantRate: make(map[string]int),
		Conversations: make(map[string]int),
		Messages:      make(map[string]int),
	}
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
		Requests:      make(map[string]map[string]int, len(s.stats.Requests)),
		Throttled:     s.stats.Throttled,
		MaxTenantRate: maps.Clone(s.stats.MaxTenantRate),
		TokensIssued:  s.stats.TokensIssued,
		Conversations: maps.Clone(s.stats.Conversations),
		Messages:      maps.Clone(s.stats.Messages),
	}
	for k, v := range s.stats.Requests {
		out.Requests[k] = maps.Clone(v)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
