package report

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// layoutSource has three finished runs of 2,000 users in two tenants, the
// first named by Graph, with departments on most rows.
func layoutSource() *memSource {
	src := &memSource{rows: map[int64][]blockreport.Row{}}
	starts := []time.Time{t0, t1, time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)}
	blocked := []int{100, 120, 142}
	for i, start := range starts {
		id := int64(i + 1)
		totals := map[blockreport.Status]int{}
		var rows []blockreport.Row
		status := func(i, u int) blockreport.Status {
			switch {
			case u < blocked[i]:
				return blockreport.StatusBlocked
			case u < blocked[i]+20:
				return blockreport.StatusAdminDisabled
			case u < blocked[i]+40:
				return blockreport.StatusNotFound
			}
			return blockreport.StatusReachable
		}
		for u := 0; u < 2000; u++ {
			st := status(i, u)
			totals[st]++
			tenant, name := "tenant-b", ""
			if u%2 == 0 {
				tenant, name = "tenant-a", "Fabrikam"
			}
			dept := []string{"Sales", "Engineering", ""}[u%3]
			row := blockreport.Row{
				Reference: blockreport.Reference{ID: int64(u + 1), TenantID: tenant, UserID: fmt.Sprintf("29:u%d", u),
					ConversationID: fmt.Sprintf("a:c%d", u), ConversationType: blockreport.ConversationPersonal},
				Result: blockreport.Result{RunID: id, Status: st, ProbedAt: start},
			}
			row.TenantName, row.Department = name, dept
			if i > 0 {
				row.PreviousStatus = status(i-1, u)
			}
			rows = append(rows, row)
		}
		src.rows[id] = rows
		src.runs = append(src.runs, blockreport.Run{ID: id, StartedAt: start, FinishedAt: start.Add(time.Hour), Mode: "typing",
			State: blockreport.RunFinished, Totals: totals})
	}
	return src
}

func TestHeadlineAndBreakdowns(t *testing.T) {
	r, err := Build(context.Background(), layoutSource(), 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Headline(), "90.9 % of 2,000 users can receive the bot's messages; blocked 7.1 %, +22 since 1 October."; got != want {
		t.Errorf("headline\n got %q\nwant %q", got, want)
	}
	if got := r.TrendTitle(); got != "Trend of all 3 runs so far" {
		t.Errorf("trend title %q", got)
	}
	if got := strings.Join(trendLabels(r.Trend), "|"); got != "1 Sep 2026|1 Oct 2026|2 Nov 2026" {
		t.Errorf("trend labels %q, want dates", got)
	}
	if len(r.Tenants) != 2 || r.Tenants[0].Label() != "Fabrikam (tenant-a)" || r.Tenants[1].Label() != "tenant-b" {
		t.Errorf("tenants %+v, want the named one with its name and id", r.Tenants)
	}
	var names []string
	for _, d := range r.Departments {
		names = append(names, d.Name)
	}
	// Sales holds users 0, 3, 6, ...: the blocked ones (0..141) split evenly,
	// so the order is by share, with "not known" last.
	if len(names) != 3 || names[2] != "" {
		t.Errorf("departments %q, want three with the unknown one last", names)
	}

	// One run alone: no "last 1 runs".
	src := layoutSource()
	src.runs = src.runs[:1]
	r1, err := Build(context.Background(), src, 1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r1.TrendTitle(); strings.Contains(got, "1 runs") || !strings.Contains(got, "first run") {
		t.Errorf("single-run trend title %q", got)
	}
	if strings.Contains(r1.Headline(), "since") {
		t.Errorf("first run's headline compares: %q", r1.Headline())
	}
}

// TestDepartmentsOnlyWithGraph: without any department, no breakdown.
func TestDepartmentsOnlyWithGraph(t *testing.T) {
	r, err := Build(context.Background(), fixture(), 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Departments) != 0 {
		t.Errorf("departments %+v without any from Graph", r.Departments)
	}
}

// TestSameOrderHTMLAndWorkbook: headline, trend, tenants, departments come
// before the lists in both, in the same order.
func TestSameOrderHTMLAndWorkbook(t *testing.T) {
	src := layoutSource()
	page := renderHTML(t, src, 3, Options{})
	order := []string{"90.9 % of 2,000 users", `id="trend"`, `id="tenants"`, `id="departments-summary"`, `id="scopes"`, `id="statuses"`, `id="changes"`, `id="blocked"`}
	last := -1
	for _, s := range order {
		i := strings.Index(page, s)
		if i < 0 || i < last {
			t.Fatalf("HTML: %q at %d, after %d: want the order %q", s, i, last, order)
		}
		last = i
	}
	if strings.Contains(page, ">#1<") || !strings.Contains(page, ">1 Sep<") {
		t.Error("HTML trend axis has run numbers, not dates")
	}
	if !strings.Contains(page, "Fabrikam") {
		t.Error("HTML does not name the tenant")
	}

	f := openWorkbook(t, workbook(t, src, 3, Options{}))
	rows, err := f.GetRows(SheetSummary)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"90.9 % of 2,000 users", "Key figures", "Trend of all 3 runs", "By tenant (2)", "By department (3)", "By scope", "Every status", "Changes since the previous run", "About this run"}
	k := 0
	for _, row := range rows {
		if len(row) > 0 && k < len(want) && strings.HasPrefix(row[0], want[k]) {
			k++
		}
	}
	if k != len(want) {
		t.Errorf("Summary sections: found %d of %q in order (missing %q)", k, want, want[k])
	}
	if r := findRow(t, f, SheetSummary, 0, "Fabrikam (tenant-a)"); r == 0 || cell(t, f, SheetSummary, "B"+itoa(r)) != "1,000" {
		t.Error("Summary lacks the named tenant with its count and thousands separator")
	}
	if got := cell(t, f, SheetTrend, "B2"); got != "1 Sep 2026" {
		t.Errorf("Trend B2 = %q, want the run's date", got)
	}
	if got := cell(t, f, SheetTrend, "O4"); got != "7.1%" {
		t.Errorf("Trend O4 (blocked share of run 3) = %q, want 7.1%% (the HTML trend's measure)", got)
	}
}

// TestWorkbookChartColours: both workbook charts draw each status in the
// HTML page's colour, not the spreadsheet's defaults.
func TestWorkbookChartColours(t *testing.T) {
	b := workbook(t, layoutSource(), 3, Options{})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	charts := 0
	for _, zf := range zr.File {
		if !strings.HasPrefix(zf.Name, "xl/charts/chart") {
			continue
		}
		rc, _ := zf.Open()
		x, _ := io.ReadAll(rc)
		rc.Close()
		charts++
		for _, s := range []blockreport.Status{blockreport.StatusBlocked, blockreport.StatusAdminDisabled, blockreport.StatusNotFound} {
			if c := strings.ToUpper(strings.TrimPrefix(color(s), "#")); !strings.Contains(strings.ToUpper(string(x)), `"`+c+`"`) {
				t.Errorf("%s lacks the %s colour %s", zf.Name, s, c)
			}
		}
		if strings.Contains(string(x), "accent") && !strings.Contains(string(x), "srgbClr") {
			t.Errorf("%s uses the theme's default colours", zf.Name)
		}
	}
	if charts != 3 { // Summary: trend and status mix; Trend sheet: trend
		t.Errorf("%d charts, want 3", charts)
	}
}

// TestEverySheetPrintsOnePageWide: every sheet of the workbook, the list
// sheets of 2,000 rows included, is set to print one page wide (fit to
// width, any number of pages down), so a workbook prints in pages, not in
// hundreds of column strips.
func TestEverySheetPrintsOnePageWide(t *testing.T) {
	b := workbook(t, layoutSource(), 3, Options{})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	sheets := 0
	for _, zf := range zr.File {
		if !strings.HasPrefix(zf.Name, "xl/worksheets/sheet") {
			continue
		}
		rc, _ := zf.Open()
		x, _ := io.ReadAll(rc)
		rc.Close()
		sheets++
		s := string(x)
		if !strings.Contains(s, `fitToPage="1"`) && !strings.Contains(s, `fitToPage="true"`) {
			t.Errorf("%s: not fit to page", zf.Name)
		}
		if !strings.Contains(s, `fitToWidth="1"`) || !strings.Contains(s, `fitToHeight="0"`) {
			t.Errorf("%s: not one page wide: %s", zf.Name, s[strings.LastIndex(s, "<pageSetup"):])
		}
	}
	if sheets < 8 {
		t.Errorf("%d sheets", sheets)
	}
}

// TestTrendLabelsKeepApart: dates too close for one row alternate between
// two, and end labels of equal values do not overlap.
func TestTrendLabelsKeepApart(t *testing.T) {
	r := &Report{}
	for i := 0; i < 12; i++ {
		r.Trend = append(r.Trend, TrendPoint{RunID: int64(i + 1), StartedAt: t0.AddDate(0, i, 0), Total: 100,
			Counts: Counts{blockreport.StatusAdminDisabled: 1, blockreport.StatusNotFound: 1}})
	}
	ys := map[float64]bool{}
	for _, l := range trendChart(r).XLabel {
		ys[l.Y] = true
	}
	if len(ys) != 2 {
		t.Errorf("12 dates on %d rows, want 2", len(ys))
	}
	r.Trend = r.Trend[:3]
	c := trendChart(r)
	ys = map[float64]bool{}
	for _, l := range c.XLabel {
		ys[l.Y] = true
	}
	if len(ys) != 1 {
		t.Errorf("3 dates on %d rows, want 1", len(ys))
	}
	for i, a := range c.Lines {
		for _, b := range c.Lines[i+1:] {
			if d := a.EndY - b.EndY; d > -endLabelGap+0.01 && d < endLabelGap-0.01 {
				t.Errorf("end labels %q and %q %g apart", a.EndText, b.EndText, d)
			}
		}
	}
}
