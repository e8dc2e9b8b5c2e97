package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

func messageConfig(t *testing.T, tokenURL string) Config {
	t.Helper()
	cfg := testConfig(t, tokenURL, nil)
	cfg.Mode, cfg.Message = ModeMessage, []byte("Hello from IT")
	return cfg
}

// TestMessageModeRetryRule: in message mode only a 429 is answered by
// sending again; a 412 or 5xx ends as failed/DeliveryUnknown after exactly
// one request, where typing mode retries the same answers.
func TestMessageModeRetryRule(t *testing.T) {
	tok, _ := tokenServer(t)
	blocked := `{"error":{"code":"ConversationBlockedByUser","message":"User blocked the conversation with the bot."}}`
	tooBig := `{"error":{"code":"MessageSizeTooBig","message":"Message size too large."}}`
	tests := []struct {
		name       string
		mode       Mode
		answers    []int
		body       string
		want       blockreport.Status
		wantReason string
		wantSent   int
	}{
		{"429 then 201", ModeMessage, []int{429, 201}, "", blockreport.StatusReachable, "HTTP 201", 2},
		{"429 until exhausted", ModeMessage, []int{429, 429, 429, 429}, "", blockreport.StatusThrottled, "HTTP 429", 4},
		{"412", ModeMessage, []int{412, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 1},
		{"500", ModeMessage, []int{500, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 1},
		{"502", ModeMessage, []int{502, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 1},
		{"503", ModeMessage, []int{503, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 1},
		{"504", ModeMessage, []int{504, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 1},
		{"429 then 503", ModeMessage, []int{429, 503, 201}, "", blockreport.StatusFailed, ReasonDeliveryUnknown, 2},
		{"403 blocked", ModeMessage, []int{403}, blocked, blockreport.StatusBlocked, "ConversationBlockedByUser", 1},
		{"400 refused", ModeMessage, []int{400, 201}, "", blockreport.StatusFailed, "HTTP 400", 1},
		{"413 never retried", ModeMessage, []int{413, 201}, tooBig, blockreport.StatusFailed, CodeMessageSizeTooBig, 1},
		{"typing: 413 never retried", ModeTyping, []int{413, 201}, tooBig, blockreport.StatusFailed, CodeMessageSizeTooBig, 1},
		{"typing keeps retrying 503", ModeTyping, []int{503, 504, 412, 201}, "", blockreport.StatusReachable, "HTTP 201", 4},
		{"members keeps retrying 502", ModeMembers, []int{502, 200}, "", blockreport.StatusReachable, "HTTP 200", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
				if n > len(tt.answers) {
					t.Errorf("request %d beyond the %d expected", n, len(tt.answers))
					return 201, "", nil
				}
				return tt.answers[n-1], tt.body, http.Header{"Retry-After": {"0"}}
			})
			cfg := messageConfig(t, tok.URL)
			cfg.Mode = tt.mode
			p := mustNew(t, cfg)
			st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
			if err := p.Run(context.Background(), st, 1); err != nil {
				t.Fatal(err)
			}
			r := st.result(t, 1)
			if r.Status != tt.want || r.Reason != tt.wantReason || len(conn.requests()) != tt.wantSent {
				t.Errorf("result %s %s (%s) after %d requests; want %s %s after %d",
					r.Status, r.Reason, r.Detail, len(conn.requests()), tt.want, tt.wantReason, tt.wantSent)
			}
			if tt.wantReason == ReasonDeliveryUnknown && (r.HTTPStatus != tt.answers[tt.wantSent-1] || r.Detail == "") {
				t.Errorf("DeliveryUnknown result %+v lacks the HTTP status or the detail", r)
			}
		})
	}
}

// TestMessageLateAnswerAndReset: an answer later than --timeout and a
// connection reset after the request was read end as DeliveryUnknown after
// one request; the same faults are retried in typing mode.
func TestMessageLateAnswerAndReset(t *testing.T) {
	tok, _ := tokenServer(t)
	for _, fault := range []string{"late", "reset"} {
		for _, mode := range []Mode{ModeMessage, ModeTyping} {
			t.Run(fault+" "+string(mode), func(t *testing.T) {
				var arrived atomic.Int32
				release := make(chan struct{})
				conn := newConnector(t, nil)
				conn.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived.Add(1)
					buf := make([]byte, 1<<16)
					for { // read the whole request: it was delivered
						if _, err := r.Body.Read(buf); err != nil {
							break
						}
					}
					if fault == "late" {
						select {
						case <-release:
						case <-time.After(2 * time.Second):
						}
						w.WriteHeader(201)
						return
					}
					c, _, _ := w.(http.Hijacker).Hijack()
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				})
				defer close(release)
				cfg := messageConfig(t, tok.URL)
				cfg.Mode, cfg.Timeout, cfg.Attempts = mode, 100*time.Millisecond, 3
				p := mustNew(t, cfg)
				st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
				if err := p.Run(context.Background(), st, 1); err != nil {
					t.Fatal(err)
				}
				r := st.result(t, 1)
				if mode == ModeMessage {
					if r.Status != blockreport.StatusFailed || r.Reason != ReasonDeliveryUnknown || arrived.Load() != 1 {
						t.Errorf("result %+v after %d requests; want failed DeliveryUnknown after exactly 1", r, arrived.Load())
					}
					return
				}
				if r.Status != blockreport.StatusFailed || r.Reason == ReasonDeliveryUnknown || arrived.Load() != 3 {
					t.Errorf("typing: result %s %s after %d requests; want failed after 3 attempts", r.Status, r.Reason, arrived.Load())
				}
			})
		}
	}
}

// TestMessageTransportDoesNotResend: a server that reads the whole message
// on a reused keep-alive connection and then closes it without answering
// gets the message once; neither blockreport nor Go's transport sends it
// again.
func TestMessageTransportDoesNotResend(t *testing.T) {
	tok, _ := tokenServer(t)
	var mu sync.Mutex
	perConv := map[string]int{}
	conn := newConnector(t, nil)
	conn.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1<<16)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		mu.Lock()
		perConv[r.URL.Path]++
		n := len(perConv)
		mu.Unlock()
		if n%2 == 0 { // every second conversation: drop the connection unanswered
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.WriteHeader(201) // keep-alive: the next request reuses this connection
	})
	cfg := messageConfig(t, tok.URL)
	cfg.Concurrency, cfg.Attempts = 1, 5
	p := mustNew(t, cfg)
	var refs []blockreport.Reference
	for i := range 10 {
		r := personal(int64(i+1), "t", conn.URL+"/amer/")
		r.ConversationID = fmt.Sprintf("a:c%d", i)
		refs = append(refs, r)
	}
	st := newMemStore(refs)
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	unknown := 0
	mu.Lock()
	defer mu.Unlock()
	for path, n := range perConv {
		if n != 1 {
			t.Errorf("%s got %d messages, want 1", path, n)
		}
	}
	for _, r := range refs {
		if st.result(t, r.ID).Reason == ReasonDeliveryUnknown {
			unknown++
		}
	}
	if len(perConv) != 10 || unknown != 5 {
		t.Errorf("%d conversations reached, %d DeliveryUnknown; want 10 and 5", len(perConv), unknown)
	}
}

// TestMessageRetriedBeforeWrite: a connection that fails before any of the
// request was written proves nothing was delivered: the message is sent
// again and arrives once.
func TestMessageRetriedBeforeWrite(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, func(recorded, int) (int, string, http.Header) { return 201, `{"id":"1"}`, nil })
	connHost := host(t, conn.URL) + ":" + conn.URL[strings.LastIndex(conn.URL, ":")+1:]
	var dials atomic.Int32
	dialer := &net.Dialer{}
	cfg := messageConfig(t, tok.URL)
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == connHost && dials.Add(1) <= 2 {
				return nil, errors.New("connect: connection refused (test)")
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	p := mustNew(t, cfg)
	st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	r := st.result(t, 1)
	if r.Status != blockreport.StatusReachable || r.Attempts != 3 || len(conn.requests()) != 1 {
		t.Errorf("result %+v after %d requests; want reachable on attempt 3, one message", r, len(conn.requests()))
	}
}

// TestMessageStrandedClaim: a conversation already claimed in the run (by
// a process that died) is not sent to: it gets failed/DeliveryUnknown.
func TestMessageStrandedClaim(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, func(recorded, int) (int, string, http.Header) { return 201, `{"id":"1"}`, nil })
	var refs []blockreport.Reference
	for i := range 5 {
		refs = append(refs, personal(int64(i+1), "t", conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	st.claims[2], st.claims[4] = true, true
	if err := mustNew(t, messageConfig(t, tok.URL)).Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(conn.requests()); n != 3 {
		t.Errorf("%d messages sent, want 3 (two were claimed already)", n)
	}
	for _, id := range []int64{2, 4} {
		if r := st.result(t, id); r.Status != blockreport.StatusFailed || r.Reason != ReasonDeliveryUnknown {
			t.Errorf("reference %d: %+v, want failed DeliveryUnknown", id, r)
		}
	}
	if st.result(t, 1).Status != blockreport.StatusReachable {
		t.Errorf("reference 1: %+v", st.result(t, 1))
	}
}

// TestMessageInterruptReleasesUnsent: after a cancellation, only messages
// that went out stay claimed; what was claimed but not sent is released,
// so the resume sends it, and nobody gets two.
func TestMessageInterruptReleasesUnsent(t *testing.T) {
	tok, _ := tokenServer(t)
	var started atomic.Int32
	gate := make(chan struct{})
	var mu sync.Mutex
	perConv := map[string]int{}
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if started.Add(1) == 20 {
			close(gate)
		}
		mu.Lock()
		perConv[r.Path]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return 201, `{"id":"1"}`, nil
	})
	var refs []blockreport.Reference
	for i := range 120 {
		r := personal(int64(i+1), []string{"t1", "t2"}[i%2], conn.URL+"/amer/")
		r.ConversationID = fmt.Sprintf("a:c%d", i)
		refs = append(refs, r)
	}
	st := newMemStore(refs)
	cfg := messageConfig(t, tok.URL)
	cfg.Rate, cfg.ClaimBatch = 200, 10
	p := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-gate; cancel() }()
	if err := p.Run(ctx, st, 1); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if un := st.unanswered(); len(un) != 0 {
		t.Errorf("claims without a result after a clean stop: %v (they would become DeliveryUnknown)", un)
	}
	if st.count() >= len(refs) {
		t.Fatalf("the stop came too late: %d results", st.count())
	}
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) {
		t.Errorf("%d results after resume, want %d", st.count(), len(refs))
	}
	mu.Lock()
	defer mu.Unlock()
	var twice []string
	for id, n := range perConv {
		if n != 1 {
			twice = append(twice, id)
		}
	}
	if len(perConv) != len(refs) || len(twice) > 0 {
		t.Errorf("%d conversations messaged, want %d; more than one message: %v", len(perConv), len(refs), twice)
	}
}

// TestMessageNeedsSendLog: a store that cannot record sends cannot run
// message mode; nothing is sent.
func TestMessageNeedsSendLog(t *testing.T) {
	tok, _ := tokenServer(t)
	srv := forbidden(t)
	st := struct{ Store }{newMemStore([]blockreport.Reference{personal(1, "t", srv.URL+"/amer/")})}
	if err := mustNew(t, messageConfig(t, tok.URL)).Run(context.Background(), st, 1); !errors.Is(err, errNoSendLog) {
		t.Errorf("err = %v, want errNoSendLog", err)
	}
}

// TestMessageClaimFailureStopsRun: a store that cannot record the claim
// stops the run before anything is sent.
func TestMessageClaimFailureStopsRun(t *testing.T) {
	tok, _ := tokenServer(t)
	srv := forbidden(t)
	st := newMemStore([]blockreport.Reference{personal(1, "t", srv.URL+"/amer/"), personal(2, "t", srv.URL+"/amer/")})
	st.claimErr = errBoom
	err := mustNew(t, messageConfig(t, tok.URL)).Run(context.Background(), st, 1)
	if !errors.Is(err, errBoom) || st.count() != 0 {
		t.Errorf("err = %v with %d results; want the claim error and none", err, st.count())
	}
}

// TestDeliveryUnknownRule pins the rule itself.
func TestDeliveryUnknownRule(t *testing.T) {
	netErr := errors.New("read: connection reset by peer")
	for _, tt := range []struct {
		o    outcome
		want bool
	}{
		{outcome{status: 201}, false},
		{outcome{status: 429}, false},
		{outcome{status: 403}, false},
		{outcome{status: 404}, false},
		{outcome{status: 307}, false},
		{outcome{status: 412}, true},
		{outcome{status: 500}, true},
		{outcome{status: 503}, true},
		{outcome{status: 504}, true},
		{outcome{err: netErr, written: false}, false},
		{outcome{err: netErr, written: true}, true},
		{outcome{err: context.DeadlineExceeded, written: true}, true},
	} {
		if got := deliveryUnknown(tt.o); got != tt.want {
			t.Errorf("deliveryUnknown(%+v) = %v, want %v", tt.o, got, tt.want)
		}
	}
	if got := []int{claimBatch(40, 0), claimBatch(2, 0), claimBatch(1000, 0), claimBatch(40, 3)}; !slices.Equal(got, []int{10, 1, 25, 3}) {
		t.Errorf("claimBatch = %v", got)
	}
}
