package probe

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

func ok200(recorded, int) (int, string, http.Header) { return 200, `{"id":"act-1"}`, nil }

func TestModesRequestShape(t *testing.T) {
	tok, _ := tokenServer(t)
	tests := []struct {
		name     string
		mode     Mode
		message  string
		ref      blockreport.Reference
		wantReqs []string // "METHOD rawpath?query"
		check    func(t *testing.T, reqs []recorded)
	}{
		{
			name: "typing personal", mode: ModeTyping,
			ref:      blockreport.Reference{TenantID: "t1", UserID: "29:u1", ConversationID: "a:c1;messageid=9", ConversationType: "personal", BotID: "28:bot", Locale: "de-DE"},
			wantReqs: []string{"POST /amer/v3/conversations/a:c1%3Bmessageid=9/activities"},
			check: func(t *testing.T, reqs []recorded) {
				b := reqs[0].Body
				if b["type"] != "typing" || b["channelId"] != "msteams" || b["locale"] != "de-DE" {
					t.Errorf("body = %v", b)
				}
				if b["from"].(map[string]any)["id"] != "28:bot" || b["recipient"].(map[string]any)["id"] != "29:u1" {
					t.Errorf("from/recipient = %v / %v", b["from"], b["recipient"])
				}
				cv := b["conversation"].(map[string]any)
				if cv["id"] != "a:c1;messageid=9" || cv["tenantId"] != "t1" || cv["conversationType"] != "personal" {
					t.Errorf("conversation = %v", cv)
				}
			},
		},
		{
			name: "message text", mode: ModeMessage, message: "Hello from IT\n",
			ref:      blockreport.Reference{TenantID: "t1", UserID: "29:u1", ConversationID: "a:c1", ConversationType: "personal"},
			wantReqs: []string{"POST /amer/v3/conversations/a:c1/activities"},
			check: func(t *testing.T, reqs []recorded) {
				b := reqs[0].Body
				if b["type"] != "message" || b["text"] != "Hello from IT" || b["from"].(map[string]any)["id"] != "28:app-1" {
					t.Errorf("body = %v", b)
				}
			},
		},
		{
			name: "message adaptive card", mode: ModeMessage, message: `{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"hi"}]}`,
			ref:      blockreport.Reference{TenantID: "t1", ConversationID: "19:chan@thread.tacv2", ConversationType: "channel", TeamID: "19:team"},
			wantReqs: []string{"POST /amer/v3/conversations/19:chan@thread.tacv2/activities"},
			check: func(t *testing.T, reqs []recorded) {
				b := reqs[0].Body
				att := b["attachments"].([]any)[0].(map[string]any)
				if att["contentType"] != "application/vnd.microsoft.card.adaptive" || att["content"].(map[string]any)["version"] != "1.4" {
					t.Errorf("attachment = %v", att)
				}
				if _, ok := b["recipient"]; ok {
					t.Errorf("channel activity has a recipient: %v", b)
				}
			},
		},
		{
			name: "members personal", mode: ModeMembers,
			ref:      blockreport.Reference{TenantID: "t1", UserID: "29:u/1", ConversationID: "a:c1", ConversationType: "personal"},
			wantReqs: []string{"GET /amer/v3/conversations/a:c1/members/29:u%2F1"},
		},
		{
			name: "members channel", mode: ModeMembers,
			ref:      blockreport.Reference{TenantID: "t1", ConversationID: "19:chan@thread.tacv2", ConversationType: "channel"},
			wantReqs: []string{"GET /amer/v3/conversations/19:chan@thread.tacv2/pagedmembers?pageSize=1"},
		},
		{
			name: "members group chat", mode: ModeMembers,
			ref:      blockreport.Reference{TenantID: "t1", UserID: "29:u1", ConversationID: "19:g@thread.v2", ConversationType: "groupChat"},
			wantReqs: []string{"GET /amer/v3/conversations/19:g@thread.v2/pagedmembers?pageSize=1"},
		},
		{
			name: "create conversation first", mode: ModeTyping,
			ref:      blockreport.Reference{TenantID: "t1", UserID: "29:u1", ConversationType: "personal"},
			wantReqs: []string{"POST /amer/v3/conversations", "POST /amer/v3/conversations/a:new/activities"},
			check: func(t *testing.T, reqs []recorded) {
				b := reqs[0].Body
				m := b["members"].([]any)[0].(map[string]any)
				ten := b["channelData"].(map[string]any)["tenant"].(map[string]any)
				if m["id"] != "29:u1" || ten["id"] != "t1" || b["bot"].(map[string]any)["id"] != "28:app-1" || b["isGroup"] != false {
					t.Errorf("create body = %v", b)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
				if r.Path == "/amer/v3/conversations" {
					return 201, `{"id":"a:new"}`, nil
				}
				return 200, `{"id":"x"}`, nil
			})
			cfg := testConfig(t, tok.URL, nil)
			cfg.Mode, cfg.Message = tt.mode, []byte(tt.message)
			p := mustNew(t, cfg)
			ref := tt.ref
			ref.ID = 1
			ref.ServiceURL = conn.URL + "/amer/" // ends in "/": no doubled slash
			st := newMemStore([]blockreport.Reference{ref})
			if err := p.Run(context.Background(), st, 7); err != nil {
				t.Fatal(err)
			}
			reqs := conn.requests()
			var got []string
			for _, r := range reqs {
				s := r.Method + " " + r.RawPath
				if r.Query != "" {
					s += "?" + r.Query
				}
				got = append(got, s)
				if r.Auth != "Bearer tok-abc" {
					t.Errorf("Authorization = %q", r.Auth)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantReqs, "\n") {
				t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantReqs, "\n"))
			}
			if tt.check != nil {
				tt.check(t, reqs)
			}
			res := st.result(t, 1)
			if res.Status != blockreport.StatusReachable || res.RunID != 7 {
				t.Errorf("result = %+v", res)
			}
			if tt.ref.ConversationID == "" && res.NewConversationID != "a:new" {
				t.Errorf("NewConversationID = %q, want a:new", res.NewConversationID)
			}
		})
	}
}

// TestCreateConversationWithoutID: a create-conversation answer that is 2xx
// but carries no conversation id is a failed result (nothing is sent after
// it), not a crash and not a reachable user.
func TestCreateConversationWithoutID(t *testing.T) {
	tok, _ := tokenServer(t)
	for _, body := range []string{`{}`, `{"id":""}`, `not json`} {
		t.Run(body, func(t *testing.T) {
			conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
				return 201, body, nil
			})
			p := mustNew(t, testConfig(t, tok.URL, nil))
			st := newMemStore([]blockreport.Reference{{ID: 1, TenantID: "t1", UserID: "29:u1",
				ConversationType: "personal", ServiceURL: conn.URL + "/amer/"}})
			if err := p.Run(context.Background(), st, 7); err != nil {
				t.Fatal(err)
			}
			if n := len(conn.requests()); n != 1 {
				t.Errorf("%d requests, want only the create-conversation call", n)
			}
			res := st.result(t, 1)
			if res.Status != blockreport.StatusFailed || res.Reason != reasonBadResponse || res.HTTPStatus != 201 ||
				res.Attempts != 1 || res.NewConversationID != "" {
				t.Errorf("result = %+v, want failed BadResponse after one 201", res)
			}
		})
	}
}

func TestStatusesFromAnswers(t *testing.T) {
	tok, _ := tokenServer(t)
	answers := map[string]struct {
		status int
		body   string
		want   blockreport.Status
	}{
		"a:ok":      {200, `{}`, blockreport.StatusReachable},
		"a:blocked": {403, `{"error":{"code":"ConversationBlockedByUser","message":"User blocked the conversation with the bot."}}`, blockreport.StatusBlocked},
		"a:writes":  {403, `{"errorCode":209,"message":"{\r\n\"subCode\":\"MessageWritesBlocked\"}"}`, blockreport.StatusBlocked},
		"a:roster":  {403, `{"error":{"code":"BotNotInConversationRoster"}}`, blockreport.StatusUninstalled},
		"a:admin":   {403, `{"error":{"code":"BotDisabledByAdmin"}}`, blockreport.StatusAdminDisabled},
		"a:gone":    {404, `{"error":{"code":"ConversationNotFound"}}`, blockreport.StatusNotFound},
		"a:empty":   {403, ``, blockreport.StatusForbidden},
		"a:500":     {500, `{"error":{"code":"ServiceError"}}`, blockreport.StatusFailed},
		"a:400":     {400, `{"error":{"code":"Bad Argument"}}`, blockreport.StatusFailed},
		"a:429":     {429, ``, blockreport.StatusThrottled},
		"a:302":     {302, ``, blockreport.StatusFailed},
	}
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		conv := strings.Split(r.Path, "/")[4]
		a := answers[conv]
		h := http.Header{}
		if a.status == 302 {
			h.Set("Location", "http://127.0.0.1:1/elsewhere")
		}
		if a.status == 429 {
			h.Set("Retry-After", "0")
		}
		return a.status, a.body, h
	})
	var refs []blockreport.Reference
	for conv := range answers {
		refs = append(refs, blockreport.Reference{TenantID: "t1", UserID: "29:u", ConversationID: conv, ConversationType: "personal", ServiceURL: conn.URL + "/amer/"})
	}
	refs = append(refs,
		blockreport.Reference{TenantID: "t1", UserID: "29:u", ConversationID: "a:opted", ServiceURL: conn.URL + "/amer/", OptedOut: true},
		blockreport.Reference{TenantID: "t1", ConversationID: "19:c@thread.tacv2", ConversationType: "channel", ServiceURL: "::not a url"},
		blockreport.Reference{TenantID: "t2", ConversationType: "channel", ServiceURL: conn.URL + "/amer/"},
		blockreport.Reference{ConversationID: "a:no-tenant", ServiceURL: conn.URL + "/amer/"},
	)
	st := newMemStore(refs)
	p := mustNew(t, testConfig(t, tok.URL, nil))
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		res := st.result(t, ref.ID)
		want := answers[ref.ConversationID].want
		switch {
		case ref.OptedOut:
			want = blockreport.StatusOptedOut
		case want == "":
			want = blockreport.StatusInvalid
		}
		if res.Status != want {
			t.Errorf("%s: status %q (%s: %s), want %q", ref.ConversationID, res.Status, res.Reason, res.Detail, want)
		}
		if res.Reason == "" {
			t.Errorf("%s: empty reason", ref.ConversationID)
		}
	}
	for _, r := range conn.requests() {
		if strings.Contains(r.Path, "opted") || strings.Contains(r.Path, "no-tenant") {
			t.Errorf("request for a reference that must not be probed: %s", r.Path)
		}
	}
	if got := p.Progress(); got.Done != len(refs) || got.ByStatus[blockreport.StatusBlocked] != 2 {
		t.Errorf("progress = %+v", got)
	}
	if st.result(t, refs[len(refs)-4].ID).Attempts != 0 {
		t.Error("opted-out reference counted an attempt")
	}
}

func TestAllowListAndRedirect(t *testing.T) {
	tok, _ := tokenServer(t)
	evil := forbidden(t)
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		h := http.Header{}
		h.Set("Location", evil.URL+"/steal")
		return http.StatusTemporaryRedirect, ``, h
	})
	// The allowed host is "localhost"; the evil listener is reached by
	// 127.0.0.1, a different host name, so it is not allowed.
	local := strings.Replace(conn.URL, "127.0.0.1", "localhost", 1)
	refs := []blockreport.Reference{
		{TenantID: "t", ConversationID: "a:1", ServiceURL: local + "/amer/"},                       // redirected
		{TenantID: "t", ConversationID: "a:2", ServiceURL: evil.URL + "/amer/"},                    // host not allowed
		{TenantID: "t", ConversationID: "a:3", ServiceURL: "https://evil.example/amer/"},           // host not allowed
		{TenantID: "t", ConversationID: "a:4", ServiceURL: "http://smba.trafficmanager.net/amer/"}, // http to a cloud host
		{TenantID: "t", ConversationID: "a:5", ServiceURL: "https://user:pw@smba.trafficmanager.net/amer/"},
		{TenantID: "t", ConversationID: "a:6", ServiceURL: "https://smba.trafficmanager.net.evil.example/amer/"},
		{TenantID: "t", ConversationID: "a:7", ServiceURL: "https://smba.trafficmanager.net:8443/amer/"},
	}
	st := newMemStore(refs)
	cfg := testConfig(t, tok.URL, nil)
	cfg.AllowHosts = []string{"localhost"}
	p := mustNew(t, cfg)
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if r := st.result(t, 1); r.Status != blockreport.StatusFailed || r.HTTPStatus != 307 {
		t.Errorf("redirected: %+v, want failed 307", r)
	}
	for _, ref := range refs[1:] {
		if r := st.result(t, ref.ID); r.Status != blockreport.StatusInvalid {
			t.Errorf("%s: %+v, want invalid", ref.ServiceURL, r)
		}
	}
	if n := len(conn.requests()); n != 1 {
		t.Errorf("connector got %d requests, want 1 (no retry of a redirect)", n)
	}
}

func TestAllowListRules(t *testing.T) {
	a, err := newAllowList(clouds[CloudPublic].hosts, []string{"LocalHost", "10.0.0.5", "[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"https://smba.trafficmanager.net/amer/":             true,
		"https://SMBA.trafficmanager.net/amer/":             true,
		"https://smba.trafficmanager.net:443/amer/":         true,
		"https://smba.infra.gcc.teams.microsoft.com/teams/": true,
		"https://smba.trafficmanager.net:444/amer/":         false,
		"http://smba.trafficmanager.net/amer/":              false,
		"https://smba.infra.gov.teams.microsoft.us/teams/":  false,
		"http://localhost:8080/amer/":                       true,
		"https://10.0.0.5:9999/x/":                          true,
		"http://10.0.0.5/x/":                                false, // http only for loopback
		"http://[::1]:80/x/":                                true,
		"http://127.0.0.1/x/":                               false, // loopback but not named
		"ftp://localhost/x/":                                false,
	} {
		u, err := serviceBase(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := a.check(u) == nil; got != want {
			t.Errorf("check(%s) = %v, want %v", raw, got, want)
		}
	}
	if _, err := newAllowList(nil, []string{"https://x"}); err == nil {
		t.Error("allow host with a scheme accepted")
	}
}

func TestJoin(t *testing.T) {
	for _, tt := range []struct{ base, want string }{
		{"https://smba.trafficmanager.net/amer/", "https://smba.trafficmanager.net/amer/v3/conversations/a:1%3Bm=2/activities"},
		{"https://smba.trafficmanager.net/amer", "https://smba.trafficmanager.net/amer/v3/conversations/a:1%3Bm=2/activities"},
		{"https://smba.trafficmanager.net/", "https://smba.trafficmanager.net/v3/conversations/a:1%3Bm=2/activities"},
		{"https://smba.trafficmanager.net", "https://smba.trafficmanager.net/v3/conversations/a:1%3Bm=2/activities"},
	} {
		b, err := serviceBase(tt.base)
		if err != nil {
			t.Fatal(err)
		}
		if got := join(b, "", "v3", "conversations", "a:1;m=2", "activities").String(); got != tt.want {
			t.Errorf("join(%s) = %s, want %s", tt.base, got, tt.want)
		}
	}
}

func TestRetries(t *testing.T) {
	tok, _ := tokenServer(t)
	tests := []struct {
		name         string
		attempts     int
		answers      []int
		retryAfter   string
		want         blockreport.Status
		wantAttempts int
	}{
		{"503 503 200", 3, []int{503, 503, 200}, "", blockreport.StatusReachable, 3},
		{"503 until exhausted", 3, []int{503, 503, 503, 200}, "", blockreport.StatusFailed, 3},
		{"500 not retried", 5, []int{500, 200}, "", blockreport.StatusFailed, 1},
		{"412 502 504 retried", 4, []int{412, 502, 504, 200}, "", blockreport.StatusReachable, 4},
		{"403 not retried", 4, []int{403, 200}, "", blockreport.StatusForbidden, 1},
		{"429 Retry-After honoured", 3, []int{429, 200}, "1", blockreport.StatusReachable, 2},
		{"429 without Retry-After", 3, []int{429, 429, 429}, "", blockreport.StatusThrottled, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
				h := http.Header{}
				if tt.retryAfter != "" {
					h.Set("Retry-After", tt.retryAfter)
				}
				if n > len(tt.answers) {
					t.Errorf("request %d beyond the %d expected", n, len(tt.answers))
					return 200, "", nil
				}
				return tt.answers[n-1], "", h
			})
			cfg := testConfig(t, tok.URL, nil)
			cfg.Attempts = tt.attempts
			p := mustNew(t, cfg)
			st := newMemStore([]blockreport.Reference{{TenantID: "t", ConversationID: "a:1", ServiceURL: conn.URL + "/amer/"}})
			if err := p.Run(context.Background(), st, 1); err != nil {
				t.Fatal(err)
			}
			r := st.result(t, 1)
			if r.Status != tt.want || r.Attempts != tt.wantAttempts {
				t.Errorf("result %s after %d attempts, want %s after %d", r.Status, r.Attempts, tt.want, tt.wantAttempts)
			}
			if tt.retryAfter != "" {
				reqs := conn.requests()
				if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
					t.Errorf("retry came %v after the 429, want >= Retry-After 1s", gap)
				}
			}
		})
	}
}

func TestNetworkErrorsRetriedThenFailed(t *testing.T) {
	tok, _ := tokenServer(t)
	var calls atomic.Int32
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) { return 200, "", nil })
	// A handler that drops the connection without answering.
	conn.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	cfg := testConfig(t, tok.URL, nil)
	cfg.Attempts = 4
	p := mustNew(t, cfg)
	st := newMemStore([]blockreport.Reference{{TenantID: "t", ConversationID: "a:1", ServiceURL: conn.URL + "/amer/"}})
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	r := st.result(t, 1)
	if r.Status != blockreport.StatusFailed || r.Reason != reasonNetwork || r.Attempts != 4 || calls.Load() != 4 {
		t.Errorf("result %+v after %d calls, want failed NetworkError after 4", r, calls.Load())
	}
	if strings.Contains(r.Detail, "tok-abc") || strings.Contains(r.Detail, conn.URL) {
		t.Errorf("detail %q carries the token or URL", r.Detail)
	}
}

func TestTimeout(t *testing.T) {
	tok, _ := tokenServer(t)
	release := make(chan struct{})
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		<-release
		return 200, "", nil
	})
	defer close(release)
	cfg := testConfig(t, tok.URL, nil)
	cfg.Timeout, cfg.Attempts = 20*time.Millisecond, 2
	p := mustNew(t, cfg)
	st := newMemStore([]blockreport.Reference{{TenantID: "t", ConversationID: "a:1", ServiceURL: conn.URL + "/amer/"}})
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if r := st.result(t, 1); r.Status != blockreport.StatusFailed || r.Reason != reasonTimeout || r.Attempts != 2 {
		t.Errorf("result %+v, want failed Timeout after 2 attempts", r)
	}
}

func TestInvalidBotAPIHostRetriesOnGCC(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if strings.HasPrefix(r.Path, "/gcc/") {
			return 200, `{}`, nil
		}
		return 403, `{"error":{"code":"InvalidBotApiHost","message":"Invalid bot api host. For GCC tenants, please call https://smba.infra.gcc.teams.microsoft.com."}}`, nil
	})
	cfg := testConfig(t, tok.URL, nil)
	cfg.GCCServiceURL = conn.URL + "/gcc/"
	p := mustNew(t, cfg)
	st := newMemStore([]blockreport.Reference{{TenantID: "t", ConversationID: "a:1", ServiceURL: conn.URL + "/amer/"}})
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if r := st.result(t, 1); r.Status != blockreport.StatusReachable || r.Attempts != 2 {
		t.Errorf("result %+v, want reachable after 2 attempts", r)
	}
	reqs := conn.requests()
	if len(reqs) != 2 || reqs[1].Path != "/gcc/v3/conversations/a:1/activities" {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestTokenFailures(t *testing.T) {
	tok, _ := tokenServer(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/tenant/oauth2/v2.0/token"
	dead.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	tests := []struct {
		name, tokenURL, secret, wantText string
	}{
		{"wrong secret", tok.URL, "wrong-" + testSecret, "wrong or expired secret"},
		{"unreachable", deadURL, testSecret, "unreachable"},
		{"not a token endpoint", notFound.URL + "/x", testSecret, "answered HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := forbidden(t)
			var logs bytes.Buffer
			cfg := testConfig(t, tt.tokenURL, &logs)
			cfg.Credential = testCredential(t, tt.tokenURL, tt.secret, cfg.Logger)
			p := mustNew(t, cfg)
			st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
			err := p.Run(context.Background(), st, 1)
			if !errors.Is(err, ErrToken) {
				t.Fatalf("err = %v, want ErrToken", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			for _, s := range []string{err.Error(), logs.String()} {
				if strings.Contains(s, testSecret) || strings.Contains(s, "s3cr3t") {
					t.Errorf("secret leaked: %s", s)
				}
			}
			if st.count() != 0 {
				t.Error("results recorded despite the token failure")
			}
		})
	}
}

func TestTokenIsSharedAndReused(t *testing.T) {
	tok, calls := tokenServer(t)
	conn := newConnector(t, ok200)
	var refs []blockreport.Reference
	for i := range 40 {
		refs = append(refs, personal(int64(i+1), []string{"t1", "t2"}[i%2], conn.URL+"/amer/"))
	}
	p := mustNew(t, testConfig(t, tok.URL, nil))
	if err := p.Run(context.Background(), newMemStore(refs), 1); err != nil {
		t.Fatal(err)
	}
	if *calls != 1 {
		t.Errorf("token endpoint called %d times, want 1", *calls)
	}
}

func TestStoreErrorStopsRun(t *testing.T) {
	tok, _ := tokenServer(t)
	conn := newConnector(t, ok200)
	st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
	st.saveErr = errBoom
	p := mustNew(t, testConfig(t, tok.URL, nil))
	if err := p.Run(context.Background(), st, 3); !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "run 3") {
		t.Fatalf("err = %v, want the store error naming run 3", err)
	}
}

func TestInterruptKeepsInFlightAndResumes(t *testing.T) {
	tok, _ := tokenServer(t)
	var started atomic.Int32
	gate := make(chan struct{})
	conn := newConnector(t, func(r recorded, n int) (int, string, http.Header) {
		if started.Add(1) == 5 {
			close(gate) // cancel while requests are in flight
		}
		time.Sleep(30 * time.Millisecond)
		return 200, `{}`, nil
	})
	var refs []blockreport.Reference
	for i := range 200 {
		refs = append(refs, personal(int64(i+1), []string{"t1", "t2", "t3"}[i%3], conn.URL+"/amer/"))
	}
	st := newMemStore(refs)
	p := mustNew(t, testConfig(t, tok.URL, nil))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-gate; cancel() }()
	err := p.Run(ctx, st, 1)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	sent := len(conn.requests())
	if got := st.count(); got != sent {
		t.Errorf("%d results for %d requests sent: in-flight probes must finish and be saved", got, sent)
	}
	if sent >= len(refs) {
		t.Fatalf("cancellation did not stop dispatch (%d requests)", sent)
	}
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	if st.count() != len(refs) || st.dupes != 0 {
		t.Errorf("after resume: %d results, %d duplicates; want %d, 0", st.count(), st.dupes, len(refs))
	}
	if n := len(conn.requests()); n != len(refs) {
		t.Errorf("%d requests in total, want %d (nothing probed twice)", n, len(refs))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := Config{AppID: "a", Credential: testCredential(t, "https://login.example/t/oauth2/v2.0/token", "p", nil)}
	for name, mod := range map[string]func(*Config){
		"no app id":        func(c *Config) { c.AppID = "" },
		"no credential":    func(c *Config) { c.Credential = nil },
		"bad cloud":        func(c *Config) { c.Cloud = "mars" },
		"bad mode":         func(c *Config) { c.Mode = "poke" },
		"message no file":  func(c *Config) { c.Mode = ModeMessage },
		"message bad JSON": func(c *Config) { c.Mode, c.Message = ModeMessage, []byte(`{"type":`) },
		"message JSON not a card": func(c *Config) {
			c.Mode, c.Message = ModeMessage, []byte(`{"type":"Other"}`)
		},
		"GCC URL not allowed": func(c *Config) { c.GCCServiceURL = "https://gcc.example/" },
	} {
		c := base
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted the config", name)
		} else if strings.Contains(err.Error(), "p\"") {
			t.Errorf("%s: error mentions the password: %v", name, err)
		}
	}
	for _, c := range []Cloud{CloudPublic, CloudGCC, CloudGCCH, CloudDoD} {
		cfg := base
		cfg.Cloud = c
		if _, err := New(cfg); err != nil {
			t.Errorf("cloud %s: %v", c, err)
		}
	}
}

// TestMessageTooBig: a message whose activity is over Teams' 100 KB (as
// UTF-16) is refused by CheckMessage and New, with ErrMessageTooBig; one
// under it passes.
func TestMessageTooBig(t *testing.T) {
	tok, _ := tokenServer(t)
	for _, tt := range []struct {
		name string
		msg  string
		big  bool
	}{
		{"short text", "Hello", false},
		{"48 KB of ASCII text", strings.Repeat("a", 48<<10), false},
		{"51 KB of ASCII text", strings.Repeat("a", 51<<10), true},
		{"an Adaptive Card over the limit", `{"type":"AdaptiveCard","body":[{"type":"TextBlock","text":"` + strings.Repeat("é", 60<<10) + `"}]}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckMessage([]byte(tt.msg))
			if got := errors.Is(err, ErrMessageTooBig); got != tt.big {
				t.Fatalf("CheckMessage: %v, want too big %v", err, tt.big)
			}
			cfg := testConfig(t, tok.URL, nil)
			cfg.Mode, cfg.Message = ModeMessage, []byte(tt.msg)
			_, err = New(cfg)
			if got := errors.Is(err, ErrMessageTooBig); got != tt.big {
				t.Fatalf("New: %v, want too big %v", err, tt.big)
			}
			if tt.big && !strings.Contains(err.Error(), "100 KB") {
				t.Errorf("error %q does not name the limit", err)
			}
		})
	}
}
