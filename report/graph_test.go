package report

import (
	"bytes"
	"context"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

// graphSource is memSource with Graph's tenant states and coverage.
type graphSource struct {
	*memSource
	tenants  []blockreport.TenantGraph
	coverage []blockreport.CoverageUser
}

func (g *graphSource) TenantGraphs(context.Context, int64) ([]blockreport.TenantGraph, error) {
	return g.tenants, nil
}

func (g *graphSource) Coverage(_ context.Context, _ int64, fn func(blockreport.CoverageUser, blockreport.DirectoryUser) error) error {
	for _, c := range g.coverage {
		if err := fn(c, blockreport.DirectoryUser{TenantID: c.TenantID, AADObjectID: c.AADObjectID, InDirectory: true,
			DisplayName: "Never " + c.AADObjectID, Department: "Legal", AccountEnabled: true}); err != nil {
			return err
		}
	}
	return nil
}

// graphFixture is the fixture with Graph's fields: departments, tenant
// names, cross-check outcomes, an unavailable tenant and coverage.
func graphFixture() *graphSource {
	src := fixture()
	rows := src.rows[3]
	depts := map[int64]string{1: "Sales", 2: "Sales", 3: "Finance", 4: "Sales", 5: "Finance", 7: "Finance", 13: "HR"}
	for i := range rows {
		r := &rows[i]
		r.Department = depts[r.Reference.ID]
		if r.TenantID == "tenant-aaaa" {
			r.TenantName = "Contoso Ltd"
			r.Account, r.Installed, r.GraphOutcome = "enabled", blockreport.InstalledYes, blockreport.GraphConfirmed
		}
	}
	rows[3].GraphOutcome, rows[3].ConnectorStatus, rows[3].Installed = blockreport.GraphChanged, blockreport.StatusBlocked, blockreport.InstalledNo
	rows[0].GraphOutcome = blockreport.GraphRelinked
	rows[6].Account = "not in directory"
	return &graphSource{memSource: src,
		tenants: []blockreport.TenantGraph{
			{TenantID: "tenant-aaaa", Name: "Contoso Ltd", Available: true, EnabledUsers: 10},
			{TenantID: "tenant-bbbb", Available: false, Reason: "403 Authorization_RequestDenied: the app is not consented", EnabledUsers: -1},
		},
		coverage: []blockreport.CoverageUser{
			{TenantID: "tenant-aaaa", AADObjectID: "x1"}, {TenantID: "tenant-aaaa", AADObjectID: "x2"},
			{TenantID: "tenant-aaaa", AADObjectID: "x3", Installed: true, ReferenceID: 99},
		},
	}
}

func TestGraphReport(t *testing.T) {
	src := graphFixture()
	r, err := Build(context.Background(), src, 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Departments sorted by blocked share: Sales 1/3, Finance 1/3 (3 rows),
	// then the rest; "" gathers the unknown.
	var names []string
	for _, d := range r.Departments {
		names = append(names, d.Name)
	}
	if len(names) != 4 || names[0] != "Finance" && names[0] != "Sales" || names[3] == "Finance" {
		t.Errorf("departments %q", names)
	}
	for _, d := range r.Departments {
		if d.Name == "Sales" && (d.Total != 3 || d.Counts[blockreport.StatusBlocked] != 1) {
			t.Errorf("Sales %+v", d)
		}
	}
	if r.Tenants[0].Name != "Contoso Ltd" || r.Tenants[1].Name != "" {
		t.Errorf("tenant names %+v", r.Tenants)
	}
	g := r.Graph
	if g.Checked != 7 || g.Changed != 1 || g.BlockedToUninstalled != 1 || g.Relinked != 1 || g.Confirmed != 5 || g.NotInDirectory != 1 {
		t.Errorf("graph summary %+v", g)
	}
	line := r.GraphLine()
	for _, want := range []string{"confirmed 5", "changed 2", "1 blocked → uninstalled", "1 stale conversations re-linked"} {
		if !strings.Contains(line, want) {
			t.Errorf("graph line %q lacks %q", line, want)
		}
	}
	if notes := r.GraphNotes(); len(notes) != 1 || !strings.Contains(notes[0], "tenant-bbbb") || !strings.Contains(notes[0], "not consented") {
		t.Errorf("notes %q", notes)
	}
	if len(g.Coverage) != 1 || g.Coverage[0].NotInstalled != 2 || g.NotInstalledTotal != 2 || len(g.NotInstalled) != 2 {
		t.Fatalf("coverage %+v", g)
	}
	// Reachable enabled users of Contoso: rows 1 and 7 are reachable; 7
	// is not in the directory.
	if s := g.Coverage[0].Sentence(); s != "1 of 10 enabled users in Contoso Ltd can be reached" {
		t.Errorf("coverage sentence %q", s)
	}

	var html bytes.Buffer
	if err := WriteHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="coverage"`, "By department", "Installed (Graph)", "Contoso Ltd", "Graph unavailable for tenant tenant-bbbb", "1 of 10 enabled users in Contoso Ltd can be reached", "Never x1"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	var xb bytes.Buffer
	if err := WriteExcel(context.Background(), &xb, r, src, Options{}); err != nil {
		t.Fatal(err)
	}
	wb := openWorkbook(t, xb.Bytes())
	if got := cell(t, wb, SheetDepartments, "A1"); got != "Department" {
		t.Errorf("Departments A1 %q", got)
	}
	if row := findRow(t, wb, SheetCoverage, 0, "Contoso Ltd"); row == 0 {
		t.Error("Coverage sheet has no Contoso row")
	}
	if row := findRow(t, wb, SheetCoverage, 0, "Never x2"); row == 0 {
		t.Error("Coverage sheet does not list a user who never installed")
	}
	// List sheets carry Graph's columns.
	rows, err := wb.GetRows(SheetAll)
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var changed bool
	for _, r := range rows[1:] {
		get := func(h string) string {
			if i, ok := col[h]; ok && i < len(r) {
				return r[i]
			}
			return ""
		}
		if get("Tenant ID") == "tenant-aaaa" && (get("Tenant name") != "Contoso Ltd" || get("Account") == "" || get("Installed (Graph)") == "") {
			t.Errorf("Contoso row without Graph's columns: %q", r)
		}
		if get("Installed (Graph)") == "no" && strings.Contains(get("Graph answer"), "changed from Blocked") {
			changed = true
		}
	}
	if !changed {
		t.Error("no list row shows the verdict Graph changed")
	}
	if got := cell(t, wb, SheetTenants, "A2"); got != "Contoso Ltd (tenant-aaaa)" {
		t.Errorf("Tenants A2 %q", got)
	}
	if got := cell(t, wb, SheetSummary, "A4"); !strings.HasPrefix(got, "Microsoft Graph checked") {
		t.Errorf("summary A4 %q, want the Graph line right below the headline", got)
	}
	if got := cell(t, wb, SheetSummary, "A5"); !strings.HasSuffix(got, "can be reached.") {
		t.Errorf("summary A5 %q, want the coverage sentence", got)
	}
	// A redacted copy keeps departments (counts) but lists nobody.
	red, err := Build(context.Background(), src, 3, Options{Redact: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(red.Graph.NotInstalled) != 0 || len(red.Departments) == 0 {
		t.Errorf("redacted: %d users listed, %d departments", len(red.Graph.NotInstalled), len(red.Departments))
	}
}

// *store.DB must offer GraphSource: checked in the store's own terms in
// cmd/blockreport's tests; here the interface is only satisfied by the
// test source.
var _ GraphSource = (*graphSource)(nil)
