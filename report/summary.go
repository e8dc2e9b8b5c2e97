package report

import (
	"fmt"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Headline is the report's first sentence, for leadership: "85.2 % of
// 2,000 users can receive the bot's messages; blocked 7.1 %, +22 since 1
// November." It says conversations rather than users when some of them
// are team channels or group chats, and leaves the change out when there
// is no earlier finished run to compare with.
func (r *Report) Headline() string {
	who := "users"
	for _, s := range r.Scopes {
		if s.Scope != ScopePersonal && s.Total > 0 {
			who = "conversations"
		}
	}
	var b strings.Builder
	if note := r.IncompleteNote(); note != "" {
		b.WriteString(note + ": ")
	}
	reach := r.share(blockreport.StatusReachable)
	fmt.Fprintf(&b, "%s of %s %s can receive the bot's messages; blocked %s", spacePct(reach), num(r.Total), who,
		spacePct(r.share(blockreport.StatusBlocked)))
	if r.Previous != nil {
		fmt.Fprintf(&b, ", %s since %s", delta(r.delta(blockreport.StatusBlocked)), longDay(r.Previous.StartedAt, r.Run.StartedAt))
	}
	b.WriteString(".")
	return b.String()
}

// HeadlineDetail is the sentence after the headline: the other groups
// that cannot be reached and the ones that could not be checked.
func (r *Report) HeadlineDetail() string {
	var parts []string
	for _, s := range []blockreport.Status{blockreport.StatusUninstalled, blockreport.StatusAdminDisabled, blockreport.StatusNotFound} {
		part := fmt.Sprintf("%s %s", strings.ToLower(s.Label()), spacePct(r.share(s)))
		if r.Previous != nil {
			part += " (" + delta(r.delta(s)) + ")"
		}
		parts = append(parts, part)
	}
	unchk := Counts(countsOf(r)).Unchecked()
	text := "Also not reachable: " + strings.Join(parts, ", ") + "."
	if unchk > 0 {
		text += fmt.Sprintf(" %s could not be checked this time (%s).", num(unchk), spacePct(float64(unchk)/float64(max(r.Total, 1))))
	}
	return text
}

func (r *Report) share(s blockreport.Status) float64 {
	for _, c := range r.Counts {
		if c.Status == s {
			return c.Share
		}
	}
	return 0
}

func (r *Report) delta(s blockreport.Status) int {
	for _, c := range r.Counts {
		if c.Status == s {
			return c.Delta
		}
	}
	return 0
}

// spacePct is a share as "85.2 %".
func spacePct(f float64) string {
	if f > 0 && f < 0.001 {
		return "<0.1 %"
	}
	return fmt.Sprintf("%.1f %%", f*100)
}

// TrendTitle is the heading of the trend: "Trend of the last 7 runs", and
// for a single run what it will show once there are more.
func (r *Report) TrendTitle() string {
	switch n := len(r.Trend); n {
	case 0, 1:
		return "Trend: this is the first run; the trend starts with the next one"
	case TrendRuns:
		return fmt.Sprintf("Trend of the last %d runs", n)
	default:
		return fmt.Sprintf("Trend of all %d runs so far", n)
	}
}

// Label is the trend's name of the point: its date, with the run id when
// another run of the trend started the same day.
func (p TrendPoint) Label() string { return shortDay(p.StartedAt) }

// trendLabels are the axis labels of the trend, one per point, made unique.
func trendLabels(trend []TrendPoint) []string {
	days := map[string]int{}
	for _, p := range trend {
		days[p.Label()]++
	}
	out := make([]string, len(trend))
	for i, p := range trend {
		out[i] = p.Label()
		if days[out[i]] > 1 {
			out[i] += fmt.Sprintf(" #%d", p.RunID)
		}
	}
	return out
}

// TenantLabel is how the report names a tenant: its name and id when the
// name is known, else its id.
func (t TenantCount) Label() string {
	if t.Name != "" {
		return t.Name + " (" + t.TenantID + ")"
	}
	return t.TenantID
}

// Share is the share of the group's conversations with status s.
func (c Counts) Share(s blockreport.Status, total int) float64 {
	if total == 0 {
		return 0
	}
	return float64(c[s]) / float64(total)
}

// longDay is "1 November", with the year when it is not ref's.
func longDay(t, ref time.Time) string {
	t, ref = t.UTC(), ref.UTC()
	if t.Year() != ref.Year() {
		return t.Format("2 January 2006")
	}
	return t.Format("2 January")
}

// shortDay is "2 Nov 2026".
func shortDay(t time.Time) string { return t.UTC().Format("2 Jan 2006") }
