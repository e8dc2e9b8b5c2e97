package probe

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
)

func TestPostCard(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 4, Tenants: 1, Seed: 5})
	for i := range pop {
		pop[i].State = faketeams.StateActive
	}
	pop[1].State = faketeams.StateBlocked
	// A 429 with Retry-After, then the post goes through; a 503 may have
	// delivered it, so that one is not sent again (at most once).
	pop[2].State, pop[2].Script = faketeams.StateScripted, []faketeams.Step{
		{Status: http.StatusTooManyRequests, RetryAfter: 1}, {State: faketeams.StateActive},
	}
	pop[3].State, pop[3].Script = faketeams.StateScripted, []faketeams.Step{{Status: http.StatusServiceUnavailable}, {State: faketeams.StateActive}}
	fake, err := faketeams.Start(faketeams.Config{Population: pop})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	p := mustNew(t, fakeConfig(fake, 40, 4))
	refs := fake.References()
	card := map[string]any{"type": "AdaptiveCard", "version": "1.4", "body": []any{map[string]any{"type": "TextBlock", "text": "85.2 % reachable"}}}
	activity := map[string]any{"summary": "85.2 % reachable", "attachments": []any{map[string]any{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}}

	res, err := p.Post(context.Background(), refs[0], activity)
	if err != nil || res.Status != blockreport.StatusReachable {
		t.Fatalf("post: %+v, %v", res, err)
	}
	res, err = p.Post(context.Background(), refs[2], activity)
	if err != nil || res.Status != blockreport.StatusReachable || res.Attempts != 2 {
		t.Fatalf("post after a 429: %+v, %v; want reachable after 2 attempts", res, err)
	}
	res, err = p.Post(context.Background(), refs[3], activity)
	if err != nil || res.Status != blockreport.StatusFailed || res.Reason != ReasonDeliveryUnknown || res.Attempts != 1 {
		t.Fatalf("post answered 503: %+v, %v; want failed, DeliveryUnknown, not resent", res, err)
	}
	res, err = p.Post(context.Background(), refs[1], activity)
	if err != nil || res.Status != blockreport.StatusBlocked {
		t.Fatalf("post to a blocked user: %+v, %v", res, err)
	}
	cards := fake.Cards()
	if len(cards) != 2 || cards[0].ConversationID != refs[0].ConversationID || cards[1].ConversationID != refs[2].ConversationID {
		t.Fatalf("faketeams recorded %+v, want the two delivered cards", cards)
	}
	var got map[string]any
	if err := json.Unmarshal(cards[0].Content, &got); err != nil || got["type"] != "AdaptiveCard" || cards[0].Summary != "85.2 % reachable" {
		t.Errorf("recorded card %s (summary %q): %v", cards[0].Content, cards[0].Summary, err)
	}

	// The allow-list holds for posts too: nothing is sent.
	bad := refs[3]
	bad.ServiceURL = "https://evil.example/amer/"
	if _, err := p.Post(context.Background(), bad, activity); err == nil || !strings.Contains(err.Error(), "cannot be posted to") {
		t.Errorf("post to a host off the allow-list: %v", err)
	}
	if n := len(fake.Cards()); n != 2 {
		t.Errorf("%d cards after the refused post, want 2", n)
	}
	bad.ConversationID = ""
	if _, err := p.Post(context.Background(), bad, activity); err == nil {
		t.Error("post without a conversation id accepted")
	}
}
