package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// flakyTokens is a token endpoint whose first token expires just after the
// refresh window opens (expires_in 301 s against a 300 s window; later ones
// last an hour) and that answers 503 while fail says so.
type flakyTokens struct {
	*httptest.Server
	mu     sync.Mutex
	fail   int // 503s still to give; -1: forever
	issued int
	failed int
}

func newFlakyTokens(t *testing.T) *flakyTokens {
	t.Helper()
	f := &flakyTokens{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if f.fail != 0 {
			if f.fail > 0 {
				f.fail--
			}
			f.failed++
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: busy"}`)
			return
		}
		f.issued++
		expires := 3600
		if f.issued == 1 {
			expires = int(refreshEarly/time.Second) + 1
		}
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`, expires, f.issued)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flakyTokens) set(fail int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *flakyTokens) counts() (issued, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued, f.failed
}

// TestTokenRenewalFailures: a token endpoint failing when the shared token
// is renewed does not fail the run while the token is valid; once it
// expired the run stops as interrupted (resumable), its results saved.
func TestTokenRenewalFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fail    int           // 503s at renewal; -1: forever
		skew    time.Duration // clock moved forward at the 5th request
		wantErr bool
		bearers []string // tokens the connector saw
	}{
		{"503 once at renewal", 1, 2 * time.Second, false, []string{"tok-1", "tok-2"}},
		{"503 forever, token still valid", -1, 2 * time.Second, false, []string{"tok-1"}},
		{"503 forever after expiry", -1, refreshEarly + 2*time.Second, true, []string{"tok-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := newFlakyTokens(t)
			var skew atomic.Int64
			conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
				if n == 5 {
					tok.set(tt.fail)
					skew.Store(int64(tt.skew))
				}
				return 200, `{}`, nil
			})
			var refs []blockreport.Reference
			for i := range 20 {
				refs = append(refs, personal(int64(i+1), []string{"t1", "t2"}[i%2], conn.URL+"/amer/"))
			}
			st := newMemStore(refs)
			cfg := testConfig(t, tok.URL, nil)
			cfg.Concurrency = 1
			p := mustNew(t, cfg)
			p.tokens.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			p.tokens.pause = func(time.Duration) {}

			err := p.Run(context.Background(), st, 1)
			bearers := map[string]bool{}
			for _, r := range conn.requests() {
				bearers[strings.TrimPrefix(r.Auth, "Bearer ")] = true
			}
			for _, b := range tt.bearers {
				if !bearers[b] {
					t.Errorf("no request carried %s (saw %v)", b, bearers)
				}
			}
			if len(bearers) != len(tt.bearers) {
				t.Errorf("requests carried %v, want %v", bearers, tt.bearers)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("run failed: %v", err)
				}
				if st.count() != len(refs) {
					t.Errorf("%d results, want %d", st.count(), len(refs))
				}
				return
			}
			if !errors.Is(err, ErrInterrupted) || errors.Is(err, ErrToken) {
				t.Fatalf("err = %v, want ErrInterrupted and not ErrToken", err)
			}
			if s := err.Error(); strings.Contains(s, testSecret) || strings.Contains(s, "tok-") || strings.Contains(s, "\n") || !strings.Contains(s, "HTTP 503") {
				t.Errorf("error %q: want one line naming HTTP 503, no secret, no token", s)
			}
			sent := len(conn.requests())
			if got := st.count(); got != sent || sent >= len(refs) || sent < 5 {
				t.Errorf("%d results for %d requests of %d references: want every answer saved and the run stopped", got, sent, len(refs))
			}
			if _, failed := tok.counts(); failed > tokenAttempts*2 {
				t.Errorf("token endpoint asked %d times while failing: the retries are not bounded", failed)
			}
			// The endpoint is back: the next run resumes the rest.
			tok.set(0)
			skew.Store(0)
			if err := p.Run(context.Background(), st, 1); err != nil {
				t.Fatal(err)
			}
			if st.count() != len(refs) || st.dupes != 0 {
				t.Errorf("after resume: %d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
			}
		})
	}
}

// TestTokenEndpointDownAtStart: with no token yet, a token endpoint
// answering 5xx fails the run at once as a configuration error, after a
// few quick retries.
func TestTokenEndpointDownAtStart(t *testing.T) {
	tok := newFlakyTokens(t)
	tok.set(-1)
	conn := forbidden(t)
	p := mustNew(t, testConfig(t, tok.URL, nil))
	p.tokens.pause = func(time.Duration) {}
	st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
	err := p.Run(context.Background(), st, 1)
	if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err = %v, want ErrToken naming HTTP 503", err)
	}
	if _, failed := tok.counts(); failed != tokenAttempts {
		t.Errorf("token endpoint asked %d times, want %d", failed, tokenAttempts)
	}
	if st.count() != 0 {
		t.Error("results recorded without a token")
	}
}
