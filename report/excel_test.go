package report

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// workbook builds the report of runID and writes its workbook, returning
// the raw bytes.
func workbook(t *testing.T, src *memSource, runID int64, opts Options) []byte {
	t.Helper()
	r, err := Build(context.Background(), src, runID, opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteExcel(context.Background(), &buf, r, src, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openWorkbook(t *testing.T, b []byte) *excelize.File {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func cell(t *testing.T, f *excelize.File, sheet, ref string) string {
	t.Helper()
	v, err := f.GetCellValue(sheet, ref)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// findRow returns the row number of the first row of sheet whose column
// col is want (0 if none).
func findRow(t *testing.T, f *excelize.File, sheet string, col int, want string) int {
	t.Helper()
	rows, err := f.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if len(r) > col && r[col] == want {
			return i + 1
		}
	}
	return 0
}

func TestExcelSheetsAndLayout(t *testing.T) {
	f := openWorkbook(t, workbook(t, fixture(), 3, Options{}))
	want := []string{"Summary", "Trend", "Tenants", "Blocked", "Uninstalled", "Admin disabled", "Not found", "Could not check", "Changed", "All conversations"}
	if got := f.GetSheetList(); !slices.Equal(got, want) {
		t.Fatalf("sheets = %q, want %q", got, want)
	}
	if f.GetActiveSheetIndex() != 0 {
		t.Errorf("active sheet = %d, want Summary", f.GetActiveSheetIndex())
	}
	filters := map[string]string{}
	for _, d := range f.GetDefinedName() {
		if d.Name == "_xlnm._FilterDatabase" {
			filters[d.Scope] = d.RefersTo
		}
	}
	rowsPerSheet := map[string]int{"Blocked": 2, "Uninstalled": 1, "Admin disabled": 1, "Not found": 1, "Could not check": 4, "Changed": 8, "All conversations": 14}
	for sheet, n := range rowsPerSheet {
		rows, err := f.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rows[0], Columns) {
			t.Errorf("%s header = %q, want %q", sheet, rows[0], Columns)
		}
		if !slices.Equal(Columns[:13], []string{"Status", "Reason", "User name", "Email", "AAD object ID", "Teams user ID", "Tenant ID", "Scope", "Conversation ID", "HTTP status", "Probed at", "Status since", "Previous status"}) {
			t.Fatalf("Columns lost the required order: %q", Columns)
		}
		if len(rows)-1 != n {
			t.Errorf("%s has %d data rows, want %d", sheet, len(rows)-1, n)
		}
		panes, err := f.GetPanes(sheet)
		if err != nil {
			t.Fatal(err)
		}
		if !panes.Freeze || panes.YSplit != 1 || panes.TopLeftCell != "A2" {
			t.Errorf("%s panes = %+v, want header row frozen", sheet, panes)
		}
		lastCol, _ := excelize.ColumnNumberToName(len(Columns))
		if got, want := filters[sheet], "'"+sheet+"'!$A$1:$"+lastCol+"$"+itoa(n+1); got != want && got != strings.ReplaceAll(want, "'", "") {
			t.Errorf("%s autofilter = %q, want %q", sheet, got, want)
		}
		style, err := f.GetCellStyle(sheet, "A1")
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.GetStyle(style)
		if err != nil {
			t.Fatal(err)
		}
		if s.Font == nil || !s.Font.Bold || len(s.Fill.Color) == 0 {
			t.Errorf("%s header style = %+v, want bold and filled", sheet, s)
		}
		w, err := f.GetColWidth(sheet, "E")
		if err != nil {
			t.Fatal(err)
		}
		if w < 30 {
			t.Errorf("%s AAD object ID column width = %v, want >= 30", sheet, w)
		}
	}
	if _, ok := filters["Tenants"]; !ok {
		t.Error("Tenants sheet has no autofilter")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExcelDatesAreDateTimes(t *testing.T) {
	f := openWorkbook(t, workbook(t, fixture(), 3, Options{}))
	const sheet = "All conversations"
	r := findRow(t, f, sheet, 2, "Alice Adams")
	if r == 0 {
		t.Fatal("Alice Adams not listed")
	}
	for _, tc := range []struct {
		col  string
		want string
	}{{"K", "2026-11-02 06:00:01"}, {"L", "2026-09-01 06:00:00"}} {
		ref := tc.col + itoa(r)
		if got := cell(t, f, sheet, ref); got != tc.want {
			t.Errorf("%s = %q, want %q", ref, got, tc.want)
		}
		typ, err := f.GetCellType(sheet, ref)
		if err != nil {
			t.Fatal(err)
		}
		if typ != excelize.CellTypeUnset && typ != excelize.CellTypeNumber {
			t.Errorf("%s has cell type %v, want a number", ref, typ)
		}
		raw, err := f.GetCellValue(sheet, ref, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(raw, "46") { // serial days in 2026
			t.Errorf("%s raw value = %q, want an Excel serial date", ref, raw)
		}
		style, _ := f.GetCellStyle(sheet, ref)
		s, err := f.GetStyle(style)
		if err != nil {
			t.Fatal(err)
		}
		if s.CustomNumFmt == nil || *s.CustomNumFmt != dateTimeFormat {
			t.Errorf("%s number format = %v, want %q", ref, s.CustomNumFmt, dateTimeFormat)
		}
	}
	if got := cell(t, f, sheet, "J"+itoa(r)); got != "200" {
		t.Errorf("HTTP status = %q, want 200", got)
	}
	if typ, _ := f.GetCellType(sheet, "J"+itoa(r)); typ == excelize.CellTypeInlineString || typ == excelize.CellTypeSharedString {
		t.Error("HTTP status is written as text")
	}
}

func TestExcelHostileDataStaysData(t *testing.T) {
	src := fixture()
	long := strings.Repeat("x", 40000)
	src.rows[3] = append(src.rows[3], row(15, "tenant-bbbb", long, blockreport.ConversationPersonal, blockreport.StatusBlocked, blockreport.StatusBlocked, t0))
	src.rows[3][14].Detail = "=1+1"
	f := openWorkbook(t, workbook(t, src, 3, Options{}))
	const sheet = "All conversations"
	for _, name := range []string{hostileScript, hostileFormula, hostilePlus, hostileAt, hostileMinus, hostileRTL, hostileEmoji, "Bob \uFFFDBell\uFFFD", long[:maxCellChars]} {
		r := findRow(t, f, sheet, 2, name)
		if r == 0 {
			t.Errorf("name %.40q not found literally", name)
			continue
		}
		ref := "C" + itoa(r)
		if formula, err := f.GetCellFormula(sheet, ref); err != nil || formula != "" {
			t.Errorf("%s (%.40q) has formula %q (err %v)", ref, name, formula, err)
		}
		typ, err := f.GetCellType(sheet, ref)
		if err != nil {
			t.Fatal(err)
		}
		if typ != excelize.CellTypeInlineString && typ != excelize.CellTypeSharedString {
			t.Errorf("%s (%.40q) has type %v, want a string", ref, name, typ)
		}
	}
	r := findRow(t, f, sheet, 13, "=1+1")
	if r == 0 {
		t.Error("detail =1+1 not found literally")
	} else if formula, _ := f.GetCellFormula(sheet, "N"+itoa(r)); formula != "" {
		t.Errorf("detail became formula %q", formula)
	}
	// The file parses as XML everywhere (no NUL or other invalid character).
	b := workbook(t, src, 3, Options{})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, ".xml") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(rc)
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s is not valid XML: %v", zf.Name, err)
				break
			}
		}
		rc.Close()
	}
}

func TestExcelSummary(t *testing.T) {
	f := openWorkbook(t, workbook(t, fixture(), 3, Options{}))
	const sh = "Summary"
	for _, want := range [][2]string{
		{"Run", "3"}, {"Probe mode", "typing"}, {"Period", "since run 2 of 2026-10-01 06:00 UTC"},
		{"Started (UTC)", "2026-11-02 06:00:00"}, {"Can detect", "blocked, uninstalled, admin disabled, not found"},
	} {
		r := findRow(t, f, sh, 0, want[0])
		if r == 0 {
			t.Errorf("Summary lacks %q", want[0])
			continue
		}
		if got := cell(t, f, sh, "B"+itoa(r)); got != want[1] {
			t.Errorf("Summary %s = %q, want %q", want[0], got, want[1])
		}
	}
	if r := findRow(t, f, sh, 0, "Muting"); r == 0 || !strings.Contains(cell(t, f, sh, "B"+itoa(r)), "Muting cannot be observed") {
		t.Error("Summary lacks the muting note")
	}
	r := findRow(t, f, sh, 0, "Blocked")
	if r == 0 {
		t.Fatal("Summary lacks the Blocked total")
	}
	raw, _ := f.GetCellValue(sh, "C"+itoa(r), excelize.Options{RawCellValue: true})
	if !strings.HasPrefix(raw, "0.142857142857") {
		t.Errorf("blocked share raw = %q, want 2/14 as a number", raw)
	}
	if got := cell(t, f, sh, "C"+itoa(r)); got != "14.3%" {
		t.Errorf("blocked share shown = %q, want 14.3%%", got)
	}
	if got := cell(t, f, sh, "B"+itoa(r)); got != "2" {
		t.Errorf("blocked count = %q, want 2", got)
	}
	if r := findRow(t, f, sh, 0, "Admin disabled"); r == 0 || cell(t, f, sh, "E"+itoa(r)) != "+1" {
		t.Error("Summary does not show the admin-disabled change as +1")
	}
	if r := findRow(t, f, sh, 0, "Reachable"); r == 0 || cell(t, f, sh, "E"+itoa(r)) != "-3" {
		t.Error("Summary does not show the reachable change as -3")
	}
	if r := findRow(t, f, sh, 0, "Recovered"); r == 0 || cell(t, f, sh, "B"+itoa(r)) != "2" {
		t.Error("Summary lacks Recovered = 2")
	}
	for _, sheet := range []string{"Summary", "Trend"} {
		charts, err := chartCount(f, sheet)
		if err != nil {
			t.Fatal(err)
		}
		if charts != 1 {
			t.Errorf("%s has %d charts, want 1", sheet, charts)
		}
	}
	if got := cell(t, f, "Trend", "A4"); got != "3" {
		t.Errorf("Trend A4 = %q, want run 3", got)
	}
	if got := cell(t, f, "Tenants", "A2"); got != "tenant-aaaa" {
		t.Errorf("Tenants A2 = %q", got)
	}
}

// chartCount counts the drawings' charts of a sheet via its relationships.
func chartCount(f *excelize.File, sheet string) (int, error) {
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		return 0, err
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return 0, err
	}
	idx, err := f.GetSheetIndex(sheet)
	if err != nil {
		return 0, err
	}
	rels := "xl/worksheets/_rels/sheet" + itoa(idx+1) + ".xml.rels"
	for _, zf := range zr.File {
		if zf.Name != rels {
			continue
		}
		rc, _ := zf.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(b), "drawing") {
			return 0, nil
		}
		return 1, nil
	}
	return 0, nil
}

func TestExcelRedacted(t *testing.T) {
	src := fixture()
	b := workbook(t, src, 3, Options{Redact: true})
	f := openWorkbook(t, b)
	if got, want := f.GetSheetList(), []string{"Summary", "Trend", "Tenants"}; !slices.Equal(got, want) {
		t.Errorf("redacted sheets = %q, want %q", got, want)
	}
	if src.calls != 1 {
		t.Errorf("redacted workbook read the rows %d times, want once (counts only)", src.calls)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		c, _ := io.ReadAll(rc)
		rc.Close()
		all.Write(c)
	}
	text := all.String()
	for _, s := range idStrings(src) {
		var esc strings.Builder
		_ = xml.EscapeText(&esc, []byte(s))
		if strings.Contains(text, s) || strings.Contains(text, esc.String()) {
			t.Errorf("redacted workbook contains %q", s)
		}
	}
	if !strings.Contains(text, "tenant-aaaa") {
		t.Error("redacted workbook lacks the tenant breakdown")
	}
}

func TestExcelRowsError(t *testing.T) {
	src := fixture()
	r, err := Build(context.Background(), src, 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("store went away")
	src.rowsErr = boom
	var buf bytes.Buffer
	if err := WriteExcel(context.Background(), &buf, r, src, Options{}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
	// The workbook is streamed, so w has the start of it; what it has must
	// not open as a workbook (the command writes to a temporary file and
	// removes it on error).
	if f, err := excelize.OpenReader(bytes.NewReader(buf.Bytes())); err == nil {
		f.Close()
		t.Errorf("%d bytes written despite the error open as a workbook", buf.Len())
	}
}
