package report

import (
	"archive/zip"
	"bytes"
	"io"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

// TestAllSheetLimit: up to the limit "All conversations" has every
// conversation; above it only those not reachable, and the summary says so
// and names the export that has them all.
func TestAllSheetLimit(t *testing.T) {
	src := fixture()
	total := 0
	reachable := 0
	for _, r := range src.rows[3] {
		total++
		if r.Status == blockreport.StatusReachable {
			reachable++
		}
	}
	if reachable == 0 || reachable == total {
		t.Fatalf("fixture has %d reachable of %d: the test needs both", reachable, total)
	}
	for _, tc := range []struct {
		limit, want int
		note        bool
	}{{total, total, false}, {total - 1, total - reachable, true}} {
		f := openWorkbook(t, workbook(t, src, 3, Options{AllSheetLimit: tc.limit}))
		rows, err := f.GetRows(SheetAll)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows)-1 != tc.want {
			t.Errorf("limit %d: %d rows, want %d", tc.limit, len(rows)-1, tc.want)
		}
		for _, r := range rows[1:] {
			if tc.note && r[0] == blockreport.StatusReachable.Label() {
				t.Errorf("limit %d: a reachable row on the sheet: %q", tc.limit, r)
			}
		}
		summary, err := f.GetRows(SheetSummary)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for _, r := range summary {
			text.WriteString(strings.Join(r, " ") + "\n")
		}
		has := strings.Contains(text.String(), "blockreport export --run 3 --status all")
		if has != tc.note {
			t.Errorf("limit %d: summary names the complete export: %v, want %v", tc.limit, has, tc.note)
		}
	}
}

// TestListSheetsCompact: values that repeat on every row are shared
// strings, stored once; unique text is inline; cells carry no references;
// what a row says survives the trip (escaping, spaces, carriage returns).
func TestListSheetsCompact(t *testing.T) {
	src := fixture()
	odd := "  <b>Tom & \"Jerry\"</b>\r\nline  "
	src.rows[3][0].UserName = odd
	b := workbook(t, src, 3, Options{})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	part := func(name string) string {
		rc, err := zr.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		d, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(d)
	}
	parts, err := sheetParts(zr)
	if err != nil {
		t.Fatal(err)
	}
	all := part(parts[SheetAll])
	sst := part(sharedStringsPart)
	for _, s := range []string{"Reachable", "Personal", "tenant-aaaa"} {
		if strings.Contains(all, "<t>"+s+"</t>") {
			t.Errorf("%q is inline on the sheet, want a shared string", s)
		}
		if n := strings.Count(sst, "<t>"+s+"</t>"); n != 1 {
			t.Errorf("%q is %d times in the shared strings, want once", s, n)
		}
	}
	if strings.Contains(all, `<c r="`) {
		t.Error("cells carry references")
	}
	f := openWorkbook(t, b)
	row := findRow(t, f, SheetAll, 2, odd)
	if row == 0 {
		got, _ := f.GetRows(SheetAll)
		t.Fatalf("user name %q not found on the sheet; rows: %q", odd, got)
	}
	// A shared string the summary wrote before the lists keeps its index.
	if v := cell(t, f, SheetAll, "A1"); v != "Status" {
		t.Errorf("A1 = %q, want Status", v)
	}
}
