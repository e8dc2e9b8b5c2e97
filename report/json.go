package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Summary is the JSON summary of a report (report --format json), for
// scripts: the run, its totals and changes, and its breakdowns. It never
// holds a name, email or user id.
type Summary struct {
	Run         SummaryRun      `json:"run"`
	Previous    *SummaryRunRef  `json:"previousRun"`
	Headline    string          `json:"headline"`
	Total       int             `json:"total"`
	Totals      []SummaryStatus `json:"totals"`
	Unreachable int             `json:"unreachable"`
	Unchecked   int             `json:"unchecked"`
	// Changes are null when the run is compared with nothing (first or
	// unfinished run).
	Changes     []SummaryChange `json:"changes"`
	Tenants     []SummaryGroup  `json:"tenants"`
	Departments []SummaryGroup  `json:"departments"`
	Scopes      []SummaryGroup  `json:"scopes"`
	Trend       []SummaryTrend  `json:"trend"`
}

// SummaryRun is the run a summary is about.
type SummaryRun struct {
	ID         int64                `json:"id"`
	StartedAt  time.Time            `json:"startedAt"`
	FinishedAt *time.Time           `json:"finishedAt"`
	State      blockreport.RunState `json:"state"`
	Mode       string               `json:"mode"`
	Incomplete bool                 `json:"incomplete"`
	Planned    int                  `json:"planned"`
}

// SummaryRunRef names the run a summary compares with.
type SummaryRunRef struct {
	ID        int64     `json:"id"`
	StartedAt time.Time `json:"startedAt"`
}

// SummaryStatus is the count of one status.
type SummaryStatus struct {
	Status   blockreport.Status `json:"status"`
	Label    string             `json:"label"`
	Count    int                `json:"count"`
	Share    float64            `json:"share"`
	Previous *int               `json:"previous,omitempty"`
	Change   *int               `json:"change,omitempty"`
}

// SummaryChange is the size of one list of changes.
type SummaryChange struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// SummaryGroup is one tenant, department or scope with its counts.
type SummaryGroup struct {
	ID     string                     `json:"id,omitempty"`
	Name   string                     `json:"name"`
	Total  int                        `json:"total"`
	Counts map[blockreport.Status]int `json:"counts"`
}

// SummaryTrend is one run of the trend.
type SummaryTrend struct {
	Run       int64                      `json:"run"`
	StartedAt time.Time                  `json:"startedAt"`
	State     blockreport.RunState       `json:"state"`
	Total     int                        `json:"total"`
	Counts    map[blockreport.Status]int `json:"counts"`
}

func allCounts(c Counts) map[blockreport.Status]int {
	m := make(map[blockreport.Status]int, len(blockreport.Statuses))
	for _, s := range blockreport.Statuses {
		m[s] = c[s]
	}
	return m
}

// NewSummary is the JSON summary of r.
func NewSummary(r *Report) Summary {
	s := Summary{
		Run: SummaryRun{ID: r.Run.ID, StartedAt: r.Run.StartedAt.UTC(), State: r.Run.State, Mode: r.Run.Mode,
			Incomplete: r.Incomplete, Planned: r.Planned},
		Headline: r.Headline(), Total: r.Total,
		Tenants: []SummaryGroup{}, Departments: []SummaryGroup{}, Scopes: []SummaryGroup{}, Trend: []SummaryTrend{},
	}
	if !r.Run.FinishedAt.IsZero() {
		t := r.Run.FinishedAt.UTC()
		s.Run.FinishedAt = &t
	}
	if r.Previous != nil {
		s.Previous = &SummaryRunRef{ID: r.Previous.ID, StartedAt: r.Previous.StartedAt.UTC()}
	}
	counts := Counts(countsOf(r))
	s.Unreachable, s.Unchecked = counts.Unreachable(), counts.Unchecked()
	for _, c := range r.Counts {
		st := SummaryStatus{Status: c.Status, Label: c.Label(), Count: c.Count, Share: c.Share}
		if r.Previous != nil {
			prev, change := c.Previous, c.Delta
			st.Previous, st.Change = &prev, &change
		}
		s.Totals = append(s.Totals, st)
	}
	if r.Previous != nil {
		s.Changes = []SummaryChange{}
		for _, c := range r.Changes {
			s.Changes = append(s.Changes, SummaryChange{Kind: string(c.Kind), Count: c.Total})
		}
	}
	for _, t := range r.Tenants {
		s.Tenants = append(s.Tenants, SummaryGroup{ID: t.TenantID, Name: t.Name, Total: t.Total, Counts: allCounts(t.Counts)})
	}
	for _, d := range r.Departments {
		s.Departments = append(s.Departments, SummaryGroup{Name: d.Name, Total: d.Total, Counts: allCounts(d.Counts)})
	}
	for _, sc := range r.Scopes {
		s.Scopes = append(s.Scopes, SummaryGroup{Name: string(sc.Scope), Total: sc.Total, Counts: allCounts(sc.Counts)})
	}
	for _, p := range r.Trend {
		s.Trend = append(s.Trend, SummaryTrend{Run: p.RunID, StartedAt: p.StartedAt.UTC(), State: p.State, Total: p.Total, Counts: allCounts(p.Counts)})
	}
	return s
}

// WriteJSON writes the JSON summary of r, indented.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(NewSummary(r)); err != nil {
		return fmt.Errorf("write JSON summary of run %d: %w", r.Run.ID, err)
	}
	return nil
}
