package faketeams

import (
	"net/http"
	"strings"
	"testing"
)

// TestMessagesCounted: Stats.Messages counts every message the fake read
// unless it answered 429, and never a typing activity.
func TestMessagesCounted(t *testing.T) {
	s := start(t, Config{Population: []Conversation{
		conversation("ok", StateActive),
		conversation("blocked", StateBlocked),
		{TenantID: tenantA, UserID: "29:user-s", ConversationID: "a:scripted", ConversationType: "personal",
			State: StateScripted, Script: []Step{{Status: 429}, {Status: 503}, {Status: 201}}},
	}})
	tok := token(t, s)
	send := func(conv, typ string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.ServiceURL("")+"v3/conversations/"+conv+"/activities",
			strings.NewReader(`{"type":"`+typ+`","text":"hi"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	send("a:ok", "typing")
	send("a:ok", "message")
	send("a:blocked", "message")
	for _, want := range []int{429, 503, 201} {
		if got := send("a:scripted", "message"); got != want {
			t.Fatalf("scripted answer %d, want %d", got, want)
		}
	}
	got := s.Stats().Messages
	want := map[string]int{"a:ok": 1, "a:blocked": 1, "a:scripted": 2}
	if len(got) != len(want) {
		t.Errorf("Messages = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Messages[%s] = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
