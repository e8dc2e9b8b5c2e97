package faketeams

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

func TestGenerateDeterministicWithShares(t *testing.T) {
	opts := GenerateOptions{
		Users: 5000, Tenants: 4, Blocked: 0.06, Uninstalled: 0.04, AdminDisabled: 0.01,
		Deleted: 0.01, Transient: 0.02, TeamShare: 0.05, Seed: 42,
	}
	a, b := Generate(opts), Generate(opts)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different populations")
	}
	opts.Seed = 43
	if reflect.DeepEqual(a, Generate(opts)) {
		t.Fatal("different seeds, same population")
	}
	if len(a) != 5000 {
		t.Fatalf("%d conversations", len(a))
	}
	states := map[State]int{}
	types := map[blockreport.ConversationType]int{}
	tenants := map[string]int{}
	ids := map[string]bool{}
	emails := map[string]bool{}
	for _, c := range a {
		if err := c.validate(); err != nil {
			t.Fatal(err)
		}
		states[c.State]++
		types[c.ConversationType]++
		tenants[c.TenantID]++
		if ids[c.ConversationID] || emails[c.Email] {
			t.Fatalf("duplicate id or email: %+v", c)
		}
		ids[c.ConversationID], emails[c.Email] = true, true
		if !strings.HasPrefix(c.UserID, "29:") || len(c.AADObjectID) != 36 || !strings.Contains(c.Email, "@") {
			t.Fatalf("bad ids: %+v", c)
		}
		switch c.ConversationType {
		case blockreport.ConversationPersonal:
			if !strings.HasPrefix(c.ConversationID, "a:") {
				t.Fatalf("personal id %q", c.ConversationID)
			}
		case blockreport.ConversationChannel:
			if !strings.HasSuffix(c.ConversationID, "@thread.tacv2") || c.TeamID == "" {
				t.Fatalf("channel %+v", c)
			}
		case blockreport.ConversationGroupChat:
			if !strings.HasSuffix(c.ConversationID, "@thread.v2") {
				t.Fatalf("group chat id %q", c.ConversationID)
			}
		}
	}
	for st, want := range map[State]int{StateBlocked: 300, StateUninstalled: 200, StateAdminDisabled: 50, StateDeleted: 50, StateScripted: 100, StateActive: 4300} {
		if states[st] != want {
			t.Errorf("%s: %d, want %d", st, states[st], want)
		}
	}
	if n := types[blockreport.ConversationChannel] + types[blockreport.ConversationGroupChat]; n != 250 {
		t.Errorf("team/group installs %d, want 250", n)
	}
	if len(tenants) != 4 {
		t.Errorf("%d tenants", len(tenants))
	}
	for id, n := range tenants {
		if n < 1200 || n > 1300 {
			t.Errorf("tenant %s has %d conversations", id, n)
		}
	}
}

func TestGenerateEdgeCases(t *testing.T) {
	if got := Generate(GenerateOptions{}); got != nil {
		t.Errorf("0 users: %d conversations", len(got))
	}
	// Shares over 1 are capped at the number of users.
	got := Generate(GenerateOptions{Users: 10, Blocked: 0.8, Deleted: 0.8, Seed: 1})
	if len(got) != 10 {
		t.Fatalf("%d conversations", len(got))
	}
}

func TestPopulationRoundTripAndReferences(t *testing.T) {
	pop := Generate(GenerateOptions{Users: 50, Tenants: 2, Blocked: 0.2, Transient: 0.1, TeamShare: 0.2, Seed: 7})
	var buf bytes.Buffer
	if err := WritePopulation(&buf, pop); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPopulation(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pop, back) {
		t.Fatal("population changed through JSON Lines")
	}
	if _, err := ReadPopulation(strings.NewReader("{\"tenantId\":\"t\"}\n")); err == nil {
		t.Error("ReadPopulation accepted an entry without ids")
	}
	if _, err := ReadPopulation(strings.NewReader("nope\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ReadPopulation on junk: %v", err)
	}

	s := start(t, Config{Population: pop})
	refs := s.References()
	if len(refs) != len(pop) {
		t.Fatalf("%d references", len(refs))
	}
	var lines bytes.Buffer
	if err := s.WriteReferences(&lines); err != nil {
		t.Fatal(err)
	}
	exported := strings.Split(strings.TrimSpace(lines.String()), "\n")
	for i, r := range refs {
		c := pop[i]
		if r.TenantID != c.TenantID || r.UserID != c.UserID || r.ConversationID != c.ConversationID ||
			r.Email != c.Email || r.ConversationType != c.ConversationType || r.TeamID != c.TeamID ||
			r.ServiceURL != s.ServiceURL("amer") || r.BotID != "28:"+DefaultAppID || r.ChannelID != "msteams" {
			t.Fatalf("reference %d %+v does not match %+v", i, r, c)
		}
		if string(r.Raw) != exported[i] {
			t.Fatalf("Raw %s differs from exported line %s", r.Raw, exported[i])
		}
		var cr struct {
			User         struct{ ID, Email, AADObjectID string }
			Conversation struct{ ID, ConversationType, TenantID string }
			ChannelData  *struct{ Team struct{ ID string } }
			ServiceURL   string
		}
		if err := json.Unmarshal(r.Raw, &cr); err != nil {
			t.Fatal(err)
		}
		if cr.User.ID != c.UserID || cr.User.Email != c.Email || cr.Conversation.ID != c.ConversationID ||
			cr.Conversation.TenantID != c.TenantID || cr.ServiceURL != r.ServiceURL {
			t.Fatalf("exported reference %s does not match %+v", r.Raw, c)
		}
		if (c.ConversationType == blockreport.ConversationChannel) != (cr.ChannelData != nil) ||
			(cr.ChannelData != nil && cr.ChannelData.Team.ID != c.TeamID) {
			t.Fatalf("channelData of %s", r.Raw)
		}
	}
}
