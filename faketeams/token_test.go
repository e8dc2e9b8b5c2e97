package faketeams

import (
	"net/http"
	"strings"
	"testing"
)

func TestTokenPrefix(t *testing.T) {
	s := start(t, Config{TokenPrefix: "tok-canary-"})
	tok := token(t, s)
	if !strings.HasPrefix(tok, "tok-canary-") || len(tok) <= len("tok-canary-") {
		t.Fatalf("token %q does not start with the configured prefix", tok)
	}
	// The prefixed token is accepted like any other.
	req, _ := http.NewRequest(http.MethodGet, s.ServiceURL("amer")+"v3/conversations/a:none/members", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("prefixed token rejected: %d", resp.StatusCode)
	}
}
