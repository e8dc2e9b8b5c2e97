package report

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// SuggestedMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit)
// a command writing large workbooks runs under. The list sheets are
// streamed (sheet.go), so the report's own heap stays near 50 MB at any
// size; the limit only keeps the garbage collector from letting garbage
// pile up past it (see BENCHMARKS.md, "Report command").
const SuggestedMemoryLimit = 400 << 20

// Sheet names of the workbook, in order.
const (
	SheetSummary = "Summary"
	SheetTrend   = "Trend"
	SheetTenants = "Tenants"
	SheetChanged = "Changed"
	SheetAll     = "All conversations"
)

// maxDataRows is how many rows below the header an Excel sheet can hold.
const maxDataRows = excelize.TotalRows - 1

const dateTimeFormat = "yyyy-mm-dd hh:mm:ss"

// styles are the cell styles of the workbook.
type styles struct {
	header, headerNum, title, headline, section, bold, date, pct, count, delta, wrap, left, leftDate int
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
		{&s.headerNum, excelize.Style{
			Font:      &excelize.Font{Bold: true, Color: "FFFFFF", Family: font},
			Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"1F4E79"}},
			Alignment: &excelize.Alignment{Vertical: "center", Horizontal: "right", WrapText: true},
			Border:    []excelize.Border{{Type: "bottom", Color: "000000", Style: 1}},
		}},
		{&s.title, excelize.Style{Font: &excelize.Font{Bold: true, Size: 14, Family: font}}},
		{&s.headline, excelize.Style{Font: &excelize.Font{Bold: true, Size: 13, Family: font},
			Alignment: &excelize.Alignment{WrapText: true, Vertical: "top", Horizontal: "left"}}},
		{&s.section, excelize.Style{Font: &excelize.Font{Bold: true, Size: 12, Family: font, Color: "1F4E79"}}},
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

// listSheet is what the summary says about one list sheet.
type listSheet struct {
	name      string
	rows      int // data rows written
	total     int // data rows seen, written or not
	truncated bool
	// reachableLeftOut: sheet "All conversations" of a run above
	// AllSheetLimit, which leaves reachable conversations out (note says so).
	reachableLeftOut bool
	note             string
}

// AllSheetLimit is the most conversations sheet "All conversations" lists
// every one of. Above it the sheet keeps the rows an admin acts on, every
// conversation that is not reachable, and the summary says so and names
// the export that has them all: a million rows of Teams' ids make a
// workbook of ~160 MB that LibreOffice takes minutes to open, while the
// lists of who cannot be reached are what the workbook is read for.
const AllSheetLimit = 200_000

// listSheetNames are the list sheets, in workbook order.
func listSheetNames() []string {
	var names []string
	for _, k := range listKinds {
		names = append(names, string(k))
	}
	return append(names, SheetChanged, SheetAll)
}

// plannedSheets is what each list sheet will hold, from the counts of the
// report's own pass over the rows.
func plannedSheets(r *Report, opts Options) []*listSheet {
	limit := opts.AllSheetLimit
	if limit <= 0 {
		limit = AllSheetLimit
	}
	totals := map[string]int{SheetChanged: r.ChangedRows, SheetAll: r.Total}
	for _, l := range r.Lists {
		totals[string(l.Kind)] = l.Total
	}
	var out []*listSheet
	for _, n := range listSheetNames() {
		ls := &listSheet{name: n, total: totals[n]}
		if n == SheetAll && r.Total > limit {
			reachable := r.Count(blockreport.StatusReachable)
			ls.reachableLeftOut, ls.total = true, r.Total-reachable
			ls.note = fmt.Sprintf("Sheet “%s” lists the %s conversations that are not reachable: this run has %s conversations, "+
				"more than the %s a workbook lists in full, so the %s reachable ones are left out to keep the file a size Excel and LibreOffice open. "+
				"Every conversation, reachable ones included: blockreport export --run %d --status all --out all.csv",
				n, num(ls.total), num(r.Total), num(limit), num(reachable), r.Run.ID)
		}
		ls.rows, ls.truncated = min(ls.total, maxDataRows), ls.total > maxDataRows
		out = append(out, ls)
	}
	return out
}

// WriteExcel writes the workbook of r to w. The small sheets (summary,
// trend, tenants, with their charts) are made with excelize; unless the
// report is redacted, a second streamed pass over the run's rows in src
// writes the list sheets (see sheet.go) straight into the zip written to
// w, all but "All conversations" through temporary files in
// opts.TempDir, so memory stays flat for any number of rows.
func WriteExcel(ctx context.Context, w io.Writer, r *Report, src Source, opts Options) error {
	redact := opts.Redact || r.Redacted
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", SheetSummary); err != nil {
		return fmt.Errorf("create workbook: %w", err)
	}
	names := append([]string{SheetTrend, SheetTenants}, graphSheets(r, redact)...)
	if !redact {
		names = append(names, listSheetNames()...)
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
	if err := writeGraphSheets(f, st, r, redact); err != nil {
		return err
	}
	var sheets []*listSheet
	if !redact {
		sheets = plannedSheets(r, opts)
		for _, ls := range sheets {
			// The sheet itself is written below; this is the workbook's
			// name for its filter range, as Excel keeps it.
			if err := f.AutoFilter(ls.name, filterRef(ls.rows), nil); err != nil {
				return fmt.Errorf("add filter to sheet %q: %w", ls.name, err)
			}
		}
	}
	if err := writeSummary(f, st, r, sheets); err != nil {
		return fmt.Errorf("write sheet %s: %w", SheetSummary, err)
	}
	f.SetActiveSheet(0)
	small, err := f.WriteToBuffer()
	if err != nil {
		return fmt.Errorf("write workbook of run %d: %w", r.Run.ID, err)
	}
	if redact {
		if _, err := small.WriteTo(w); err != nil {
			return fmt.Errorf("write workbook of run %d: %w", r.Run.ID, err)
		}
		return nil
	}
	if err := writeWithLists(ctx, w, small.Bytes(), r, src, st, sheets, opts); err != nil {
		return fmt.Errorf("write workbook of run %d: %w", r.Run.ID, err)
	}
	return nil
}

// sheetCompression is the deflate level of the list sheets: level 6
// (flate.DefaultCompression) is within 2 % of the best size at less than
// half its time.
const sheetCompression = flate.DefaultCompression

// writeWithLists writes to w the workbook excelize made (small, whose list
// sheets are empty placeholders) with the list sheets streamed in and the
// shared-string table extended by theirs.
func writeWithLists(ctx context.Context, w io.Writer, small []byte, r *Report, src Source, st styles, planned []*listSheet, opts Options) error {
	zr, err := zip.NewReader(bytes.NewReader(small), int64(len(small)))
	if err != nil {
		return err
	}
	parts, err := sheetParts(zr)
	if err != nil {
		return err
	}
	sstXML, err := readPart(zr, sharedStringsPart)
	if err != nil {
		return err
	}
	sstHead, sstBody, sstCount, err := splitSST(sstXML)
	if err != nil {
		return err
	}
	skip := map[string]bool{sharedStringsPart: true}
	for _, ls := range planned {
		p, ok := parts[ls.name]
		if !ok {
			return fmt.Errorf("sheet %q has no part", ls.name)
		}
		skip[p] = true
	}
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, sheetCompression)
	})
	for _, zf := range zr.File {
		if skip[zf.Name] {
			continue
		}
		if err := zw.Copy(zf); err != nil {
			return err
		}
	}

	sst := newSharedStrings(sstCount)
	if err := sst.know(sstBody); err != nil {
		return err
	}
	byName := map[string]*sheetWriter{}
	var sheets []*sheetWriter
	type spool struct {
		f  *os.File
		bw *bufio.Writer
	}
	spools := map[string]spool{}
	defer func() {
		for _, sp := range spools {
			sp.f.Close()
			os.Remove(sp.f.Name())
		}
	}()
	// Every sheet but the last is spooled to a temporary file (a zip
	// entry must be written whole); the biggest, "All conversations",
	// goes straight into the zip.
	for _, ls := range planned {
		var sw *sheetWriter
		if ls.name == SheetAll {
			entry, err := zw.CreateHeader(&zip.FileHeader{Name: parts[ls.name], Method: zip.Deflate, Modified: r.Run.StartedAt})
			if err != nil {
				return err
			}
			sw, err = newSheetWriter(ls.name, entry, false, sst, st)
			if err != nil {
				return err
			}
		} else {
			tf, err := os.CreateTemp(opts.TempDir, ".blockreport-sheet-*")
			if err != nil {
				return fmt.Errorf("spool sheet %q: %w", ls.name, err)
			}
			sp := spool{f: tf, bw: bufio.NewWriterSize(tf, 256<<10)}
			spools[ls.name] = sp
			sw, err = newSheetWriter(ls.name, sp.bw, true, sst, st)
			if err != nil {
				return err
			}
		}
		byName[ls.name] = sw
		sheets = append(sheets, sw)
	}
	all, changed := byName[SheetAll], byName[SheetChanged]
	leaveOut := false
	for _, ls := range planned {
		leaveOut = leaveOut || ls.reachableLeftOut
	}
	n := 0
	err = src.Rows(ctx, r.Run.ID, func(row blockreport.Row) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if k, ok := listOf(row.Status); ok {
			if err := byName[string(k)].write(&row); err != nil {
				return err
			}
		}
		if !r.Incomplete && row.PreviousStatus != "" && row.PreviousStatus != row.Status {
			if err := changed.write(&row); err != nil {
				return err
			}
		}
		if leaveOut && row.Status == blockreport.StatusReachable {
			return nil
		}
		return all.write(&row)
	})
	if err != nil {
		return fmt.Errorf("write rows of run %d: %w", r.Run.ID, err)
	}
	if err := all.finish(); err != nil {
		return err
	}
	for _, sw := range sheets {
		if sw == all {
			continue
		}
		if err := sw.finish(); err != nil {
			return err
		}
		sp := spools[sw.name]
		if err := sp.bw.Flush(); err != nil {
			return fmt.Errorf("spool sheet %q: %w", sw.name, err)
		}
		if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("spool sheet %q: %w", sw.name, err)
		}
		entry, err := zw.CreateRaw(&zip.FileHeader{Name: parts[sw.name], Method: zip.Deflate, Modified: r.Run.StartedAt,
			CRC32: sw.crc.Sum32(), CompressedSize64: uint64(sw.cw.n), UncompressedSize64: uint64(sw.raw)})
		if err != nil {
			return err
		}
		if _, err := io.Copy(entry, sp.f); err != nil {
			return fmt.Errorf("copy sheet %q: %w", sw.name, err)
		}
	}
	entry, err := zw.CreateHeader(&zip.FileHeader{Name: sharedStringsPart, Method: zip.Deflate, Modified: r.Run.StartedAt})
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(entry)
	bw.WriteString(sstHead)
	fmt.Fprintf(bw, ` uniqueCount="%d">`, sstCount+len(sst.list))
	bw.WriteString(sstBody)
	var b []byte
	for _, s := range sst.list {
		b = append(b[:0], `<si>`...)
		b = appendT(b, s)
		b = append(b, `</si>`...)
		bw.Write(b)
	}
	bw.WriteString(`</sst>`)
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

const sharedStringsPart = "xl/sharedStrings.xml"

func readPart(zr *zip.Reader, name string) ([]byte, error) {
	rc, err := zr.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read part %s: %w", name, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// sheetParts maps each sheet name of the workbook to its part
// (xl/worksheets/sheetN.xml), through workbook.xml and its relationships.
func sheetParts(zr *zip.Reader) (map[string]string, error) {
	wb, err := readPart(zr, "xl/workbook.xml")
	if err != nil {
		return nil, err
	}
	rels, err := readPart(zr, "xl/_rels/workbook.xml.rels")
	if err != nil {
		return nil, err
	}
	var book struct {
		Sheets []struct {
			Name string `xml:"name,attr"`
			RID  string `xml:"http://schemas.openxmlformats.org/officeDocument/2006/relationships id,attr"`
		} `xml:"sheets>sheet"`
	}
	if err := xml.Unmarshal(wb, &book); err != nil {
		return nil, fmt.Errorf("read workbook.xml: %w", err)
	}
	var rs struct {
		Rels []struct {
			ID     string `xml:"Id,attr"`
			Target string `xml:"Target,attr"`
		} `xml:"Relationship"`
	}
	if err := xml.Unmarshal(rels, &rs); err != nil {
		return nil, fmt.Errorf("read workbook.xml.rels: %w", err)
	}
	targets := map[string]string{}
	for _, rel := range rs.Rels {
		t := rel.Target
		if strings.HasPrefix(t, "/") {
			t = strings.TrimPrefix(t, "/")
		} else {
			t = "xl/" + t
		}
		targets[rel.ID] = t
	}
	out := map[string]string{}
	for _, s := range book.Sheets {
		if t, ok := targets[s.RID]; ok {
			out[s.Name] = t
		}
	}
	return out, nil
}

// splitSST splits excelize's shared-string table into its opening tag
// without the counts and the ">" (head), its <si> entries (body), and
// their number.
func splitSST(b []byte) (head, body string, n int, err error) {
	s := string(b)
	i := strings.Index(s, "<sst")
	if i < 0 {
		return "", "", 0, fmt.Errorf("read %s: no <sst>", sharedStringsPart)
	}
	j := strings.Index(s[i:], ">")
	if j < 0 {
		return "", "", 0, fmt.Errorf("read %s: unterminated <sst>", sharedStringsPart)
	}
	tag := s[i : i+j]
	selfClosing := strings.HasSuffix(tag, "/")
	tag = strings.TrimSuffix(tag, "/")
	// Drop the count attributes: uniqueCount is written anew, count
	// (optional) is left out.
	for _, attr := range []string{"count", "uniqueCount"} {
		if k := strings.Index(tag, " "+attr+`="`); k >= 0 {
			end := strings.Index(tag[k+len(attr)+3:], `"`)
			tag = tag[:k] + tag[k+len(attr)+4+end:]
		}
	}
	head = s[:i] + tag
	if !selfClosing {
		end := strings.LastIndex(s, "</sst>")
		if end < i+j {
			return "", "", 0, fmt.Errorf("read %s: unterminated <sst>", sharedStringsPart)
		}
		body = s[i+j+1 : end]
	}
	return head, body, strings.Count(body, "<si>"), nil
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

// summaryWidth is the number of columns (A:K) the Summary's wide rows span.
const summaryWidth = 11

// writeSummary writes the Summary sheet in the order of the HTML page:
// headline, key figures, trend, tenants, departments, scopes, every status,
// changes, about the run, notes. The lists follow on their own sheets.
func writeSummary(f *excelize.File, st styles, r *Report, sheets []*listSheet) error {
	const sh = SheetSummary
	if err := f.SetColWidth(sh, "A", "A", 50); err != nil { // "Contoso (f42e06a4-…)"
		return err
	}
	if err := f.SetColWidth(sh, "B", "K", 14); err != nil {
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
	if err := cells(f, sh, 1, title); err != nil {
		return err
	}
	if err := f.SetCellStyle(sh, "A1", "A1", st.title); err != nil {
		return err
	}
	row := 2
	// wide writes text across A:K, wrapped, with a row height for its length.
	wide := func(text string, style int, perLine int) error {
		if err := cells(f, sh, row, text); err != nil {
			return err
		}
		a, k := fmt.Sprintf("A%d", row), fmt.Sprintf("%s%d", colName(summaryWidth), row)
		if err := f.MergeCell(sh, a, k); err != nil {
			return err
		}
		if err := f.SetCellStyle(sh, a, k, style); err != nil {
			return err
		}
		lines := len([]rune(text))/perLine + 1
		h := 15.0
		if style == st.headline {
			h = 20
		}
		if err := f.SetRowHeight(sh, row, h*float64(lines)+2); err != nil {
			return err
		}
		row++
		return nil
	}
	if err := wide(r.Headline(), st.headline, 120); err != nil {
		return err
	}
	if err := wide(r.HeadlineDetail(), st.wrap, 170); err != nil {
		return err
	}
	// Microsoft Graph's line, the coverage sentences and the notes on
	// tenants Graph could not be used for (none when Graph was off).
	for _, l := range graphHeadlines(r) {
		if err := wide(l, st.wrap, 170); err != nil {
			return err
		}
	}

	// Key figures, as the HTML page's cards.
	row++
	figures := []any{"Conversations probed", "Reachable", "Not reachable", "Could not check"}
	if err := cells(f, sh, row, append([]any{"Key figures"}, figures...)...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.header); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, row, 5, row, st.headerNum); err != nil {
		return err
	}
	if err := f.SetRowHeight(sh, row, 30); err != nil {
		return err
	}
	counts := Counts(countsOf(r))
	row++
	if err := cells(f, sh, row, "Conversations", r.Total, counts[blockreport.StatusReachable], counts.Unreachable(), counts.Unchecked()); err != nil {
		return err
	}
	row++
	total := float64(max(r.Total, 1))
	if err := cells(f, sh, row, "Share", 1.0, float64(counts[blockreport.StatusReachable])/total, float64(counts.Unreachable())/total, float64(counts.Unchecked())/total); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, row-1, 5, row-1, st.count); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, row, 5, row, st.pct); err != nil {
		return err
	}

	// Trend: the chart of the Trend sheet's shares, as on the HTML page.
	row += 2
	if err := cells(f, sh, row, r.TrendTitle()); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.section); err != nil {
		return err
	}
	row++
	if err := f.AddChart(sh, fmt.Sprintf("A%d", row), trendLineChart(len(r.Trend), 860, 300)); err != nil {
		return err
	}
	row += 16 // the chart's height in rows

	// Breakdowns.
	groupHeader := []any{"Conversations", "Reachable", "Reachable share", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out"}
	group := func(title, first string, names []string, totals []int, cs []Counts, more string) error {
		row += 1
		if err := cells(f, sh, row, title); err != nil {
			return err
		}
		if err := styleRange(f, sh, 1, row, 1, row, st.section); err != nil {
			return err
		}
		row++
		if err := cells(f, sh, row, append([]any{first}, groupHeader...)...); err != nil {
			return err
		}
		if err := styleRange(f, sh, 1, row, 1, row, st.header); err != nil {
			return err
		}
		if err := styleRange(f, sh, 2, row, 1+len(groupHeader), row, st.headerNum); err != nil {
			return err
		}
		if err := f.SetRowHeight(sh, row, 30); err != nil {
			return err
		}
		firstRow := row + 1
		for i := range names {
			row++
			if err := cells(f, sh, row, append([]any{names[i]}, groupValues(totals[i], cs[i])...)...); err != nil {
				return err
			}
		}
		if row >= firstRow {
			if err := styleRange(f, sh, 2, firstRow, 1+len(groupHeader), row, st.count); err != nil {
				return err
			}
			if err := styleRange(f, sh, 4, firstRow, 4, row, st.pct); err != nil {
				return err
			}
		}
		if more != "" {
			row++
			if err := cells(f, sh, row, more); err != nil {
				return err
			}
		}
		row++
		return nil
	}
	{
		var names []string
		var totals []int
		var cs []Counts
		for i, t := range r.Tenants {
			if i == summaryTenants {
				break
			}
			names, totals, cs = append(names, t.Label()), append(totals, t.Total), append(cs, t.Counts)
		}
		more := ""
		if len(r.Tenants) > summaryTenants {
			more = fmt.Sprintf("The %d largest of %d tenants; every tenant is on sheet “%s”.", summaryTenants, len(r.Tenants), SheetTenants)
		}
		if err := group(fmt.Sprintf("By tenant (%d)", len(r.Tenants)), "Tenant", names, totals, cs, more); err != nil {
			return err
		}
	}
	if len(r.Departments) > 0 {
		var names []string
		var totals []int
		var cs []Counts
		for i, d := range r.Departments {
			if i == summaryTenants {
				break
			}
			name := d.Name
			if name == "" {
				name = "Not known"
			}
			names, totals, cs = append(names, name), append(totals, d.Total), append(cs, d.Counts)
		}
		more := ""
		if len(r.Departments) > summaryTenants {
			more = fmt.Sprintf("The first %d of %d departments.", summaryTenants, len(r.Departments))
		}
		if err := group(fmt.Sprintf("By department (%d)", len(r.Departments)), "Department", names, totals, cs, more); err != nil {
			return err
		}
	}
	{
		var names []string
		var totals []int
		var cs []Counts
		for _, s := range r.Scopes {
			names, totals, cs = append(names, string(s.Scope)), append(totals, s.Total), append(cs, s.Counts)
		}
		if err := group("By scope", "Scope", names, totals, cs, ""); err != nil {
			return err
		}
	}

	// Every status.
	row++
	if err := cells(f, sh, row, "Every status"); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.section); err != nil {
		return err
	}
	row++
	hdr := []any{"Status", "Count", "Share"}
	if r.Previous != nil {
		hdr = append(hdr, fmt.Sprintf("Run %d", r.Previous.ID), "Change")
	}
	if err := cells(f, sh, row, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.header); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, row, len(hdr), row, st.headerNum); err != nil {
		return err
	}
	chartAt := fmt.Sprintf("G%d", row)
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
	totalRow := []any{"Total", r.Total, 1.0}
	if r.Previous != nil {
		totalRow = append(totalRow, r.Previous.Total(), r.Total-r.Previous.Total())
	}
	if err := cells(f, sh, row, totalRow...); err != nil {
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
	// The status mix in the report's status colours: a stacked bar chart
	// with one series per status, each holding only its own status's count
	// (a diagonal of hidden cells right of the sheet), since a chart's bars
	// take their colours per series, not per point.
	var mix []excelize.ChartSeries
	for i, c := range r.Counts {
		col := mixCol + i
		cell, _ := excelize.CoordinatesToCellName(col, first-1)
		if err := f.SetCellValue(sh, cell, c.Label()); err != nil {
			return err
		}
		cell, _ = excelize.CoordinatesToCellName(col, first+i)
		if err := f.SetCellValue(sh, cell, c.Count); err != nil {
			return err
		}
		name := colName(col)
		mix = append(mix, excelize.ChartSeries{
			Name:       fmt.Sprintf("%s!$%s$%d", sh, name, first-1),
			Categories: fmt.Sprintf("%s!$A$%d:$A$%d", sh, first, lastStatus),
			Values:     fmt.Sprintf("%s!$%s$%d:$%s$%d", sh, name, first, name, lastStatus),
			Fill:       solid(color(c.Status)),
		})
	}
	if err := f.SetColVisible(sh, colName(mixCol)+":"+colName(mixCol+len(r.Counts)-1), false); err != nil {
		return err
	}
	gap := uint(60)
	if err := f.AddChart(sh, chartAt, &excelize.Chart{
		Type:      excelize.BarStacked,
		Series:    mix,
		Title:     excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Status mix"}}},
		Legend:    excelize.ChartLegend{Position: "none"},
		Dimension: excelize.ChartDimension{Width: 480, Height: 260},
		XAxis:     axis(true), // first status on top
		YAxis:     axis(false),
		PlotArea:  excelize.ChartPlotArea{ShowVal: true},
		GapWidth:  &gap,
	}); err != nil {
		return err
	}

	// Changes.
	row += 2
	if err := cells(f, sh, row, "Changes since the previous run", "Conversations"); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.header); err != nil {
		return err
	}
	if err := styleRange(f, sh, 2, row, 2, row, st.headerNum); err != nil {
		return err
	}
	switch {
	case r.Previous == nil && r.Incomplete:
		row++
		if err := cells(f, sh, row, "Not compared: changes are computed between finished runs only"); err != nil {
			return err
		}
	case r.Previous == nil:
		row++
		if err := cells(f, sh, row, "First run: nothing to compare with"); err != nil {
			return err
		}
	default:
		for _, c := range r.Changes {
			row++
			if err := cells(f, sh, row, string(c.Kind), c.Total); err != nil {
				return err
			}
			if err := styleRange(f, sh, 2, row, 2, row, st.count); err != nil {
				return err
			}
		}
		row++
		if err := cells(f, sh, row, "Every conversation whose status changed is on sheet “Changed”."); err != nil {
			return err
		}
	}

	// About the run.
	row += 2
	if err := cells(f, sh, row, "About this run"); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, 1, row, st.section); err != nil {
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
	if notes := r.TypingIncidentNotes(); len(notes) > 0 {
		facts = append(facts, [2]any{"Typing incidents", strings.Join(notes, " ")})
	}
	// Each fact's value spans B:K, wrapped, so that the columns can stay
	// narrow for numbers.
	row++
	firstFact := row
	for _, fact := range facts {
		if err := cells(f, sh, row, fact[0], fact[1]); err != nil {
			return err
		}
		b, k := fmt.Sprintf("B%d", row), fmt.Sprintf("%s%d", colName(summaryWidth), row)
		if err := f.MergeCell(sh, b, k); err != nil {
			return err
		}
		style := st.wrap
		if _, ok := fact[1].(float64); ok {
			style = st.leftDate
		} else if _, ok := fact[1].(int64); ok {
			style = st.left
		}
		if err := f.SetCellStyle(sh, b, k, style); err != nil {
			return err
		}
		if s, ok := fact[1].(string); ok && len(s) > 130 {
			if err := f.SetRowHeight(sh, row, 15*float64(len(s)/130+1)); err != nil {
				return err
			}
		}
		row++
	}
	if err := styleRange(f, sh, 1, firstFact, 1, row-1, st.bold); err != nil {
		return err
	}

	// Notes.
	row++
	notes := []string{"Times are UTC. “Status since” is the start of the first run of the current unbroken streak of that status."}
	for _, ls := range sheets {
		if ls.note != "" {
			notes = append(notes, ls.note)
		}
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
	return nil
}

// mixCol is the first of the hidden Summary columns the status-mix chart
// reads, one per status.
const mixCol = 14

// summaryTenants is how many tenants (and departments) the Summary lists.
const summaryTenants = 15

func colName(n int) string {
	s, _ := excelize.ColumnNumberToName(n)
	return s
}

// solid is a chart fill of one colour, "#c62828" or "C62828".
func solid(c string) excelize.Fill {
	return excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{strings.TrimPrefix(c, "#")}}
}

// groupValues are the cells of one breakdown row, after its name.
func groupValues(total int, c Counts) []any {
	return []any{total, c[blockreport.StatusReachable], c.Share(blockreport.StatusReachable, total), c[blockreport.StatusBlocked],
		c[blockreport.StatusUninstalled], c[blockreport.StatusAdminDisabled], c[blockreport.StatusNotFound], c.Unchecked(),
		c[blockreport.StatusOptedOut]}
}

func countValues(total int, c Counts) []any {
	return []any{total, c[blockreport.StatusReachable], c[blockreport.StatusBlocked], c[blockreport.StatusUninstalled],
		c[blockreport.StatusAdminDisabled], c[blockreport.StatusNotFound], c.Unchecked(), c[blockreport.StatusOptedOut]}
}

var trendHeader = []string{"Run", "Date", "Started (UTC)", "Mode", "State", "Conversations", "Reachable", "Blocked", "Uninstalled",
	"Admin disabled", "Not found", "Could not check", "Opted out", "Reachable share"}

// Columns (1-based) of the Trend sheet.
const (
	trendColDate    = 2
	trendColStarted = 3
	trendColCounts  = 6  // Conversations .. Opted out
	trendColShares  = 14 // Reachable share, then one per trend series
)

// excelDash is the workbook's dash of a trend series' SVG dash pattern.
var excelDash = map[string]excelize.LineDashType{
	"": excelize.LineDashSolid, "7 3": excelize.LineDashDash, "2 3": excelize.LineDashSysDot,
	"9 3 2 3": excelize.LineDashLgDashDot, "3 2": excelize.LineDashSysDash,
}

// trendLineChart is the trend as a line chart of the Trend sheet's share
// columns, one series per trend series with the report's colours, dashes
// and markers, dated along the axis: the same chart as the HTML page's.
func trendLineChart(points, width, height int) *excelize.Chart {
	last := points + 1
	var series []excelize.ChartSeries
	for i, ts := range trendSeries {
		c := colName(trendColShares + 1 + i)
		fill := solid(ts.Color)
		marker := excelize.ChartMarker{Symbol: ts.Shape, Size: 6, Fill: fill, Border: excelize.LineOptions{Fill: fill, Width: 1}}
		if ts.Shape == "ring" {
			marker = excelize.ChartMarker{Symbol: "circle", Size: 6, Fill: solid("FFFFFF"), Border: excelize.LineOptions{Fill: fill, Width: 1.5}}
		}
		series = append(series, excelize.ChartSeries{
			Name:       fmt.Sprintf("%s!$%s$1", SheetTrend, c),
			Categories: fmt.Sprintf("%s!$%s$2:$%s$%d", SheetTrend, colName(trendColDate), colName(trendColDate), last),
			Values:     fmt.Sprintf("%s!$%s$2:$%s$%d", SheetTrend, c, c, last),
			Fill:       fill,
			Line:       excelize.LineOptions{Width: 2, Dash: excelDash[ts.Dash]},
			Marker:     marker,
		})
	}
	yAxis := axis(false)
	yAxis.NumFmt = excelize.ChartNumFmt{CustomNumFmt: "0.0%"}
	yAxis.MajorGridLines = true
	zero := 0.0
	yAxis.Minimum = &zero
	return &excelize.Chart{
		Type:      excelize.Line,
		Series:    series,
		Title:     excelize.ChartTitle{Paragraph: []excelize.RichTextRun{{Text: "Share of conversations not reachable, per run"}}},
		Legend:    excelize.ChartLegend{Position: "bottom"},
		Dimension: excelize.ChartDimension{Width: uint(width), Height: uint(height)},
		XAxis:     axis(false),
		YAxis:     yAxis,
	}
}

func writeTrend(f *excelize.File, st styles, r *Report) error {
	const sh = SheetTrend
	hdr := make([]any, 0, len(trendHeader)+len(trendSeries))
	for _, h := range trendHeader {
		hdr = append(hdr, h)
	}
	for _, ts := range trendSeries {
		hdr = append(hdr, ts.Label+" share")
	}
	if err := cells(f, sh, 1, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, 1, trendColState(), 1, st.header); err != nil {
		return err
	}
	if err := styleRange(f, sh, trendColCounts, 1, len(hdr), 1, st.headerNum); err != nil {
		return err
	}
	if err := f.SetRowHeight(sh, 1, 46); err != nil {
		return err
	}
	labels := trendLabels(r.Trend)
	for i, p := range r.Trend {
		v := append([]any{p.RunID, labels[i], excelTime(p.StartedAt), p.Mode, string(p.State)}, countValues(p.Total, p.Counts)...)
		v = append(v, p.Counts.Share(blockreport.StatusReachable, p.Total))
		for _, ts := range trendSeries {
			v = append(v, trendShare(p, ts))
		}
		if err := cells(f, sh, i+2, v...); err != nil {
			return err
		}
	}
	last := len(r.Trend) + 1
	if err := styleRange(f, sh, 1, 2, 2, last, st.left); err != nil {
		return err
	}
	if err := styleRange(f, sh, trendColStarted, 2, trendColStarted, last, st.leftDate); err != nil {
		return err
	}
	if err := styleRange(f, sh, trendColCounts, 2, trendColShares-1, last, st.count); err != nil {
		return err
	}
	if err := styleRange(f, sh, trendColShares, 2, len(hdr), last, st.pct); err != nil {
		return err
	}
	for _, w := range []struct {
		from, to string
		width    float64
	}{{"A", "A", 7}, {"B", "B", 13}, {"C", "C", 21}, {"D", "E", 10}, {"F", colName(len(hdr)), 13}} {
		if err := f.SetColWidth(sh, w.from, w.to, w.width); err != nil {
			return err
		}
	}
	if err := f.SetPanes(sh, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	if err := printLandscape(f, sh, true); err != nil {
		return err
	}
	return f.AddChart(sh, fmt.Sprintf("A%d", last+2), trendLineChart(len(r.Trend), 860, 340))
}

func trendColState() int { return trendColCounts - 1 }

var tenantHeader = []string{"Tenant ID", "Total", "Reachable", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Opted out", "Reachable share"}

// headerRow writes a table's header into row: the first textCols columns
// left-aligned over text, the rest right-aligned over numbers.
func headerRow(f *excelize.File, st styles, sh string, row, textCols int, header []string) error {
	hdr := make([]any, len(header))
	for i, h := range header {
		hdr[i] = h
	}
	if err := cells(f, sh, row, hdr...); err != nil {
		return err
	}
	if err := styleRange(f, sh, 1, row, textCols, row, st.header); err != nil {
		return err
	}
	return styleRange(f, sh, textCols+1, row, len(hdr), row, st.headerNum)
}

func writeTenants(f *excelize.File, st styles, r *Report) error {
	const sh = SheetTenants
	if err := headerRow(f, st, sh, 1, 1, tenantHeader); err != nil {
		return err
	}
	for i, t := range r.Tenants {
		v := append([]any{t.Label()}, countValues(t.Total, t.Counts)...)
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
