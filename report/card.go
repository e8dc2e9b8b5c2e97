package report

import (
	"fmt"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// CardActivity is the message a bot posts to announce a report: an
// Adaptive Card with the headline, the count and change of each group of
// statuses and where the report is (reportURL, else the names of files),
// and the headline as the notification's preview. It holds counts only,
// never a name or id of a user.
func CardActivity(r *Report, reportURL string, files []string) map[string]any {
	return map[string]any{
		"summary": r.Headline(),
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content":     Card(r, reportURL, files),
		}},
	}
}

// Card is the Adaptive Card (schema 1.4) of CardActivity.
func Card(r *Report, reportURL string, files []string) map[string]any {
	title := fmt.Sprintf("Teams bot reachability — run %d", r.Run.ID)
	body := []any{
		map[string]any{"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true},
		map[string]any{"type": "TextBlock", "text": r.Headline(), "wrap": true},
	}
	counts := Counts(countsOf(r))
	prev := Counts{}
	if r.Previous != nil {
		prev = Counts(r.Previous.Totals)
	}
	type group struct {
		label string
		value func(Counts) int
	}
	groups := []group{
		{"Reachable", func(c Counts) int { return c[blockreport.StatusReachable] }},
		{"Blocked", func(c Counts) int { return c[blockreport.StatusBlocked] }},
		{"Uninstalled", func(c Counts) int { return c[blockreport.StatusUninstalled] }},
		{"Admin disabled", func(c Counts) int { return c[blockreport.StatusAdminDisabled] }},
		{"Not found", func(c Counts) int { return c[blockreport.StatusNotFound] }},
		{"Could not check", func(c Counts) int { return c.Unchecked() }},
	}
	var facts []any
	for _, g := range groups {
		n := g.value(counts)
		v := fmt.Sprintf("%s (%s)", num(n), spacePct(float64(n)/float64(max(r.Total, 1))))
		if r.Previous != nil {
			v += ", " + delta(n-g.value(prev))
		}
		facts = append(facts, map[string]any{"title": g.label, "value": v})
	}
	body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	var context []string
	switch {
	case r.Incomplete:
		context = append(context, r.IncompleteNote()+": not compared with earlier runs.")
	case r.Previous != nil:
		context = append(context, fmt.Sprintf("Changes since run %d of %s.", r.Previous.ID, longDay(r.Previous.StartedAt, r.Run.StartedAt)))
	default:
		context = append(context, "First run: nothing to compare with yet.")
	}
	if reportURL == "" && len(files) > 0 {
		context = append(context, "Report: "+strings.Join(files, ", "))
	}
	body = append(body, map[string]any{"type": "TextBlock", "text": strings.Join(context, " "), "wrap": true, "isSubtle": true, "size": "Small"})
	card := map[string]any{
		"type":    "AdaptiveCard",
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"version": "1.4",
		"body":    body,
	}
	if reportURL != "" {
		card["actions"] = []any{map[string]any{"type": "Action.OpenUrl", "title": "Open the report", "url": reportURL}}
	}
	return card
}
