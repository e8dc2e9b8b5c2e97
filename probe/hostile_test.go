package probe

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

// TestHostileServiceURLsSendNothing points hostile service URLs at a
// listener that fails the test if it is called: user info (even on an
// allowed host), an IP literal not named with --allow-host, and http to a
// named host that is not loopback. Each is invalid and nothing is sent.
func TestHostileServiceURLsSendNothing(t *testing.T) {
	tok, _ := tokenServer(t)
	evil := forbidden(t)
	port := strings.TrimPrefix(evil.URL, "http://127.0.0.1")
	refs := []blockreport.Reference{
		{TenantID: "t", ConversationID: "a:1", ServiceURL: "http://user:" + testSecret + "@localhost" + port + "/amer/"},
		{TenantID: "t", ConversationID: "a:2", ServiceURL: "http://user@localhost" + port + "/amer/"},
		{TenantID: "t", ConversationID: "a:3", ServiceURL: evil.URL + "/amer/"}, // IP literal, only "localhost" named
		{TenantID: "t", ConversationID: "a:4", ServiceURL: "https://127.0.0.1" + port + "/amer/"},
		{TenantID: "t", ConversationID: "a:5", ServiceURL: "http://10.0.0.5" + port + "/amer/"}, // named, not loopback
		{TenantID: "t", ConversationID: "a:6", ServiceURL: "http://localhost." + port + "/amer/"},
		{TenantID: "t", ConversationID: "a:7", ServiceURL: "http://[::ffff:7f00:1]" + port + "/amer/"},
	}
	st := newMemStore(refs)
	var logs bytes.Buffer
	cfg := testConfig(t, tok.URL, &logs)
	cfg.AllowHosts = []string{"localhost", "10.0.0.5"}
	p := mustNew(t, cfg)
	if err := p.Run(context.Background(), st, 1); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		r := st.result(t, ref.ID)
		if r.Status != blockreport.StatusInvalid || r.Attempts != 0 {
			t.Errorf("%s: %+v, want invalid with no attempt", ref.ServiceURL, r)
		}
		if strings.Contains(r.Detail+r.Reason, testSecret) {
			t.Errorf("%s: the URL's password is repeated in %q", ref.ServiceURL, r.Detail)
		}
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("the URL's password is in the logs")
	}
}

// TestRedirectsNeverFollowed: no redirect status, from the connector or
// from the token endpoint, carries a request (and its token or secret) to
// another host.
func TestRedirectsNeverFollowed(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			evil := forbidden(t)
			tok, _ := tokenServer(t)
			conn := newConnector(t, func(recorded, int) (int, string, http.Header) {
				return code, ``, http.Header{"Location": {evil.URL + "/steal"}}
			})
			st := newMemStore([]blockreport.Reference{personal(1, "t", conn.URL+"/amer/")})
			p := mustNew(t, testConfig(t, tok.URL, nil))
			if err := p.Run(context.Background(), st, 1); err != nil {
				t.Fatal(err)
			}
			if r := st.result(t, 1); r.Status != blockreport.StatusFailed || r.HTTPStatus != code || r.Detail != "redirect not followed" {
				t.Errorf("result %+v, want failed %d, redirect not followed", r, code)
			}

			// The token endpoint redirects: the secret is not posted on.
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, evil.URL+"/token", code)
			}))
			defer redirector.Close()
			conn2 := forbidden(t)
			var logs bytes.Buffer
			p = mustNew(t, testConfig(t, redirector.URL+"/t/oauth2/v2.0/token", &logs))
			st = newMemStore([]blockreport.Reference{personal(1, "t", conn2.URL+"/amer/")})
			err := p.Run(context.Background(), st, 1)
			if !errors.Is(err, ErrToken) {
				t.Fatalf("token endpoint redirecting: err = %v, want ErrToken", err)
			}
			if strings.Contains(err.Error()+logs.String(), testSecret) {
				t.Errorf("secret in the error or logs: %v", err)
			}
		})
	}
}
