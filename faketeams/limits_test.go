package faketeams

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestConversationLimits(t *testing.T) {
	type burst struct {
		advance    time.Duration // before the burst
		n          int           // requests
		okFirst    int           // how many succeed before 429s
		retryAfter string        // Retry-After of the 429s
	}
	tests := []struct {
		name   string
		read   bool
		bursts []burst
	}{
		{"writes 7 per second", false, []burst{{0, 8, 7, "1"}}},
		{"writes 8 per 2 seconds", false, []burst{{0, 7, 7, ""}, {1100 * time.Millisecond, 2, 1, "1"}}},
		{"writes 60 per 30 seconds", false, []burst{
			{0, 7, 7, ""}, {2 * time.Second, 7, 7, ""}, {2 * time.Second, 7, 7, ""}, {2 * time.Second, 7, 7, ""},
			{2 * time.Second, 7, 7, ""}, {2 * time.Second, 7, 7, ""}, {2 * time.Second, 7, 7, ""}, {2 * time.Second, 7, 7, ""},
			{2 * time.Second, 5, 4, "14"}, // 60 accepted in 16 s; the oldest leaves the 30 s window in 14 s
		}},
		{"reads 14 per second", true, []burst{{0, 15, 14, "1"}}},
		{"reads 16 per 2 seconds", true, []burst{{0, 14, 14, ""}, {1100 * time.Millisecond, 3, 2, "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			other := conversation("other", StateActive)
			s := start(t, Config{
				Population: []Conversation{conversation("x", StateActive), other},
				Limits:     &Limits{ConversationWrites: DefaultLimits().ConversationWrites},
				Now:        clock.Now,
			})
			tok := token(t, s)
			send := func() answer {
				if tt.read {
					return call(t, "GET", s.URL()+"/amer/v3/conversations/a:x/pagedmembers", tok, "")
				}
				return call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, `{"type":"message"}`)
			}
			throttled := 0
			for bi, b := range tt.bursts {
				clock.Advance(b.advance)
				for i := 0; i < b.n; i++ {
					got := send()
					want := http.StatusOK
					if !tt.read {
						want = http.StatusCreated
					}
					if i >= b.okFirst {
						want = http.StatusTooManyRequests
						throttled++
					}
					if got.status != want {
						t.Fatalf("burst %d request %d: %d, want %d", bi, i, got.status, want)
					}
					if want == http.StatusTooManyRequests {
						if ra := got.header.Get("Retry-After"); ra != b.retryAfter || errorCode(got.body) != "Throttled" {
							t.Fatalf("burst %d: 429 Retry-After %q body %s, want %q", bi, ra, got.body, b.retryAfter)
						}
					}
				}
			}
			// Another conversation of the same tenant is unaffected.
			if got := call(t, "POST", activitiesURL(s, "amer", other.ConversationID), tok, `{"type":"message"}`); got.status != 201 {
				t.Errorf("other conversation: %d", got.status)
			}
			if st := s.Stats(); st.Throttled != throttled {
				t.Errorf("stats throttled %d, want %d", st.Throttled, throttled)
			}
		})
	}
}

func TestTenantLimit(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var pop []Conversation
	for i := range 60 {
		pop = append(pop, conversation(fmt.Sprint(i), StateActive))
	}
	other := conversation("other-tenant", StateActive)
	other.TenantID = "22222222-2222-4222-8222-222222222222"
	pop = append(pop, other)
	tests := []struct {
		name   string
		limits *Limits
		okN    int
	}{
		{"default 50/s", nil, 50},
		{"configured 10/s", &Limits{TenantPerSecond: 10}, 10},
		{"disabled", NoLimits(), 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Config{Population: pop, Limits: tt.limits, Now: clock.Now})
			tok := token(t, s)
			for i := range 60 {
				got := call(t, "POST", activitiesURL(s, "amer", pop[i].ConversationID), tok, `{"type":"message"}`)
				want := 201
				if i >= tt.okN {
					want = 429
				}
				if got.status != want {
					t.Fatalf("request %d: %d, want %d", i, got.status, want)
				}
				if want == 429 && got.header.Get("Retry-After") != "1" {
					t.Fatalf("Retry-After %q", got.header.Get("Retry-After"))
				}
			}
			// Create-conversation counts against the tenant in its body.
			create := `{"members":[{"id":"29:user-0"}],"channelData":{"tenant":{"id":"` + tenantA + `"}}}`
			if got := call(t, "POST", s.URL()+"/amer/v3/conversations", tok, create); tt.okN < 60 && got.status != 429 {
				t.Errorf("create in a throttled tenant: %d", got.status)
			}
			// The other tenant has its own budget.
			if got := call(t, "POST", activitiesURL(s, "amer", other.ConversationID), tok, `{"type":"message"}`); got.status != 201 {
				t.Errorf("other tenant: %d", got.status)
			}
			clock.Advance(1001 * time.Millisecond)
			if got := call(t, "POST", activitiesURL(s, "amer", pop[0].ConversationID), tok, `{"type":"message"}`); got.status != 201 {
				t.Errorf("after the window: %d", got.status)
			}
			st := s.Stats()
			if st.MaxTenantRate[tenantA] != 61 || st.MaxTenantRate[other.TenantID] != 1 {
				t.Errorf("max tenant rate %v", st.MaxTenantRate)
			}
		})
	}
}

// paced sends one message every `every` of clock time, round-robin over
// tenants, each to a conversation not used before, for total requests:
// one at a time, each answered before the clock moves on, so what the
// fake counts does not depend on how busy the machine is.
func paced(t *testing.T, s *Server, clock *fakeClock, tok string, tenants []string, every time.Duration, total int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := range total {
		clock.Advance(every)
		tenant := tenants[i%len(tenants)]
		u := activitiesURL(s, "amer", fmt.Sprintf("a:%s-%d", tenant, i/len(tenants)))
		req, _ := http.NewRequest("POST", u, strings.NewReader(`{"type":"message"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", u, err)
		}
		resp.Body.Close()
	}
}

func pacedPopulation(tenants []string, perTenant int) []Conversation {
	var pop []Conversation
	for _, tn := range tenants {
		for j := range perTenant {
			c := conversation(fmt.Sprintf("%s-%d", tn, j), StateActive)
			c.TenantID = tn
			c.ConversationType = blockreport.ConversationPersonal
			pop = append(pop, c)
		}
	}
	return pop
}

// TestTenantRateMustShow is the must-show: with 4 tenants at 50
// requests/s each, 400 requests/s in total gets 429s, while 40 requests/s
// per tenant gets none. It runs on a fake clock and asserts on the stats.
func TestTenantRateMustShow(t *testing.T) {
	tenants := []string{"tenant-1", "tenant-2", "tenant-3", "tenant-4"}
	t.Run("400 per second gets 429s", func(t *testing.T) {
		clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := start(t, Config{Population: pacedPopulation(tenants, 100), Now: clock.Now})
		paced(t, s, clock, token(t, s), tenants, time.Second/400, 400) // 1 s of traffic
		st := s.Stats()
		if st.Throttled == 0 || st.Count(RouteSendActivity, "429") != st.Throttled {
			t.Errorf("throttled %d, 429s %d: want some", st.Throttled, st.Count(RouteSendActivity, "429"))
		}
		for _, tn := range tenants {
			if st.MaxTenantRate[tn] <= 50 {
				t.Errorf("tenant %s peak %d requests/s, want > 50", tn, st.MaxTenantRate[tn])
			}
		}
		t.Logf("throttled %d of 400; peaks %v", st.Throttled, st.MaxTenantRate)
	})
	t.Run("40 per second per tenant gets none", func(t *testing.T) {
		clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := start(t, Config{Population: pacedPopulation(tenants, 80), Now: clock.Now})
		paced(t, s, clock, token(t, s), tenants, time.Second/160, 320) // 2 s of traffic
		st := s.Stats()
		if st.Throttled != 0 || st.Count(RouteSendActivity, "201") != 320 {
			t.Errorf("throttled %d, accepted %d of 320", st.Throttled, st.Count(RouteSendActivity, "201"))
		}
		for _, tn := range tenants {
			if p := st.MaxTenantRate[tn]; p > 50 || p == 0 {
				t.Errorf("tenant %s peak %d requests/s", tn, p)
			}
		}
		t.Logf("peaks %v", st.MaxTenantRate)
	})
}
