package report

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestCard(t *testing.T) {
	r, err := Build(context.Background(), layoutSource(), 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := CardActivity(r, "https://reports.example/run3.html", nil)
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`"summary":"90.9 % of 2,000 users can receive the bot's messages; blocked 7.1 %, +22 since 1 October."`,
		`"contentType":"application/vnd.microsoft.card.adaptive"`,
		`"type":"AdaptiveCard"`, `"version":"1.4"`,
		`{"title":"Blocked","value":"142 (7.1 %), +22"}`,
		`{"title":"Admin disabled","value":"20 (1.0 %), ±0"}`,
		`"type":"Action.OpenUrl"`, `"url":"https://reports.example/run3.html"`,
		`Changes since run 2 of 1 October.`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("card lacks %s:\n%s", want, s)
		}
	}
	// Without a URL it names the files, and has no action.
	s2, _ := json.Marshal(Card(r, "", []string{"blockreport-2026-11-02-run3.xlsx"}))
	if strings.Contains(string(s2), "Action.OpenUrl") || !strings.Contains(string(s2), "Report: blockreport-2026-11-02-run3.xlsx") {
		t.Errorf("card without URL: %s", s2)
	}
	if strings.Contains(s, "29:u") || strings.Contains(s, "a:c") {
		t.Error("the card holds user or conversation ids")
	}
}
