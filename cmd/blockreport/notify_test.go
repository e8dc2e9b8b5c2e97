package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
)

func TestNotifyConversation(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 80, Tenants: 2, Blocked: 0.1, TeamShare: 0.2, Seed: 12})
	channel, blockedChat := "", ""
	for i, c := range pop {
		if c.ConversationType == blockreport.ConversationChannel && channel == "" {
			pop[i].State, channel = faketeams.StateActive, c.ConversationID
		} else if c.ConversationType == blockreport.ConversationPersonal && c.State == faketeams.StateBlocked && blockedChat == "" {
			blockedChat = c.ConversationID
		}
	}
	if channel == "" || blockedChat == "" {
		t.Fatal("the population has no channel or no blocked chat")
	}
	fake := startFake(t, faketeams.Config{Population: pop, Seed: 12})
	u := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	db := openSeeded(t, u, fake.References())
	out := filepath.Join(t.TempDir(), "out")
	env := probeEnv(fake, u, nil)

	// run posts one card into the channel, after the reports.
	_, stderr, code := runEnvCmd(t, env, "run", "--out", out, "--notify-conversation", channel, "--report-url", "https://reports.example/latest.html")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	cards := fake.Cards()
	if len(cards) != 1 || cards[0].ConversationID != channel {
		t.Fatalf("cards %+v, want one in %s", cards, channel)
	}
	var card struct {
		Type string `json:"type"`
		Body []struct {
			Type  string `json:"type"`
			Text  string `json:"text"`
			Facts []struct{ Title, Value string }
		} `json:"body"`
		Actions []struct{ Type, URL string } `json:"actions"`
	}
	if err := json.Unmarshal(cards[0].Content, &card); err != nil {
		t.Fatal(err)
	}
	run, _ := db.LatestRun(context.Background())
	if card.Type != "AdaptiveCard" || len(card.Body) < 3 || !strings.Contains(card.Body[1].Text, "can receive the bot's messages") ||
		len(card.Body[2].Facts) != 6 || card.Body[2].Facts[1].Title != "Blocked" || !strings.HasPrefix(card.Body[2].Facts[1].Value, strconv.Itoa(run.Totals["blocked"])+" (") {
		t.Errorf("card %s, want the headline and the counts of run %+v", cards[0].Content, run.Totals)
	}
	if len(card.Actions) != 1 || card.Actions[0].URL != "https://reports.example/latest.html" {
		t.Errorf("card actions %+v", card.Actions)
	}
	if !strings.Contains(stderr, "posted the summary of run") {
		t.Errorf("stderr %q", stderr)
	}

	// report posts again, through its own connector flags; without
	// --report-url the card names the files.
	stdout, stderr, code := runEnvCmd(t, env, "report", "--out", out, "--notify-conversation", channel)
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	cards = fake.Cards()
	if len(cards) != 2 || !strings.Contains(string(cards[1].Content), filepath.Base(strings.Fields(stdout)[0])) {
		t.Fatalf("second card %s, want the workbook's name in it", cards[len(cards)-1].Content)
	}

	// A blocked conversation: exit 1, one line naming it; the reports are written.
	_, stderr, code = runEnvCmd(t, env, "report", "--out", out, "--notify-conversation", blockedChat)
	if code != 1 || !strings.Contains(stderr, "not posted: Blocked") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("blocked conversation: exit %d, %q", code, stderr)
	}

	// Bad input: nothing probed, nothing posted.
	runs := func() int64 { r, _ := db.LatestRun(context.Background()); return r.ID }
	before := runs()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--out", out, "--notify-conversation", "19:nobody@thread.tacv2"}, "no stored conversation reference"},
		{[]string{"run", "--out", out, "--report-url", "https://x.example/"}, "--report-url needs --notify-conversation"},
		{[]string{"report", "--out", out, "--notify-conversation", channel, "--report-url", "reports/latest.html"}, "want an absolute http or https URL"},
		{[]string{"report", "--out", out, "--notify-conversation", "19:nobody"}, "no stored conversation reference"},
	} {
		_, stderr, code := runEnvCmd(t, env, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 naming %q", tc.args, code, stderr, tc.want)
		}
	}
	if runs() != before || len(fake.Cards()) != 2 {
		t.Errorf("bad input probed (run %d → %d) or posted (%d cards)", before, runs(), len(fake.Cards()))
	}
}
