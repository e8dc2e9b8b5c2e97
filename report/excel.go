package report

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// SuggestedMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit)
// a command writing large workbooks should run under. Each excelize stream
// writer keeps a 16-32 MB buffer once its sheet passes 16 MB, so seven big
// sheets hold ~150-220 MB live; without a limit the garbage collector lets
// the heap grow to twice that. With it, a 1,000,000-row workbook stays under
// 500 MB resident (see BENCHMARKS.md).
const SuggestedMemoryLimit = 400 << 20

// Sheet names of the workbook, in order.
const (
	SheetSummary = "Summary"
	SheetTrend   = "Trend"
	SheetTenants = "Tenants"
	SheetChanged = "Changed"
	SheetAll     = "All conversations"
)

// Columns is the header row of every list sheet.
var Columns = []string{
	"Status", "Reason", "User name", "Email", "AAD object ID", "Teams user ID",
	"Tenant ID", "Scope", "Conversation ID", "HTTP status", "Probed at",
	"Status since", "Previous status", "Detail", "Team ID", "Service URL",
}

var columnWidths = []float64{14, 28, 26, 30, 38, 30, 38, 15, 44, 11, 19, 19, 15, 40, 36, 40}

// Column numbers (1-based) of the date-time columns.
const (
	colProbedAt    = 11
	colStatusSince = 12
)

// maxDataRows is how many rows below the header an Excel sheet can hold.
const maxDataRows = excelize.TotalRows - 1

const dateTimeFormat = "yyyy-mm-dd hh:mm:ss"

// styles are the cell styles of the workbook.
type styles struct {
	header, title, bold, date, pct, count, delta, wrap, left, leftDate int
}

// font is the workbook's default font, named in bold styles too so that
// LibreOffice does not substitute a serif font for them.
const font = "Calibri"

// printLandscape makes a sheet print landscape and, with fit, one page
// wide. For a streamed sheet it must be called before its stream writer is
// created.
func printLandscape(f *excelize.File, sheet string, fit bool) error {
	land := "landscape"
	if !fit {
		return f.SetPageLayout(sheet, &excelize.PageLayoutOptions{Orientation: &land})
	}
	one, any0 := 1, 0
	if err := f.SetSheetProps(sheet, &excelize.SheetPropsOptions{FitToPage: &fit}); err != nil {
		return err
	}
	return f.SetPageLayout(sheet, &excelize.PageLayoutOptions{Orientation: &land, FitToWidth: &one, FitToHeight: &any0})
}

// axis is a chart axis with black labels (LibreOffice draws them pale grey
// otherwise).
func axis(reverse bool) excelize.ChartAxis {
	return excelize.ChartAxis{ReverseOrder: reverse, Font: excelize.Font{Color: "000000"}}
}

func newStyles(f *excelize.File) (styles, error) {
	var s styles
	dt, pf, cf, df := dateTimeFormat, "0.0%", "#,##0", "+#,##0;-#,##0;0"
	defs := []struct {
		id    *int
		style excelize.Style
	}{
		{&s.header, excelize.Style{
			Font:      &excelize.Font{Bold: true, Color: "FFFFFF", Family: font},
			Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E79"}},
			Alignment: &excelize.Alignment{Vertical: "center"},
			Border:    []excelize.Border{{Type: "bottom", Color: "000000", Style: 1}},
		}},
		{&s.title, excelize.Style{Font: &excelize.Font{Bold: true, Size: 14, Family: font}}},
		{&s.bold, excelize.Style{Font: &excelize.Font{Bold: true, Family: font}, Alignment: &excelize.Alignment{Vertical: "top"}}},
		{&s.date, excelize.Style{CustomNumFmt: &dt}},
		{&s.pct, excelize.Style{CustomNumFmt: &pf}},
		{&s.count, excelize.Style{CustomNumFmt: &cf}},
		{&s.delta, excelize.Style{CustomNumFmt: &df}},
		{&s.wrap, excelize.Style{Alignment: &excelize.Alignment{WrapText: true, Vertical: "top", Horizontal: "left"}}},
		{&s.left, excelize.Style{Alignment: &excelize.Alignment{Horizontal: "left"}}},
		{&s.leftDate, excelize.Style{CustomNumFmt: &dt, Alignment: &excelize.Alignment{Horizontal: "left"}}},
	}
	for _, d := range defs {
		id, err := f.NewStyle(&d.style)
		if err != nil {
			return s, fmt.Errorf("create workbook style: %w", err)
		}
		*d.id = id
	}
	return s, nil
}

// excelTime is t as an Excel serial date-time (days since 1899-12-30, UTC),
// written as a number with a date format: a real date-time, not text.
func excelTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	const unixEpoch = 25569 // 1970-01-01 as an Excel serial
	t = t.UTC()
	return unixEpoch + float64(t.Unix())/86400 + float64(t.Nanosecond()/int(time.Millisecond))/86400e3
}

// listSheet is one streamed list sheet being written.
type listSheet struct {
	name      string
	sw        *excelize.StreamWriter
	rows      int // data rows written
	total     int // data rows seen, written or not
	truncated bool
}

// WriteExcel writes the workbook of r to w. Unless the report is redacted it
// makes a second streamed pass over the run's rows in src, writing every
// conversation with excelize stream writers (one per list sheet, all open at
// once), so memory stays flat for any number of rows.
func WriteExcel(ctx context.Context, w io.Writer, r *Report, src Source, opts Options) error {
	redact := opts.Redact || r.Redacted
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", SheetSummary); err != nil {
		return fmt.Errorf("create workbook: %w", err)
	}
	names := []string{SheetTrend, SheetTenants}
	if !redact {
		for _, k := range listKinds {
			names = append(names, string(k))
		}
		names = append(names, SheetChanged, SheetAll)
	}
	for _, n := range names {
		if _, err := f.NewSheet(n); err != nil {
			return fmt.Errorf("create sheet %q: %w", n, err)
		}
	}
	st, err := newStyles(f)
	if err != nil {
		return err
	}
	if err := writeTrend(f, st, r); err != nil {
		return fmt.Errorf("write sheet %s: %w", SheetTrend, err)
	}
	if err := writeTenants(f, st, r); err != nil {
		return fmt.Errorf("write sheet %s: %w", SheetTenants, err)
	}
	var sheets []*listSheet
	if !redact {
		sheets, err = writeLists(ctx, f, st, r, src)
		if err != nil {
			return err
		}
	}
	if err := writeSummary(f, st, r, sheets); err != nil {
		return fmt.Errorf("write sheet %s: %w", SheetSummary, err)
	}
	f.SetActiveSheet(0)
	if err := f.Write(w); err != nil {
		return fmt.Errorf("write workbook of run %d: %w", r.Run.ID, err)
	}
	return nil
}

func writeLists(ctx context.Context, f *excelize.File, st styles, r *Report, src Source) ([]*listSheet, error) {
	byName := map[string]*listSheet{}
	var sheets []*listSheet
	for _, k := range listKinds {
		sheets = append(sheets, &listSheet{name: string(k)})
	}
	sheets = append(sheets, &listSheet{name: SheetChanged}, &listSheet{name: SheetAll})
	header := make([]any, len(Columns))
	for i, c := range Columns {
		header[i] = excelize.Cell{StyleID: st.header, Value: c}
	}
	for _, ls := range sheets {
		// Sixteen columns are unreadable fitted to one page: list sheets
		// print landscape across pages.
		if err := printLandscape(f, ls.name, false); err != nil {
			return nil, fmt.Errorf("set print layout of %q: %w", ls.name, err)
		}
		sw, err := f.NewStreamWriter(ls.name)
		if err != nil {
			return nil, fmt.Errorf("open sheet %q: %w", ls.name, err)
		}
		ls.sw = sw
		byName[ls.name] = ls
		for i, wd := range columnWidths {
			if err := sw.SetColWidth(i+1, i+1, wd); err != nil {
				return nil, fmt.Errorf("set column widths of %q: %w", ls.name, err)
			}
		}
		if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
			return nil, fmt.Errorf("freeze header of %q: %w", ls.name, err)
		}
		if err := sw.SetRow("A1", header, excelize.RowOpts{Height: 20}); err != nil {
			return nil, fmt.Errorf("write header of %q: %w", ls.name, err)
		}
	}
	all, changed := byName[SheetAll], byName[SheetChanged]

	values := make([]any, len(Columns))
	write := func(ls *listSheet) error {
		ls.total++
		if ls.rows >= maxDataRows {
			ls.truncated = true
			return nil
		}
		ls.rows++
		cell, _ := excelize.CoordinatesToCellName(1, ls.rows+1)
		if err := ls.sw.SetRow(cell, values); err != nil {
			return fmt.Errorf("write row %d of sheet %q: %w", ls.rows+1, ls.name, err)
		}
		return nil
	}
	n := 0
	err := src.Rows(ctx, r.Run.ID, func(row blockreport.Row) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rowValues(values, row, st)
		if k, ok := listOf(row.Status); ok {
			if err := write(byName[string(k)]); err != nil {
				return err
			}
		}
		if !r.Incomplete && row.PreviousStatus != "" && row.PreviousStatus != row.Status {
			if err := write(changed); err != nil {
				return err
			}
		}
		return write(all)
	})
	if err != nil {
		return nil, fmt.Errorf("write rows of run %d: %w", r.Run.ID, err)
	}
	last, _ := excelize.ColumnNumberToName(len(Columns))
	for _, ls := range sheets {
		// The filter covers the header and every data row (at least one
		// row, so an empty sheet still gets filter buttons).
		ref := fmt.Sprintf("A1:%s%d", last, max(ls.rows, 1)+1)
		if err := f.AutoFilter(ls.name, ref, nil); err != nil {
			return nil, fmt.Errorf("add filter to sheet %q: %w", ls.name, err)
		}
		if err := ls.sw.Flush(); err != nil {
			return nil, fmt.Errorf("finish sheet %q: %w", ls.name, err)
		}
	}
	return sheets, nil
}

// rowValues fills v with the cells of one row, in Columns order. Every
// string is a string cell (never a formula), cleaned of characters XML
// cannot carry and cut to Excel's cell limit.
func rowValues(v []any, r blockreport.Row, st styles) {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return clean(s)
	}
	date := func(t time.Time) any {
		x := excelTime(t)
		if x == nil {
			return nil
		}
		return excelize.Cell{StyleID: st.date, Value: x}
	}
	var prev any
	if r.PreviousStatus != "" {
		prev = r.PreviousStatus.Label()
	}
	var code any
	if r.HTTPStatus != 0 {
		code = r.HTTPStatus
	}
	v[0] = r.Status.Label()
	v[1] = str(Reason(r))
	v[2] = str(r.UserName)
	v[3] = str(r.Email)
	v[4] = str(r.AADObjectID)
	v[5] = str(r.UserID)
	v[6] = str(r.TenantID)
	v[7] = string(scopeOf(r.ConversationType))
	v[8] = str(r.ConversationID)
	v[9] = code
	v[colProbedAt-1] = date(r.ProbedAt)
	v[colStatusSince-1] = date(r.StatusSince)
	v[12] = prev
	v[13] = str(r.Detail)
	v[14] = str(r.TeamID)
	v[15] = str(r.ServiceURL)
}

// cells writes a row of values starting at column 1 of row.
func cells(f *excelize.File, sheet string, row int, values ...any) error {
	cell, _ := excelize.CoordinatesToCellName(1, row)
	for i, v := range values {
		if s, ok := v.(string); ok {
			values[i] = clean(s)
		}
	}
	return f.SetSheetRow(sheet, cell, &values)
}

func styleRange(f *excelize.File, sheet string, c1, r1, c2, r2, style int) error {
	a, _ := excelize.CoordinatesToCellName(c1, r1)
	b, _ := excelize.CoordinatesToCellName(c2, r2)
	return f.SetCellStyle(sheet, a, b, style)
}

func writeSummary(f *excelize.File, st styles, r *Report, sheets []*listSheet) error {
	const sh = SheetSummary
	if err := f.SetColWidth(sh, "A", "A", 30); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "B", "I", 15); err != nil {
		return err
	}
	if err := printLandscape(f, sh, true); err != nil {
		return err
	}
	title := fmt.Sprintf("Teams bot reachability — run %d", r.Run.ID)
	if note := r.IncompleteNote(); note != "" {
		title += " — " + note
	}
	if r.Redacted {
		title += " (redacted: counts only, no names, emails or user IDs)"
	}
	row := 1
	if err := cells(f, sh, row, title); err != nil {
		return err
	}
	if err := f.SetCellStyle(sh, "A1", "A1", st.title); err != nil {
		return err
	}
	period := "first run: nothing to compare with"
	if r.Incomplete {
		period = "not compared: changes are computed between finished runs only"
	}
	if r.Previous != nil {
		period = fmt.Sprintf("since run %d of %s", r.Previous.ID, when(r.Previous.StartedAt))
	}
	finished := any("not finished")
	if !r.Run.FinishedAt.IsZero() {
		finished = excelTime(r.Run.FinishedAt)
	}
	detects := "unknown"
	if len(r.Mode.Detects) > 0 {
		detects = strings.Join(r.Mode.Detects, ", ")
	}
	state := string(r.Run.State)
	if note := r.IncompleteNote(); note != "" {
		state += " — " + note + "; counts and lists cover the probed conversations only"
	}
	facts := [][2]any{
		{"Run", r.Run.ID},
		{"State", state},
		{"Period", period},
		{"Started (UTC)", excelTime(r.Run.StartedAt)},
		{"Finished (UTC)", finished},
		{"Probe mode", r.Mode.Name},
		{"What the mode does", r.Mode.Description},
		{"Can detect", detects},
		{"Cannot detect", strings.Join(r.Mode.CannotDetect, "; ")},
		{"Muting", mutingNote},
	}
	// Each fact's value spans B:I, wrapped, so that the columns below can
	// stay narrow for numbers.
	row = 3
	for _, fact := range facts {
		if err := cells(f, sh, row, fact[0], fact[1]); err != nil {
			return err
		}
		b, i := fmt.Sprintf("B%d", row), fmt.Sprintf("I%d", row)
		if err := f.MergeCell(sh, b, i); err != nil {
			return err
		}
		style := st.wrap
		if _, ok := fact[1].(float64); ok {
			style = st.leftDate
		} else if _, ok := fact[1].(int64); ok {
			style = st.left
		}
		if err := f.SetCellStyle(sh, b, i, style); err != nil {
			return err
		}
		if s, ok := fact[1].(string); ok && len(s) > 110 {
			if err := f.SetRowHeight(sh, row, 15*float64(len(s)/110+1)); err != nil {
				return err
			}
		}
		row++
	}
	if err := styleRange(f, sh, 1, 3, 1, row-1, st.bold); err != nil {
		return err
	}

	// Totals.
	row++
	hdr := []any{"Status", "Count", "Share"}
	if r.Previous != nil {
		hdr = append(hdr, fmt.Sprintf("Run %d", r.Previous.ID), "Change")
	}
	if err := cells(f, sh, row, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, len(hdr), row, st.header); err != nil {
		return err
	}
	first := row + 1
	for _, c := range r.Counts {
		row++
		v := []any{c.Label(), c.Count, c.Share}
		if r.Previous != nil {
			v = append(v, c.Previous, c.Delta)
		}
		if err := cells(f, sh, row, v...); err != nil {
			return err
		}
	}
	lastStatus := row
	row++
	total := []any{"Total", r.Total, 1.0}
	if r.Previous != nil {
		total = append(total, r.Previous.Total(), r.Total-r.Previous.Total())
	}
	if err := cells(f, sh, row, total...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, first, 2, row, st.count); err != nil {
		return err
	}
	if err := styleRange(f, sh, 3, first, 3, row, st.pct); err != nil {
		return err
	}
	if r.Previous != nil {
		if err := styleRange(f, sh, 4, first, 4, row, st.count); err != nil {
			return err
		}
		if err := styleRange(f, sh, 5, first, 5, row, st.delta); err != nil {
			return err
		}
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.bold); err != nil {
		return err
	}
	chartAt := fmt.Sprintf("G%d", first-1)

	// Changes.
	row += 2
	if err := cells(f, sh, row, "Changes since the previous run", "Conversations"); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 2, row, st.header); err != nil {
		return err
	}
	if r.Previous == nil {
		row++
		if err := cells(f, sh, row, "First run: nothing to compare with"); err != nil {
			return err
		}
	} else {
		for _, c := range r.Changes {
			row++
			if err := cells(f, sh, row, string(c.Kind), c.Total); err != nil {
				return err
			}
		}
		row++
		if err := cells(f, sh, row, "Every conversation whose status changed is on sheet “Changed”."); err != nil {
			return err
		}
	}

	// Scopes.
	row += 2
	sh2 := []any{"Scope", "Total", "Reachable", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out"}
	if err := cells(f, sh, row, sh2...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, len(sh2), row, st.header); err != nil {
		return err
	}
	for _, s := range r.Scopes {
		row++
		if err := cells(f, sh, row, append([]any{string(s.Scope)}, countValues(s.Total, s.Counts)...)...); err != nil {
			return err
		}
	}

	// Notes.
	row += 2
	notes := []string{"Times are UTC. “Status since” is the start of the first run of the current unbroken streak of that status."}
	for _, ls := range sheets {
		if ls.truncated {
			notes = append(notes, fmt.Sprintf("Sheet “%s” holds the first %d of %d rows: Excel allows no more per sheet.", ls.name, ls.rows, ls.total))
		}
	}
	if r.Redacted {
		notes = append(notes, "Redacted copy: the lists of conversations are left out.")
	}
	for _, n := range notes {
		if err := cells(f, sh, row, n); err != nil {
			return err
		}
		row++
	}

	return f.AddChart(sh, chartAt, &excelize.Chart{
		Type: excelize.Bar,
		Series: []excelize.ChartSeries{{
			Name:       "Summary!$B$" + fmt.Sprint(first-1),
			Categories: fmt.Sprintf("Summary!$A$%d:$A$%d", first, lastStatus),
			Values:     fmt.Sprintf("Summary!$B$%d:$B$%d", first, lastStatus),
		}},
		Title:     excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Status mix"}}},
		Legend:    excelize.ChartLegend{Position: "none"},
		Dimension: excelize.ChartDimension{Width: 520, Height: 300},
		XAxis:     axis(true), // first status on top
		YAxis:     axis(false),
		PlotArea:  excelize.ChartPlotArea{ShowVal: true},
	})
}

func countValues(total int, c Counts) []any {
	return []any{total, c[blockreport.StatusReachable], c[blockreport.StatusBlocked], c[blockreport.StatusUninstalled],
		c[blockreport.StatusAdminDisabled], c[blockreport.StatusNotFound], c.Unchecked(), c[blockreport.StatusOptedOut]}
}

var trendHeader = []string{"Run", "Started", "Mode", "State", "Total", "Reachable", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out"}

func writeTrend(f *excelize.File, st styles, r *Report) error {
	const sh = SheetTrend
	hdr := make([]any, len(trendHeader))
	for i, h := range trendHeader {
		hdr[i] = h
	}
	if err := cells(f, sh, 1, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, 1, len(hdr), 1, st.header); err != nil {
		return err
	}
	for i, p := range r.Trend {
		v := append([]any{p.RunID, excelTime(p.StartedAt), p.Mode, string(p.State)}, countValues(p.Total, p.Counts)...)
		if err := cells(f, sh, i+2, v...); err != nil {
			return err
		}
	}
	last := len(r.Trend) + 1
	if err := styleRange(f, sh, 2, 2, 2, last, st.date); err != nil {
		return err
	}
	if err := styleRange(f, sh, 5, 2, len(hdr), last, st.count); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "A", "A", 8); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "B", "B", 19); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "C", "L", 15); err != nil {
		return err
	}
	if err := f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	if err := printLandscape(f, sh, true); err != nil {
		return err
	}
	var series []excelize.ChartSeries
	for col := 7; col <= 11; col++ { // Blocked .. Could not check
		c, _ := excelize.ColumnNumberToName(col)
		series = append(series, excelize.ChartSeries{
			Name:       fmt.Sprintf("Trend!$%s$1", c),
			Categories: fmt.Sprintf("Trend!$A$2:$A$%d", last),
			Values:     fmt.Sprintf("Trend!$%s$2:$%s$%d", c, c, last),
			Marker:     excelize.ChartMarker{Symbol: "circle", Size: 5},
		})
	}
	return f.AddChart(sh, fmt.Sprintf("A%d", last+2), &excelize.Chart{
		Type:      excelize.Line,
		Series:    series,
		Title:     excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Conversations not reachable, per run"}}},
		Legend:    excelize.ChartLegend{Position: "bottom"},
		Dimension: excelize.ChartDimension{Width: 720, Height: 320},
		XAxis:     excelize.ChartAxis{Title: excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Run"}}}, Font: excelize.Font{Color: "000000"}},
		YAxis:     axis(false),
	})
}

var tenantHeader = []string{"Tenant ID", "Total", "Reachable", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out", "Reachable share"}

func writeTenants(f *excelize.File, st styles, r *Report) error {
	const sh = SheetTenants
	hdr := make([]any, len(tenantHeader))
	for i, h := range tenantHeader {
		hdr[i] = h
	}
	if err := cells(f, sh, 1, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, 1, len(hdr), 1, st.header); err != nil {
		return err
	}
	for i, t := range r.Tenants {
		v := append([]any{t.TenantID}, countValues(t.Total, t.Counts)...)
		v = append(v, float64(t.Counts[blockreport.StatusReachable])/float64(max(t.Total, 1)))
		if err := cells(f, sh, i+2, v...); err != nil {
			return err
		}
	}
	last := max(len(r.Tenants), 1) + 1
	if err := styleRange(f, sh, 2, 2, 9, last, st.count); err != nil {
		return err
	}
	if err := styleRange(f, sh, 10, 2, 10, last, st.pct); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "A", "A", 40); err != nil {
		return err
	}
	if err := f.SetColWidth(sh, "B", "J", 15); err != nil {
		return err
	}
	if err := f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	if err := f.AutoFilter(sh, fmt.Sprintf("A1:J%d", last), nil); err != nil {
		return err
	}
	return printLandscape(f, sh, true) // after AutoFilter, which resets the sheet properties
}
