package report

import (
	"context"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// TestIncompleteReport: the report of an interrupted run says
// "Incomplete: N of M probed" in the HTML title, the first heading and the
// workbook's Summary, and computes no changes against earlier runs.
func TestIncompleteReport(t *testing.T) {
	src := fixture()
	src.runs[2].State, src.runs[2].FinishedAt = blockreport.RunInterrupted, time.Time{}
	src.pending = map[int64]int{3: 2714}
	r, err := Build(context.Background(), src, 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const note = "Incomplete: 14 of 2,728 probed"
	if !r.Incomplete || r.Planned != 2728 || r.IncompleteNote() != note {
		t.Errorf("Incomplete %v, Planned %d, note %q; want true, 2728, %q", r.Incomplete, r.Planned, r.IncompleteNote(), note)
	}
	if r.Previous != nil {
		t.Errorf("Previous = run %d; an unfinished run is compared with nothing", r.Previous.ID)
	}
	for _, c := range r.Changes {
		if c.Total != 0 {
			t.Errorf("%s: %d changes in an incomplete run", c.Kind, c.Total)
		}
	}
	html := renderHTML(t, src, 3, Options{})
	title := html[strings.Index(html, "<title>"):strings.Index(html, "</title>")]
	h1 := html[strings.Index(html, "<h1>"):strings.Index(html, "</h1>")]
	for what, s := range map[string]string{"title": title, "first heading": h1} {
		if !strings.Contains(s, note) {
			t.Errorf("HTML %s %q lacks %q", what, s, note)
		}
	}
	f := openWorkbook(t, workbook(t, src, 3, Options{}))
	if a1 := cell(t, f, SheetSummary, "A1"); !strings.Contains(a1, note) {
		t.Errorf("Summary A1 = %q, want %q in it", a1, note)
	}
	if rows, _ := f.GetRows(SheetChanged); len(rows) != 1 {
		t.Errorf("sheet Changed has %d rows, want the header only", len(rows))
	}

	// A finished report says nothing of the kind.
	done := fixture()
	if html := renderHTML(t, done, 3, Options{}); strings.Contains(html, "Incomplete") {
		t.Error("the report of a finished run says Incomplete")
	}
}

// TestOnlyFinishedRunsCompared: a failed and an interrupted run between two
// finished ones are neither the previous run nor points of the trend.
func TestOnlyFinishedRunsCompared(t *testing.T) {
	src := fixture()
	// Runs 1, 2 finished; insert 4 (failed) and 5 (interrupted) before a
	// finished run 6 with run 3's rows.
	src.runs = append(src.runs[:2],
		blockreport.Run{ID: 4, StartedAt: t1.Add(time.Hour), Mode: "typing", State: blockreport.RunFailed, Totals: map[blockreport.Status]int{"failed": 14}},
		blockreport.Run{ID: 5, StartedAt: t1.Add(2 * time.Hour), Mode: "typing", State: blockreport.RunInterrupted, Totals: map[blockreport.Status]int{"reachable": 3}},
		blockreport.Run{ID: 6, StartedAt: t2, FinishedAt: t2.Add(time.Hour), Mode: "typing", State: blockreport.RunFinished},
	)
	src.rows = map[int64][]blockreport.Row{6: src.rows[3]}
	r, err := Build(context.Background(), src, 6, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Previous == nil || r.Previous.ID != 2 {
		t.Errorf("Previous = %+v, want run 2 (the latest finished one)", r.Previous)
	}
	var ids []int64
	for _, p := range r.Trend {
		ids = append(ids, p.RunID)
	}
	if len(ids) != 3 || ids[0] != 1 || ids[1] != 2 || ids[2] != 6 {
		t.Errorf("trend runs %v, want [1 2 6]", ids)
	}
}
