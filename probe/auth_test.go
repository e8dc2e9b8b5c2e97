package probe

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/internal/tokentest"
)

// bearers are the distinct tokens a connector saw, in order.
func bearers(conn *connector) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range conn.requests() {
		b := strings.TrimPrefix(r.Auth, "Bearer ")
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// TestTokenExpiredWhileEndpointDown: the token endpoint failing at renewal
// does not stop the run while the token is valid (auth's tests cover
// that); once it expired the run stops as interrupted with what it
// answered so far saved, and the next run resumes the rest.
func TestTokenExpiredWhileEndpointDown(t *testing.T) {
	tok := tokentest.New(t, "")
	var skew atomic.Int64
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if n == 5 {
			tok.Fail(-1)
			skew.Store(int64(6 * time.Minute)) // past the first token's 301 s
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
	cred, err := auth.New(auth.Config{AppID: "app-1", Secret: testSecret, TokenURL: tok.URL,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credential = cred
	p := mustNew(t, cfg)
	err = p.Run(context.Background(), st, 1)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, ErrToken) {
		t.Fatalf("err = %v, want ErrInterrupted (auth.ErrUnavailable), not ErrToken", err)
	}
	if s := err.Error(); strings.Contains(s, testSecret) || strings.Contains(s, "tok-") || strings.Contains(s, "\n") || !strings.Contains(s, "HTTP 503") {
		t.Errorf("error %q: want one line naming HTTP 503, no secret, no token", s)
	}
	sent := len(conn.requests())
	if got := st.count(); got != sent || sent >= len(refs) || sent < 5 {
		t.Errorf("%d results for %d requests of %d references: want every answer saved and the run stopped", got, sent, len(refs))
	}
	tok.Fail(0)
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) || st.dupes != 0 {
		t.Errorf("after resume: %d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
	}
}

// TestUnauthorizedRenewsOnce: a connector 401 (a revoked or rolled-over
// token) makes the probe fetch a fresh token and retry that request once:
// the reference is reachable, with a second token fetched.
func TestUnauthorizedRenewsOnce(t *testing.T) {
	tok := tokentest.New(t, "")
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if r.Auth == "Bearer tok-1" && n >= 3 { // tok-1 revoked after two requests
			return 401, `{"error":{"code":"Unauthorized","message":"Authorization has been denied for this request."}}`, nil
		}
		return 201, `{"id":"1"}`, nil
	})
	var refs []blockreport.Reference
	for i := range 10 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	cfg := testConfig(t, tok.URL, nil)
	cfg.Concurrency = 1
	if err := mustNew(t, cfg).Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		if r := st.result(t, ref.ID); r.Status != blockreport.StatusReachable {
			t.Errorf("reference %d: %s (%s), want reachable", ref.ID, r.Status, r.Detail)
		}
	}
	retried := 0
	for _, ref := range refs {
		if r := st.result(t, ref.ID); r.Attempts == 2 && r.HTTPStatus == 201 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("%d references with 2 attempts ending in HTTP 201, want the one 401'd", retried)
	}
	if issued, _ := tok.Counts(); issued != 2 {
		t.Errorf("%d tokens fetched, want 2", issued)
	}
	if got := bearers(conn); len(got) != 2 || got[0] != "tok-1" || got[1] != "tok-2" {
		t.Errorf("connector saw tokens %v, want tok-1 then tok-2", got)
	}
	if n := len(conn.requests()); n != len(refs)+1 {
		t.Errorf("%d requests, want %d (one retry)", n, len(refs)+1)
	}
}

// TestKeyRolloverRenewsOnceForAll: when the token is rejected while many
// requests are in flight, every one retries once, all with the one token
// fetched by a single renewal.
func TestKeyRolloverRenewsOnceForAll(t *testing.T) {
	tok := tokentest.New(t, "")
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		time.Sleep(5 * time.Millisecond)
		if r.Auth == "Bearer tok-1" && n > 8 {
			return 401, `{"error":{"code":"Unauthorized","message":"denied"}}`, nil
		}
		return 201, `{"id":"1"}`, nil
	})
	var refs []blockreport.Reference
	for i := range 200 {
		refs = append(refs, personal(int64(i+1), []string{"t1", "t2", "t3", "t4"}[i%4], conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	cfg := testConfig(t, tok.URL, nil)
	cfg.Concurrency = 16
	if err := mustNew(t, cfg).Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) {
		t.Fatalf("%d results, want %d", st.count(), len(refs))
	}
	for _, ref := range refs {
		if r := st.result(t, ref.ID); r.Status != blockreport.StatusReachable {
			t.Fatalf("reference %d: %s, want reachable", ref.ID, r.Status)
		}
	}
	if issued, _ := tok.Counts(); issued != 2 {
		t.Errorf("%d tokens fetched, want 2 (one renewal for every 401)", issued)
	}
}

// TestUnauthorizedTwiceInterrupts: a 401 also to the retry with a fresh
// token stops the run at once as interrupted (not failed), naming what to
// check; the answers so far are saved and the next run resumes the rest.
func TestUnauthorizedTwiceInterrupts(t *testing.T) {
	tok := tokentest.New(t, "")
	var registered, after401 atomic.Bool
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if after401.Load() && !registered.Load() {
			t.Errorf("request %s after the second 401", r.Path)
		}
		if n <= 3 || registered.Load() {
			return 200, `{}`, nil
		}
		if n == 5 {
			after401.Store(true)
		}
		return 401, `{"error":{"code":"BotNotRegistered","message":"No registration found for this bot."}}`, nil
	})
	var refs []blockreport.Reference
	for i := range 50 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	var logs bytes.Buffer
	cfg := testConfig(t, tok.URL, &logs)
	cfg.Concurrency = 1 // strict order: the 4th request and its retry are the 401s
	cfg.Rate = 1e6      // the retry right after the renewal is never held back by the pace
	p := mustNew(t, cfg)
	err := p.Run(context.Background(), st, 1)
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrUnauthorized and ErrInterrupted", err)
	}
	for _, want := range []string{"BotNotRegistered", "--app-id", "freshly fetched"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := len(conn.requests()); n != 5 {
		t.Errorf("%d requests, want 5 (the 401, its retry, none after)", n)
	}
	if issued, _ := tok.Counts(); issued != 2 {
		t.Errorf("%d tokens fetched, want 2", issued)
	}
	if n := st.count(); n != 3 {
		t.Errorf("%d results, want 3 (none for the 401'd reference)", n)
	}
	for _, s := range []string{err.Error(), logs.String()} {
		if strings.Contains(s, testSecret) || strings.Contains(s, "tok-") {
			t.Errorf("secret or token leaked: %s", s)
		}
	}
	registered.Store(true) // the bot registration is fixed
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) || st.dupes != 0 {
		t.Errorf("after resume: %d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
	}
}

// TestRenewFailureInterrupts: when the token endpoint refuses the renewal
// after a 401 (the secret was revoked too), the run stops as interrupted
// with the endpoint's reason.
func TestRenewFailureInterrupts(t *testing.T) {
	tok := tokentest.New(t, "")
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if n == 2 {
			tok.Fail(-1)
			return 401, `{}`, nil
		}
		return 200, `{}`, nil
	})
	var refs []blockreport.Reference
	for i := range 5 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	cfg := testConfig(t, tok.URL, nil)
	cfg.Concurrency = 1
	err := mustNew(t, cfg).Run(context.Background(), newMemStore(refs), 1)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "renewing the token after a 401") {
		t.Fatalf("err = %v, want interrupted while renewing after a 401", err)
	}
	if n := len(conn.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestTokenEndpointDownAtStart: with no token yet, a token endpoint
// answering 5xx fails the run at once (ErrToken), after a few quick
// retries, before anything is probed.
func TestTokenEndpointDownAtStart(t *testing.T) {
	tok := tokentest.New(t, "")
	tok.Fail(-1)
	conn := forbidden(t)
	p := mustNew(t, testConfig(t, tok.URL, nil))
	st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
	err := p.Run(context.Background(), st, 1)
	if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err = %v, want ErrToken naming HTTP 503", err)
	}
	if _, failed := tok.Counts(); failed != 3 {
		t.Errorf("token endpoint asked %d times, want 3", failed)
	}
	if st.count() != 0 {
		t.Error("results recorded without a token")
	}
}
