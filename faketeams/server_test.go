package faketeams

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

const tenantA = "11111111-1111-4111-8111-111111111111"

// conversation returns a personal conversation in tenantA named after id.
func conversation(id string, st State) Conversation {
	return Conversation{
		TenantID: tenantA, UserID: "29:user-" + id, AADObjectID: "aad-" + id,
		UserName: "User " + id, Email: id + "@contoso.example",
		ConversationID: "a:" + id, ConversationType: blockreport.ConversationPersonal, State: st,
	}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func tokenForm(id, secret, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {scope}}
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := http.PostForm(s.TokenURL("botframework.com"), tokenForm(DefaultAppID, DefaultAppSecret, Scope))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token: status %d, %+v, %v", resp.StatusCode, tok, err)
	}
	return tok.AccessToken
}

type answer struct {
	status int
	body   string
	header http.Header
}

func call(t *testing.T, method, u, tok, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, string(b), resp.Header}
}

// errorCode extracts error.code of an envelope, or "" when absent.
func errorCode(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal([]byte(body), &e) //nolint:errcheck
	return e.Error.Code
}

// subCode extracts the subCode of the Teams 209 shape, or "".
func subCode(t *testing.T, body string) string {
	t.Helper()
	var outer struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal([]byte(body), &outer) != nil || outer.ErrorCode != 209 {
		return ""
	}
	var inner struct{ SubCode string }
	if err := json.Unmarshal([]byte(outer.Message), &inner); err != nil {
		t.Fatalf("inner message is not JSON: %v", err)
	}
	return inner.SubCode
}

func activitiesURL(s *Server, prefix, conv string) string {
	return s.URL() + "/" + prefix + "/v3/conversations/" + url.PathEscape(conv) + "/activities"
}

func TestStatesByRoute(t *testing.T) {
	pop := []Conversation{
		conversation("active", StateActive),
		conversation("blocked", StateBlocked),
		conversation("uninstalled", StateUninstalled),
		conversation("admin", StateAdminDisabled),
		conversation("deleted", StateDeleted),
		conversation("notinstalled", StateNotInstalled),
		conversation("empty", StateForbiddenEmpty),
		conversation("other", StateForbiddenOther),
	}
	crlf := conversation("crlf", StateBlocked)
	crlf.BlockShape = BlockTeamsCRLF
	lf := conversation("lf", StateBlocked)
	lf.BlockShape = BlockTeamsLF
	gcc := conversation("gcc", StateActive)
	gcc.GCC = true
	pop = append(pop, crlf, lf, gcc)
	s := start(t, Config{Population: pop, Limits: NoLimits()})
	tok := token(t, s)

	type want struct {
		status int
		code   string // envelope code, "209" for the Teams shape, "" for empty body
	}
	routes := []struct {
		name string
		do   func(c Conversation, prefix string) answer
	}{
		{"message", func(c Conversation, p string) answer {
			return call(t, "POST", activitiesURL(s, p, c.ConversationID), tok, `{"type":"message","text":"hi"}`)
		}},
		{"typing", func(c Conversation, p string) answer {
			return call(t, "POST", activitiesURL(s, p, c.ConversationID), tok, `{"type":"typing"}`)
		}},
		{"member", func(c Conversation, p string) answer {
			return call(t, "GET", s.URL()+"/"+p+"/v3/conversations/"+url.PathEscape(c.ConversationID)+"/members/"+url.PathEscape(c.UserID), tok, "")
		}},
		{"paged", func(c Conversation, p string) answer {
			return call(t, "GET", s.URL()+"/"+p+"/v3/conversations/"+c.ConversationID+"/pagedmembers?pageSize=1", tok, "")
		}},
		{"create", func(c Conversation, p string) answer {
			return call(t, "POST", s.URL()+"/"+p+"/v3/conversations", tok,
				`{"bot":{"id":"28:x"},"members":[{"id":"`+c.UserID+`"}],"channelData":{"tenant":{"id":"`+c.TenantID+`"}}}`)
		}},
	}
	states := []struct {
		conv   Conversation
		prefix string
		want   want
		create want // answer of create-conversation
	}{
		{pop[0], "amer", want{200, ""}, want{201, ""}},
		{pop[1], "emea", want{403, "ConversationBlockedByUser"}, want{403, "ConversationBlockedByUser"}},
		{pop[2], "teams", want{403, "BotNotInConversationRoster"}, want{403, "BotNotInConversationRoster"}},
		{pop[3], "amer", want{403, "BotDisabledByAdmin"}, want{201, ""}},
		{pop[4], "amer", want{404, "ConversationNotFound"}, want{404, "ConversationNotFound"}},
		{pop[5], "amer", want{403, "ForbiddenOperationException"}, want{403, "ForbiddenOperationException"}},
		{pop[6], "amer", want{403, ""}, want{403, ""}},
		{pop[7], "amer", want{403, "NotEnoughPermissions"}, want{403, "NotEnoughPermissions"}},
		{crlf, "amer", want{403, "209"}, want{403, "209"}},
		{lf, "amer", want{403, "209"}, want{403, "209"}},
		{gcc, "amer", want{403, "InvalidBotApiHost"}, want{403, "InvalidBotApiHost"}},
		{gcc, "gcc", want{200, ""}, want{201, ""}},
	}
	for _, st := range states {
		for _, rt := range routes {
			t.Run(st.conv.ConversationID+"/"+st.prefix+"/"+rt.name, func(t *testing.T) {
				w := st.want
				if rt.name == "create" {
					w = st.create
				} else if st.conv.State == StateBlocked && (rt.name == "member" || rt.name == "paged") {
					w = want{200, ""} // a blocked user is still in the roster
				} else if w.status == 200 && (rt.name == "message" || rt.name == "typing") {
					w.status = 201
				}
				got := rt.do(st.conv, st.prefix)
				if got.status != w.status {
					t.Fatalf("status %d, want %d (body %s)", got.status, w.status, got.body)
				}
				switch {
				case w.code == "209":
					if sc := subCode(t, got.body); sc != "MessageWritesBlocked" {
						t.Errorf("subCode %q in %s", sc, got.body)
					}
				case w.code != "":
					if c := errorCode(got.body); c != w.code {
						t.Errorf("code %q, want %q (body %s)", c, w.code, got.body)
					}
				case w.status >= 400:
					if got.body != "" {
						t.Errorf("body %q, want empty", got.body)
					}
				case rt.name == "create":
					if !strings.Contains(got.body, `"id":"`+st.conv.ConversationID+`"`) {
						t.Errorf("create body %s lacks id %s", got.body, st.conv.ConversationID)
					}
				case rt.name == "paged":
					if !strings.Contains(got.body, st.conv.UserID) {
						t.Errorf("paged members %s lacks the user", got.body)
					}
				}
			})
		}
	}
	if strings.Contains(blockedBodyString(BlockTeamsLF), `\r\n`) || !strings.Contains(blockedBodyString(BlockTeamsCRLF), `\r\n`) {
		t.Errorf("line breaks: lf %s crlf %s", blockedBodyString(BlockTeamsLF), blockedBodyString(BlockTeamsCRLF))
	}
}

func blockedBodyString(shape BlockShape) string { return string(blockedBody(shape)) }

func TestScriptAndSetState(t *testing.T) {
	sc := conversation("script", StateScripted)
	sc.Script = []Step{
		{Status: 503},
		{Status: 429, Code: "Throttled", RetryAfter: 3},
		{Status: 500, Body: `{"error":{"code":"ServiceError","message":"Failure due to: AclCheckFailed."}}`},
		{State: StateBlocked},
		{State: StateActive},
	}
	plain := conversation("plain", StateActive)
	s := start(t, Config{Population: []Conversation{sc, plain}, Limits: NoLimits()})
	tok := token(t, s)
	u := activitiesURL(s, "amer", sc.ConversationID)
	msg := `{"type":"message"}`
	wants := []struct {
		status     int
		code       string
		retryAfter string
	}{
		{503, "", ""}, {429, "Throttled", "3"}, {500, "ServiceError", ""},
		{403, "ConversationBlockedByUser", ""}, {201, "", ""}, {201, "", ""}, // last step repeats
	}
	for i, w := range wants {
		got := call(t, "POST", u, tok, msg)
		if got.status != w.status || errorCode(got.body) != w.code || got.header.Get("Retry-After") != w.retryAfter {
			t.Errorf("step %d: %d %q Retry-After %q, want %d %q %q", i, got.status, got.body, got.header.Get("Retry-After"), w.status, w.code, w.retryAfter)
		}
	}

	pu := activitiesURL(s, "amer", plain.ConversationID)
	for _, st := range []struct {
		state  State
		status int
	}{{StateUninstalled, 403}, {StateDeleted, 404}, {StateActive, 201}} {
		s.SetState(plain.ConversationID, st.state)
		if got := call(t, "POST", pu, tok, msg); got.status != st.status {
			t.Errorf("after SetState(%s): %d, want %d", st.state, got.status, st.status)
		}
	}
	if got := s.Stats().Conversations[plain.ConversationID]; got != 3 {
		t.Errorf("stats count %d requests on %s, want 3", got, plain.ConversationID)
	}
}

func TestRouting(t *testing.T) {
	odd := conversation("odd", StateActive)
	odd.ConversationID = "19:abc@thread.tacv2"
	odd.ConversationType = blockreport.ConversationChannel
	odd.TeamID = odd.ConversationID
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive), odd}, Limits: NoLimits()})
	tok := token(t, s)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"escaped channel id", "POST", "/amer/v3/conversations/19%3Aabc%40thread.tacv2/activities", `{"type":"message"}`, 201, ""},
		{"raw channel id", "POST", "/amer/v3/conversations/19:abc@thread.tacv2/activities", `{"type":"message"}`, 201, ""},
		{"reply chain id", "POST", "/amer/v3/conversations/19:abc@thread.tacv2;messageid=123/activities", `{"type":"message"}`, 201, ""},
		{"reply to activity", "POST", "/amer/v3/conversations/a:x/activities/123", `{"type":"message"}`, 201, ""},
		{"no prefix", "POST", "/v3/conversations/a:x/activities", `{"type":"message"}`, 201, ""},
		{"deep prefix", "POST", "/amer-client-ss.msg/v3/conversations/a:x/activities", `{"type":"message"}`, 201, ""},
		{"unknown conversation", "POST", "/amer/v3/conversations/a:nope/activities", `{"type":"message"}`, 404, "ConversationNotFound"},
		{"unknown member", "GET", "/amer/v3/conversations/a:x/members/29:someone", "", 404, "MemberNotFoundInConversation"},
		{"member by aad id", "GET", "/amer/v3/conversations/a:x/members/aad-x", "", 200, ""},
		{"member by upn", "GET", "/amer/v3/conversations/a:x/members/x@contoso.example", "", 200, ""},
		{"junk activity", "POST", "/amer/v3/conversations/a:x/activities", `{not json`, 400, "Bad Argument"},
		{"event activity", "POST", "/amer/v3/conversations/a:x/activities", `{"type":"event"}`, 400, "Bad Argument"},
		{"empty activity", "POST", "/amer/v3/conversations/a:x/activities", ``, 400, "Bad Argument"},
		{"junk create", "POST", "/amer/v3/conversations", `[]`, 400, "Bad Argument"},
		{"create without tenant", "POST", "/amer/v3/conversations", `{"members":[{"id":"29:user-x"}]}`, 400, "Bad Argument"},
		{"create by tenantId", "POST", "/amer/v3/conversations", `{"tenantId":"` + tenantA + `","members":[{"id":"29:user-x"}]}`, 201, ""},
		{"create by aad id", "POST", "/amer/v3/conversations", `{"tenantId":"` + tenantA + `","members":[{"id":"aad-x"}]}`, 201, ""},
		{"create unknown user", "POST", "/amer/v3/conversations", `{"tenantId":"` + tenantA + `","members":[{"id":"29:ghost"}]}`, 403, "ForbiddenOperationException"},
		{"create wrong tenant", "POST", "/amer/v3/conversations", `{"tenantId":"other","members":[{"id":"29:user-x"}]}`, 403, "ForbiddenOperationException"},
		{"wrong method", "GET", "/amer/v3/conversations/a:x/activities", "", 405, "MethodNotAllowed"},
		{"unknown route", "GET", "/amer/v3/conversations/a:x/whatever", "", 404, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, tt.method, s.URL()+tt.path, tok, tt.body)
			if got.status != tt.status || errorCode(got.body) != tt.code {
				t.Errorf("%d %s, want %d %q", got.status, got.body, tt.status, tt.code)
			}
			if got.header.Get("X-Correlating-OperationId") == "" {
				t.Error("no X-Correlating-OperationId header")
			}
		})
	}
	// Create-or-get is stable.
	body := `{"channelData":{"tenant":{"id":"` + tenantA + `"}},"members":[{"id":"29:user-x"}]}`
	a, b := call(t, "POST", s.URL()+"/amer/v3/conversations", tok, body), call(t, "POST", s.URL()+"/teams/v3/conversations", tok, body)
	if a.body != b.body || !strings.Contains(a.body, `"a:x"`) {
		t.Errorf("create-or-get not stable: %s then %s", a.body, b.body)
	}
}

func TestAuth(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &now
	s := start(t, Config{
		Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits(),
		TokenTTL: time.Minute, Now: func() time.Time { return *clock },
	})
	u := activitiesURL(s, "amer", "a:x")
	tok := token(t, s)

	tokenTests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", tokenForm(DefaultAppID, "nope", Scope), 401, "invalid_client"},
		{"wrong client", tokenForm("someone-else", DefaultAppSecret, Scope), 400, "unauthorized_client"},
		{"wrong scope", tokenForm(DefaultAppID, DefaultAppSecret, "https://graph.microsoft.com/.default"), 400, "invalid_scope"},
		{"wrong grant", url.Values{"grant_type": {"password"}, "client_id": {DefaultAppID}, "client_secret": {DefaultAppSecret}, "scope": {Scope}}, 400, "unsupported_grant_type"},
	}
	for _, tt := range tokenTests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.PostForm(s.TokenURL(tenantA), tt.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error, AccessToken string }
			json.NewDecoder(resp.Body).Decode(&e) //nolint:errcheck
			if resp.StatusCode != tt.status || e.Error != tt.code {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, e.Error, tt.status, tt.code)
			}
		})
	}
	t.Run("basic auth credentials", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.TokenURL("botframework.com"), strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {Scope}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(DefaultAppID), url.QueryEscape(DefaultAppSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})

	bearerTests := []struct {
		name  string
		tok   string
		after time.Duration
		want  int
	}{
		{"valid", tok, 0, 201},
		{"missing", "", 0, 401},
		{"wrong", "not-a-token", 0, 401},
		{"expired", tok, 2 * time.Minute, 401},
	}
	for _, tt := range bearerTests {
		t.Run("bearer "+tt.name, func(t *testing.T) {
			*clock = now.Add(tt.after) // subtests run in order, not in parallel
			got := call(t, "POST", u, tt.tok, `{"type":"message"}`)
			if got.status != tt.want {
				t.Fatalf("status %d, want %d", got.status, tt.want)
			}
			if tt.want == 401 && errorCode(got.body) != "Unauthorized" {
				t.Errorf("401 body %s", got.body)
			}
		})
	}
	*clock = now
	st := s.Stats()
	if st.TokensIssued != 2 {
		t.Errorf("tokens issued %d, want 2", st.TokensIssued)
	}
	if st.Count(RouteSendActivity, "401") != 3 || st.Count(RouteToken, "401") != 1 {
		t.Errorf("stats %+v", st.Requests)
	}
}

func TestStatsEndpoint(t *testing.T) {
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits()})
	tok := token(t, s)
	call(t, "POST", activitiesURL(s, "amer", "a:x"), tok, `{"type":"message"}`)
	got := call(t, "GET", s.URL()+"/_fake/stats", "", "")
	var st Stats
	if err := json.Unmarshal([]byte(got.body), &st); err != nil {
		t.Fatalf("stats JSON: %v: %s", err, got.body)
	}
	if st.TokensIssued != 1 || st.Count(RouteSendActivity, "201") != 1 || st.Conversations["a:x"] != 1 || st.MaxTenantRate[tenantA] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStartRejectsBadPopulation(t *testing.T) {
	dup := conversation("d", StateActive)
	noScript := conversation("s", StateScripted)
	bad := conversation("b", "sulking")
	for name, pop := range map[string][]Conversation{
		"duplicate": {dup, dup},
		"no script": {noScript},
		"bad state": {bad},
		"no tenant": {{UserID: "29:x", ConversationID: "a:x", ConversationType: "personal"}},
		"bad type":  {{TenantID: "t", UserID: "29:x", ConversationID: "a:x", ConversationType: "meeting"}},
	} {
		if s, err := Start(Config{Population: pop}); err == nil {
			s.Close()
			t.Errorf("%s: Start accepted the population", name)
		}
	}
}
