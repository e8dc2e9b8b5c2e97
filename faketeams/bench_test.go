package faketeams

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

// TestOAuth2ClientCredentials checks that golang.org/x/oauth2 gets a token
// from the fake, as the probe will.
func TestOAuth2ClientCredentials(t *testing.T) {
	s := start(t, Config{Population: []Conversation{conversation("x", StateActive)}, Limits: NoLimits()})
	for _, tt := range []struct {
		name, secret string
		ok           bool
	}{{"right secret", DefaultAppSecret, true}, {"wrong secret", "nope", false}} {
		t.Run(tt.name, func(t *testing.T) {
			cc := clientcredentials.Config{ClientID: DefaultAppID, ClientSecret: tt.secret,
				TokenURL: s.TokenURL("botframework.com"), Scopes: []string{Scope}}
			client := cc.Client(context.Background())
			resp, err := client.Post(activitiesURL(s, "amer", "a:x"), "application/json", strings.NewReader(`{"type":"message"}`))
			if !tt.ok {
				if err == nil {
					resp.Body.Close()
					t.Fatal("wrong secret got through")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
}

// BenchmarkSendActivity measures the fake's throughput for message writes
// over keep-alive connections, limits and latency off.
func BenchmarkSendActivity(b *testing.B) {
	pop := make([]Conversation, 1000)
	for i := range pop {
		pop[i] = conversation(fmt.Sprint(i), StateActive)
	}
	s, err := Start(Config{Population: pop, Limits: NoLimits()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cc := clientcredentials.Config{ClientID: DefaultAppID, ClientSecret: DefaultAppSecret, TokenURL: s.TokenURL("botframework.com"), Scopes: []string{Scope}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req, _ := http.NewRequest("POST", activitiesURL(s, "amer", fmt.Sprintf("a:%d", i%1000)), strings.NewReader(`{"type":"message"}`))
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		Generate(GenerateOptions{Users: 10000, Tenants: 10, Blocked: 0.06, Uninstalled: 0.04, TeamShare: 0.05, Seed: 1})
	}
}
