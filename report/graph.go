package report

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// Sheets of the Graph parts of the workbook.
const (
	SheetDepartments = "Departments"
	SheetCoverage    = "Coverage"
)

// GraphSource is what a Source offers when the run used Microsoft Graph
// (*store.DB): each tenant's Graph state and the coverage lists. Build
// asks for it with a type assertion, so a Source without it still works.
type GraphSource interface {
	TenantGraphs(ctx context.Context, runID int64) ([]blockreport.TenantGraph, error)
	// Coverage calls fn for every enabled directory user of the run's
	// consented tenants that has no reference, with the directory's view.
	Coverage(ctx context.Context, runID int64, fn func(blockreport.CoverageUser, blockreport.DirectoryUser) error) error
}

// GraphSummary is what Microsoft Graph did in the run.
type GraphSummary struct {
	// Checked is the number of results Graph cross-checked (0: Graph was
	// off for the run).
	Checked   int
	Confirmed int
	Changed   int // verdicts Graph changed
	// BlockedToUninstalled are the changes from blocked (or a code-less
	// 403) to uninstalled.
	BlockedToUninstalled int
	Relinked             int // stale conversations re-linked to the installation's chat
	Noted                int // disagreements noted, the connector's verdict kept
	Unknown              int // no definite installation answer
	NotInDirectory       int // users the directory no longer has (who left)
	Disabled             int // users whose account is disabled
	// Unavailable are the tenants Graph could not be used for, with why.
	Unavailable []blockreport.TenantGraph
	// Coverage is per consented tenant with coverage on: how many enabled
	// users the bot can reach.
	Coverage []TenantCoverage
	// NotInstalled are the first Options.ListLimit enabled users who never
	// installed the app (none when redacted); NotInstalledTotal counts all.
	NotInstalled      []CoverageRow
	NotInstalledTotal int
}

// TenantCoverage is the adoption of one tenant: of its enabled users, how
// many the bot can reach.
type TenantCoverage struct {
	TenantID     string
	Name         string
	EnabledUsers int
	Reachable    int // enabled users with a reachable conversation in this run
	NotInstalled int
}

// Label names the tenant: its name and id, or its id.
func (t TenantCoverage) Label() string {
	if t.Name != "" {
		return t.Name + " (" + t.TenantID + ")"
	}
	return t.TenantID
}

// Sentence is "N of M enabled users in <tenant> can be reached".
func (t TenantCoverage) Sentence() string {
	name := t.Name
	if name == "" {
		name = "tenant " + t.TenantID
	}
	return fmt.Sprintf("%s of %s enabled users in %s can be reached", num(t.Reachable), num(t.EnabledUsers), name)
}

// CoverageRow is one enabled user who never installed the app.
type CoverageRow struct {
	TenantID, TenantName          string
	DisplayName, UPN, Department  string
	JobTitle, OfficeLocation, AAD string
}

// graphAcc gathers the Graph parts of a report while Build streams rows.
type graphAcc struct {
	sum       GraphSummary
	reachable map[string]int // per tenant: reachable personal rows of enabled directory users
}

func newGraphAcc() *graphAcc {
	return &graphAcc{reachable: map[string]int{}}
}

// row takes one row into account (departments and tenant names are
// Build's own).
func (g *graphAcc) row(row blockreport.Row, _ *TenantCount) {
	s := &g.sum
	if row.GraphOutcome != "" {
		s.Checked++
	}
	switch row.GraphOutcome {
	case blockreport.GraphConfirmed:
		s.Confirmed++
	case blockreport.GraphChanged:
		s.Changed++
		if row.Status == blockreport.StatusUninstalled {
			s.BlockedToUninstalled++
		}
	case blockreport.GraphRelinked:
		s.Relinked++
	case blockreport.GraphNoted:
		s.Noted++
	case blockreport.GraphUnknown:
		s.Unknown++
	}
	switch row.Account {
	case "not in directory":
		s.NotInDirectory++
	case "disabled":
		s.Disabled++
	}
	// One personal conversation per user: a row count is a user count
	// (and memory stays flat in the number of rows).
	if row.Status == blockreport.StatusReachable && row.Account == "enabled" && row.ConversationType == blockreport.ConversationPersonal {
		g.reachable[row.TenantID]++
	}
}

// finish fills the report's departments and Graph summary.
func (g *graphAcc) finish(ctx context.Context, src Source, r *Report, opts Options) error {
	gs, ok := src.(GraphSource)
	if !ok {
		r.Graph = g.sum
		return nil
	}
	tenants, err := gs.TenantGraphs(ctx, r.Run.ID)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, t := range tenants {
		names[t.TenantID] = t.Name
		if !t.Available {
			t.Name, t.Reason = clean(t.Name), clean(t.Reason)
			g.sum.Unavailable = append(g.sum.Unavailable, t)
		}
	}
	cov := map[string]*TenantCoverage{}
	for _, t := range tenants {
		if t.Available && t.EnabledUsers >= 0 {
			cov[t.TenantID] = &TenantCoverage{TenantID: t.TenantID, Name: clean(t.Name), EnabledUsers: t.EnabledUsers,
				Reachable: g.reachable[t.TenantID]}
		}
	}
	if len(cov) > 0 {
		err := gs.Coverage(ctx, r.Run.ID, func(c blockreport.CoverageUser, u blockreport.DirectoryUser) error {
			if c.Installed {
				return nil
			}
			if tc := cov[c.TenantID]; tc != nil {
				tc.NotInstalled++
			}
			g.sum.NotInstalledTotal++
			if !opts.Redact && len(g.sum.NotInstalled) < opts.listLimit() {
				g.sum.NotInstalled = append(g.sum.NotInstalled, CoverageRow{
					TenantID: clean(c.TenantID), TenantName: clean(names[c.TenantID]), DisplayName: clean(u.DisplayName),
					UPN: clean(u.UPN), Department: clean(u.Department), JobTitle: clean(u.JobTitle),
					OfficeLocation: clean(u.OfficeLocation), AAD: clean(c.AADObjectID),
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, tc := range cov {
			g.sum.Coverage = append(g.sum.Coverage, *tc)
		}
		sort.Slice(g.sum.Coverage, func(i, j int) bool { return g.sum.Coverage[i].TenantID < g.sum.Coverage[j].TenantID })
	}
	r.Graph = g.sum
	return nil
}

// GraphLine is the summary's sentence about Graph's cross-check, "" when
// Graph was off.
func (r *Report) GraphLine() string {
	s := r.Graph
	if s.Checked == 0 && len(s.Unavailable) == 0 {
		return ""
	}
	line := fmt.Sprintf("Microsoft Graph checked %s conversations: confirmed %s verdicts and changed %s (%s blocked → uninstalled, %s stale conversations re-linked and probed again)",
		num(s.Checked), num(s.Confirmed), num(s.Changed+s.Relinked), num(s.BlockedToUninstalled), num(s.Relinked))
	if s.Noted > 0 {
		line += fmt.Sprintf("; %s disagreements noted", num(s.Noted))
	}
	if s.Unknown > 0 {
		line += fmt.Sprintf("; %s without an answer", num(s.Unknown))
	}
	line += "."
	if s.NotInDirectory > 0 || s.Disabled > 0 {
		line += fmt.Sprintf(" %s users are no longer in the directory and %s accounts are disabled: the cleanup list.", num(s.NotInDirectory), num(s.Disabled))
	}
	return line
}

// GraphNotes are the report's notes about tenants Graph could not be used
// for: their connector verdicts stand.
func (r *Report) GraphNotes() []string {
	var out []string
	for _, t := range r.Graph.Unavailable {
		name := t.TenantID
		if t.Name != "" {
			name = t.Name + " (" + t.TenantID + ")"
		}
		out = append(out, fmt.Sprintf("Graph unavailable for tenant %s: %s. Its verdicts are the connector's alone; Installed (Graph) is unknown.", name, t.Reason))
	}
	return out
}

// CoverageLines are the summary's adoption sentences, one per tenant.
func (r *Report) CoverageLines() []string {
	var out []string
	for _, t := range r.Graph.Coverage {
		out = append(out, t.Sentence()+".")
	}
	return out
}

// graphHeadlines are the summary's Graph sentences, below the headline.
func graphHeadlines(r *Report) []string {
	var out []string
	if l := r.GraphLine(); l != "" {
		out = append(out, l)
	}
	out = append(out, r.CoverageLines()...)
	return append(out, r.GraphNotes()...)
}

// graphSheets names the Graph sheets the workbook gets.
func graphSheets(r *Report, redact bool) []string {
	var out []string
	if len(r.Departments) > 0 {
		out = append(out, SheetDepartments)
	}
	if len(r.Graph.Coverage) > 0 && !redact {
		out = append(out, SheetCoverage)
	}
	return out
}

var departmentHeader = []string{"Department", "Total", "Reachable", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out", "Reachable share", "Blocked share"}

// writeGraphSheets writes the Departments and Coverage sheets named by
// graphSheets.
func writeGraphSheets(f *excelize.File, st styles, r *Report, redact bool) error {
	for _, sh := range graphSheets(r, redact) {
		var err error
		switch sh {
		case SheetDepartments:
			err = writeDepartments(f, st, r)
		case SheetCoverage:
			err = writeCoverage(f, st, r)
		}
		if err != nil {
			return fmt.Errorf("write sheet %s: %w", sh, err)
		}
	}
	return nil
}

func writeDepartments(f *excelize.File, st styles, r *Report) error {
	const sh = SheetDepartments
	if err := headerRow(f, st, sh, 1, 1, departmentHeader); err != nil {
		return err
	}
	for i, d := range r.Departments {
		name := d.Name
		if name == "" {
			name = "(not known)"
		}
		v := append([]any{name}, countValues(d.Total, d.Counts)...)
		v = append(v, d.Counts.Share(blockreport.StatusReachable, d.Total), d.Counts.Share(blockreport.StatusBlocked, d.Total))
		if err := cells(f, sh, i+2, v...); err != nil {
			return err
		}
	}
	last := len(r.Departments) + 1
	if err := styleRange(f, sh, 2, 2, len(departmentHeader)-2, last, st.count); err != nil {
		return err
	}
	if err := styleRange(f, sh, len(departmentHeader)-1, 2, len(departmentHeader), last, st.pct); err != nil {
		return err
	}
	if err := printLandscape(f, sh, true); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "A", "A", 28); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "B", "K", 14); err != nil {
		return err
	}
	return f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"})
}

var coverageHeader = []string{"Tenant", "Tenant ID", "Enabled users", "Reachable", "Never installed", "Reachable share"}
var coverageUserHeader = []string{"Display name", "UPN", "Department", "Job title", "Office", "Tenant", "AAD object ID"}

func writeCoverage(f *excelize.File, st styles, r *Report) error {
	const sh = SheetCoverage
	if err := cells(f, sh, 1, "Adoption: enabled users of each consented tenant, and those who never installed the bot (the gap admins close by deploying the app)"); err != nil {
		return err
	}
	if err := f.SetCellStyle(sh, "A1", "A1", st.bold); err != nil {
		return err
	}
	row := 3
	if err := headerRow(f, st, sh, row, 2, coverageHeader); err != nil {
		return err
	}
	for _, t := range r.Graph.Coverage {
		row++
		share := 0.0
		if t.EnabledUsers > 0 {
			share = float64(t.Reachable) / float64(t.EnabledUsers)
		}
		if err := cells(f, sh, row, t.Name, t.TenantID, t.EnabledUsers, t.Reachable, t.NotInstalled, share); err != nil {
			return err
		}
		if err := f.SetCellStyle(sh, fmt.Sprintf("C%d", row), fmt.Sprintf("E%d", row), st.count); err != nil {
			return err
		}
		if err := f.SetCellStyle(sh, fmt.Sprintf("F%d", row), fmt.Sprintf("F%d", row), st.pct); err != nil {
			return err
		}
	}
	row += 2
	uh := make([]any, len(coverageUserHeader))
	for i, h := range coverageUserHeader {
		uh[i] = h
	}
	title := fmt.Sprintf("Never installed the app: %s users", num(r.Graph.NotInstalledTotal))
	if n := r.Graph.NotInstalledTotal - len(r.Graph.NotInstalled); n > 0 {
		title += fmt.Sprintf(" (the first %s listed)", num(len(r.Graph.NotInstalled)))
	}
	if err := cells(f, sh, row, title); err != nil {
		return err
	}
	if err := f.SetCellStyle(sh, fmt.Sprintf("A%d", row), fmt.Sprintf("A%d", row), st.bold); err != nil {
		return err
	}
	row++
	if err := cells(f, sh, row, uh...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, len(uh), row, st.header); err != nil {
		return err
	}
	for _, u := range r.Graph.NotInstalled {
		row++
		tenant := u.TenantName
		if tenant == "" {
			tenant = u.TenantID
		}
		if err := cells(f, sh, row, u.DisplayName, u.UPN, u.Department, u.JobTitle, u.OfficeLocation, tenant, u.AAD); err != nil {
			return err
		}
	}
	for col, w := range map[string]float64{"A": 28, "B": 34, "C": 18, "D": 18, "E": 16, "F": 24, "G": 38} {
		if err := f.SetColWidth(sh, col, col, w); err != nil {
			return err
		}
	}
	return printLandscape(f, sh, true)
}

// installedLabel is the "Installed (Graph)" cell of a row.
func installedLabel(r blockreport.Row) string {
	if r.Installed == "" {
		return ""
	}
	return strings.ToLower(string(r.Installed))
}

func init() {
	// Template functions of the Graph parts of the HTML page.
	funcs["installed"] = installedLabel
	funcs["ratio"] = func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
}

// HasGraph tells whether the run used Microsoft Graph.
func (r *Report) HasGraph() bool { return r.Graph.Checked > 0 || len(r.Graph.Unavailable) > 0 }

func init() {
	funcs["graphTable"] = func(t rowTable, graph bool) rowTable { t.Graph = graph; return t }
}

// graphAnswer is the "Graph answer" cell: Graph's raw answer and what it
// did, e.g. "HTTP 200 not installed; changed from blocked: Graph: app not
// installed, ...".
func graphAnswer(r blockreport.Row) string {
	if r.GraphOutcome == "" {
		return ""
	}
	out := string(r.GraphOutcome)
	if r.GraphAnswer != "" {
		out = r.GraphAnswer + "; " + out
	}
	if r.ConnectorStatus != "" {
		out += " from " + r.ConnectorStatus.Label()
	}
	if r.OldConversationID != "" {
		out += " (was " + r.OldConversationID + ")"
	}
	if r.GraphNote != "" {
		out += ": " + r.GraphNote
	}
	return out
}
