package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// Source is what report building needs (implemented by *store.DB).
type Source interface {
	Run(ctx context.Context, id int64) (blockreport.Run, error)
	Runs(ctx context.Context, upTo int64, limit int) ([]blockreport.Run, error)
	Rows(ctx context.Context, runID int64, fn func(blockreport.Row) error) error
	// CountPending is the number of references without a result in the
	// run: what an unfinished run has still to probe.
	CountPending(ctx context.Context, runID int64) (int, error)
}

// Default caps of the rows a Report keeps for the HTML page. The workbook
// always has every row.
const (
	DefaultListLimit   = 5000
	DefaultChangeLimit = 100
	// TrendRuns is how many runs, this one included, the trend shows.
	TrendRuns = 12
)

// Options tune a report.
type Options struct {
	// Redact makes a leadership copy: counts, tenants and trend, but no
	// names, emails or user, conversation or team IDs.
	Redact bool
	// ListLimit caps the rows each list keeps for the HTML page
	// (0: DefaultListLimit).
	ListLimit int
	// ChangeLimit caps the rows each list of changes keeps for the HTML
	// page (0: DefaultChangeLimit).
	ChangeLimit int
	// TempDir is where the workbook writer spools its list sheets
	// ("": os.TempDir); the command passes the output directory.
	TempDir string
	// AllSheetLimit is the most conversations sheet "All conversations"
	// lists in full (0: AllSheetLimit); above it the sheet leaves the
	// reachable ones out and says so.
	AllSheetLimit int
}

func (o Options) listLimit() int {
	if o.ListLimit > 0 {
		return o.ListLimit
	}
	return DefaultListLimit
}

func (o Options) changeLimit() int {
	if o.ChangeLimit > 0 {
		return o.ChangeLimit
	}
	return DefaultChangeLimit
}

// Report is the model both writers render: counts for one run, its
// comparison with the previous run, its trend and the first rows of each
// list of conversations that could not be reached.
type Report struct {
	Run blockreport.Run
	// Previous is the latest finished run before Run, nil when there is
	// none or Run is not finished: changes are only ever computed between
	// finished runs.
	Previous *blockreport.Run
	Mode     Mode
	Redacted bool
	// Incomplete is set when Run is not finished (running, interrupted or
	// failed): only Total of Planned conversations were probed, and the
	// report says so in its title, first heading and summary.
	Incomplete bool
	Planned    int // conversations in the run: probed and still pending

	Total   int
	Counts  []StatusCount // one per status, in blockreport.Statuses order
	Scopes  []ScopeCount  // personal, team/channel, group chat, unknown
	Tenants []TenantCount // largest first, then by tenant ID
	// Departments are the conversations per department (from Graph), most
	// not reachable first; empty when no row has a department.
	Departments []DepartmentCount
	Trend       []TrendPoint // oldest first, Run last
	Changes     []Change     // newly blocked, ..., recovered
	// Lists are the non-reachable groups: blocked, uninstalled, admin
	// disabled, not found, could not check.
	Lists []List
	// Graph is what Microsoft Graph did in the run (zero when it was off).
	Graph GraphSummary
	// TypingIncidents are the tenants whose typing probes failed with 502s
	// as during a Teams incident (incidents.go).
	TypingIncidents []TypingIncident
	// ChangedRows is the number of conversations whose status differs
	// from their previous result (the rows of sheet "Changed").
	ChangedRows int
}

// StatusCount is the number of conversations of one status.
type StatusCount struct {
	Status blockreport.Status
	Count  int
	Share  float64 // of all probed conversations, 0..1
	// Previous is the count in the previous run (0 without one).
	Previous int
	Delta    int
}

// Label is the report name of the status.
func (c StatusCount) Label() string { return c.Status.Label() }

// Scope is the report's grouping of conversation types.
type Scope string

// The scopes a report splits conversations by.
const (
	ScopePersonal  Scope = "Personal"
	ScopeTeam      Scope = "Team / channel"
	ScopeGroupChat Scope = "Group chat"
	ScopeUnknown   Scope = "Unknown"
)

var scopes = []Scope{ScopePersonal, ScopeTeam, ScopeGroupChat, ScopeUnknown}

func scopeOf(t blockreport.ConversationType) Scope {
	switch t {
	case blockreport.ConversationPersonal:
		return ScopePersonal
	case blockreport.ConversationChannel:
		return ScopeTeam
	case blockreport.ConversationGroupChat:
		return ScopeGroupChat
	}
	return ScopeUnknown
}

// Counts is a count per status.
type Counts map[blockreport.Status]int

// Unreachable is the number of conversations definitely not reachable
// (blocked, uninstalled, admin disabled, not found).
func (c Counts) Unreachable() int {
	return c[blockreport.StatusBlocked] + c[blockreport.StatusUninstalled] +
		c[blockreport.StatusAdminDisabled] + c[blockreport.StatusNotFound]
}

// Unchecked is the number of conversations that could not be checked
// (forbidden, throttled, failed, invalid).
func (c Counts) Unchecked() int {
	return c[blockreport.StatusForbidden] + c[blockreport.StatusThrottled] +
		c[blockreport.StatusFailed] + c[blockreport.StatusInvalid]
}

// ScopeCount is the number of conversations of one scope, per status.
type ScopeCount struct {
	Scope  Scope
	Total  int
	Counts Counts
}

// TenantCount is the number of conversations of one tenant, per status.
type TenantCount struct {
	TenantID string
	Name     string // the tenant's display name, when known (Graph)
	Total    int
	Counts   Counts
}

// DepartmentCount is the number of conversations of one department, per
// status; Name "" gathers the conversations whose department is not known.
type DepartmentCount struct {
	Name   string
	Total  int
	Counts Counts
}

// sortDepartments orders departments by the share of their conversations
// that cannot be reached (blocked, uninstalled, admin disabled, not
// found), highest first, then by size and name; the department that is not
// known comes last.
func sortDepartments(ds []DepartmentCount) {
	share := func(d DepartmentCount) float64 { return float64(d.Counts.Unreachable()) / float64(max(d.Total, 1)) }
	sort.Slice(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if (a.Name == "") != (b.Name == "") {
			return b.Name == ""
		}
		if sa, sb := share(a), share(b); sa != sb {
			return sa > sb
		}
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return a.Name < b.Name
	})
}

// TrendPoint is one run of the trend.
type TrendPoint struct {
	RunID     int64
	StartedAt time.Time
	State     blockreport.RunState
	Mode      string
	Total     int
	Counts    Counts
}

// ChangeKind names one list of conversations whose status changed since
// their previous result.
type ChangeKind string

// The lists of changes a report keeps.
const (
	NewlyBlocked       ChangeKind = "Newly blocked"
	NewlyUninstalled   ChangeKind = "Newly uninstalled"
	NewlyAdminDisabled ChangeKind = "Newly admin disabled"
	NewlyNotFound      ChangeKind = "Newly not found"
	// Recovered means definitely unreachable before (blocked, uninstalled,
	// admin disabled, not found) and reachable now. A conversation that
	// merely could not be checked last time has not "recovered".
	Recovered ChangeKind = "Recovered"
)

var changeKinds = []ChangeKind{NewlyBlocked, NewlyUninstalled, NewlyAdminDisabled, NewlyNotFound, Recovered}

// changeOf returns the change kind of a row, if any.
func changeOf(r blockreport.Row) (ChangeKind, bool) {
	if r.PreviousStatus == "" || r.PreviousStatus == r.Status {
		return "", false
	}
	switch r.Status {
	case blockreport.StatusBlocked:
		return NewlyBlocked, true
	case blockreport.StatusUninstalled:
		return NewlyUninstalled, true
	case blockreport.StatusAdminDisabled:
		return NewlyAdminDisabled, true
	case blockreport.StatusNotFound:
		return NewlyNotFound, true
	case blockreport.StatusReachable:
		if definite(r.PreviousStatus) {
			return Recovered, true
		}
	}
	return "", false
}

// definite reports whether s is a definite "cannot reach" answer.
func definite(s blockreport.Status) bool {
	switch s {
	case blockreport.StatusBlocked, blockreport.StatusUninstalled,
		blockreport.StatusAdminDisabled, blockreport.StatusNotFound:
		return true
	}
	return false
}

// Change is one list of conversations that changed status.
type Change struct {
	Kind  ChangeKind
	Total int
	Rows  []blockreport.Row // the first Options.ChangeLimit (none when redacted)
}

// More is how many rows of the change are not in Rows.
func (c Change) More() int { return c.Total - len(c.Rows) }

// ListKind names one list of non-reachable conversations (and its sheet).
type ListKind string

// The lists of non-reachable conversations, in report order.
const (
	ListBlocked       ListKind = "Blocked"
	ListUninstalled   ListKind = "Uninstalled"
	ListAdminDisabled ListKind = "Admin disabled"
	ListNotFound      ListKind = "Not found"
	ListUnchecked     ListKind = "Could not check"
)

var listKinds = []ListKind{ListBlocked, ListUninstalled, ListAdminDisabled, ListNotFound, ListUnchecked}

// listOf returns the list a status belongs to; reachable and opted-out
// conversations are in no list.
func listOf(s blockreport.Status) (ListKind, bool) {
	switch s {
	case blockreport.StatusBlocked:
		return ListBlocked, true
	case blockreport.StatusUninstalled:
		return ListUninstalled, true
	case blockreport.StatusAdminDisabled:
		return ListAdminDisabled, true
	case blockreport.StatusNotFound:
		return ListNotFound, true
	case blockreport.StatusForbidden, blockreport.StatusThrottled,
		blockreport.StatusFailed, blockreport.StatusInvalid:
		return ListUnchecked, true
	}
	return "", false
}

// List is one group of non-reachable conversations.
type List struct {
	Kind  ListKind
	Total int
	Rows  []blockreport.Row // the first Options.ListLimit (none when redacted)
}

// More is how many rows of the list are not in Rows.
func (l List) More() int { return l.Total - len(l.Rows) }

// ID is a stable HTML id for the list.
func (l List) ID() string { return anchor(string(l.Kind)) }

func anchor(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, '-')
		}
	}
	return string(b)
}

// ErrNoRows is returned by Build for a run without any result.
var ErrNoRows = errors.New("run has no results")

// Build reads run runID and its rows from src in one streamed pass and
// computes the report model. Memory is bounded by the list caps of opts and
// the number of tenants, not by the number of rows.
func Build(ctx context.Context, src Source, runID int64, opts Options) (*Report, error) {
	run, err := src.Run(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("read run %d: %w", runID, err)
	}
	all, err := src.Runs(ctx, runID, 0)
	if err != nil {
		return nil, fmt.Errorf("read runs up to %d: %w", runID, err)
	}
	// The trend and the comparison take finished runs only (and this run):
	// a partial run would show as a dip and every user it missed as a
	// change.
	var history []blockreport.Run
	for _, h := range all {
		if (h.ID == runID || h.State == blockreport.RunFinished) && len(history) < TrendRuns {
			history = append(history, h)
		}
	}
	r := &Report{Run: run, Mode: ModeOf(run.Mode), Redacted: opts.Redact, Incomplete: run.State != blockreport.RunFinished}
	for i := range history {
		if !r.Incomplete && history[i].ID < runID {
			prev := history[i]
			r.Previous = &prev
			break
		}
	}

	counts := Counts{}
	scopeCounts := map[Scope]*ScopeCount{}
	tenants := map[string]*TenantCount{}
	departments := map[string]*DepartmentCount{}
	changes := map[ChangeKind]*Change{}
	for _, k := range changeKinds {
		changes[k] = &Change{Kind: k}
	}
	lists := map[ListKind]*List{}
	for _, k := range listKinds {
		lists[k] = &List{Kind: k}
	}
	listLimit, changeLimit := opts.listLimit(), opts.changeLimit()
	ga := newGraphAcc()

	inc := newIncidents(run.Mode)
	err = src.Rows(ctx, runID, func(row blockreport.Row) error {
		row.Raw = nil // never kept, never shown
		inc.add(row)
		r.Total++
		counts[row.Status]++
		sc := scopeCounts[scopeOf(row.ConversationType)]
		if sc == nil {
			sc = &ScopeCount{Scope: scopeOf(row.ConversationType), Counts: Counts{}}
			scopeCounts[sc.Scope] = sc
		}
		sc.Total++
		sc.Counts[row.Status]++
		tc := tenants[row.TenantID]
		if tc == nil {
			tc = &TenantCount{TenantID: row.TenantID, Counts: Counts{}}
			tenants[row.TenantID] = tc
		}
		if tc.Name == "" && row.TenantName != "" {
			tc.Name = clean(row.TenantName)
		}
		tc.Total++
		tc.Counts[row.Status]++
		dc := departments[row.Department]
		if dc == nil {
			dc = &DepartmentCount{Name: clean(row.Department), Counts: Counts{}}
			departments[row.Department] = dc
		}
		dc.Total++
		dc.Counts[row.Status]++
		ga.row(row, tc)
		if !r.Incomplete && row.PreviousStatus != "" && row.PreviousStatus != row.Status {
			r.ChangedRows++
		}
		if k, ok := changeOf(row); ok && !r.Incomplete {
			c := changes[k]
			c.Total++
			if !opts.Redact && len(c.Rows) < changeLimit {
				c.Rows = append(c.Rows, cleanRow(row))
			}
		}
		if k, ok := listOf(row.Status); ok {
			l := lists[k]
			l.Total++
			if !opts.Redact && len(l.Rows) < listLimit {
				l.Rows = append(l.Rows, cleanRow(row))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rows of run %d: %w", runID, err)
	}
	if r.Total == 0 {
		return nil, fmt.Errorf("report on run %d: %w", runID, ErrNoRows)
	}
	r.Planned = r.Total
	if r.Incomplete {
		pending, err := src.CountPending(ctx, runID)
		if err != nil {
			return nil, fmt.Errorf("count pending references of run %d: %w", runID, err)
		}
		r.Planned += pending
	}

	var prevTotals map[blockreport.Status]int
	if r.Previous != nil {
		prevTotals = r.Previous.Totals
	}
	for _, s := range blockreport.Statuses {
		c := StatusCount{Status: s, Count: counts[s], Previous: prevTotals[s]}
		c.Share = float64(c.Count) / float64(r.Total)
		c.Delta = c.Count - c.Previous
		r.Counts = append(r.Counts, c)
	}
	for _, s := range scopes {
		if sc := scopeCounts[s]; sc != nil {
			r.Scopes = append(r.Scopes, *sc)
		}
	}
	for _, tc := range tenants {
		tc.TenantID = clean(tc.TenantID)
		r.Tenants = append(r.Tenants, *tc)
	}
	sort.Slice(r.Tenants, func(i, j int) bool {
		a, b := r.Tenants[i], r.Tenants[j]
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return a.TenantID < b.TenantID
	})
	// Departments only when Graph named at least one.
	if len(departments) > 1 || departments[""] == nil {
		for _, dc := range departments {
			r.Departments = append(r.Departments, *dc)
		}
		sortDepartments(r.Departments)
	}
	for i := len(history) - 1; i >= 0; i-- {
		h := history[i]
		p := TrendPoint{RunID: h.ID, StartedAt: h.StartedAt, State: h.State, Mode: h.Mode, Total: h.Total(), Counts: Counts(h.Totals)}
		if h.ID == runID {
			// The rows are the truth for this run, even if its totals are
			// not stored yet.
			p.Total, p.Counts = r.Total, counts
		}
		if p.Counts == nil {
			p.Counts = Counts{}
		}
		r.Trend = append(r.Trend, p)
	}
	if len(r.Trend) == 0 || r.Trend[len(r.Trend)-1].RunID != runID {
		r.Trend = append(r.Trend, TrendPoint{RunID: run.ID, StartedAt: run.StartedAt, State: run.State, Mode: run.Mode, Total: r.Total, Counts: counts})
	}
	for _, k := range changeKinds {
		r.Changes = append(r.Changes, *changes[k])
	}
	for _, k := range listKinds {
		r.Lists = append(r.Lists, *lists[k])
	}
	if err := ga.finish(ctx, src, r, opts); err != nil {
		return nil, fmt.Errorf("read Graph state of run %d: %w", runID, err)
	}
	r.TypingIncidents = inc.result()
	return r, nil
}

// IncompleteNote is "Incomplete: N of M probed" for an unfinished run, ""
// for a finished one.
func (r *Report) IncompleteNote() string {
	if !r.Incomplete {
		return ""
	}
	return fmt.Sprintf("Incomplete: %s of %s probed", num(r.Total), num(r.Planned))
}

// Count returns the number of conversations of status s.
func (r *Report) Count(s blockreport.Status) int {
	for _, c := range r.Counts {
		if c.Status == s {
			return c.Count
		}
	}
	return 0
}

// Mode describes what a probe mode can and cannot detect.
type Mode struct {
	Name         string
	Description  string
	Detects      []string
	CannotDetect []string
}

// mutingNote is said in every report: no API shows who muted the bot.
const mutingNote = "Muting cannot be observed: no Teams or Bot Framework API tells a bot that a user muted it, and a muted chat still accepts messages. This report never guesses it."

// ModeOf describes the probe mode name a run was made with.
func ModeOf(name string) Mode {
	switch name {
	case "typing":
		return Mode{
			Name:         name,
			Description:  "A typing indicator was sent to each conversation; users see at most a brief \"typing…\".",
			Detects:      []string{"blocked", "uninstalled", "admin disabled", "not found"},
			CannotDetect: []string{"muted (no API shows it)"},
		}
	case "message":
		return Mode{
			Name:         name,
			Description:  "A real message was sent to each conversation.",
			Detects:      []string{"blocked", "uninstalled", "admin disabled", "not found"},
			CannotDetect: []string{"muted (no API shows it)"},
		}
	case "members":
		return Mode{
			Name:         name,
			Description:  "The conversation's member list was read; nothing was sent to users.",
			Detects:      []string{"uninstalled", "admin disabled", "not found"},
			CannotDetect: []string{"blocked (a user who blocked the bot is still a member, so blocked users show as reachable)", "muted (no API shows it)"},
		}
	}
	return Mode{
		Name:         name,
		Description:  "Unknown probe mode: what it detects is not known to this report.",
		CannotDetect: []string{"muted (no API shows it)"},
	}
}
