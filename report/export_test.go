package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// TestExportFollowsListSheets: the export has every list-sheet column, in
// order, with the same value (a column added to the sheets and not to the
// export fails here).
func TestExportFollowsListSheets(t *testing.T) {
	at := time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)
	row := blockreport.Row{
		Reference: blockreport.Reference{ID: 7, TenantID: "t-1", UserID: "29:u", AADObjectID: "aad", UserName: "Ann",
			Email: "ann@example.com", ConversationID: "a:c", ConversationType: blockreport.ConversationChannel,
			TeamID: "19:team", ServiceURL: "https://smba.trafficmanager.net/amer/", Source: "refs.jsonl", SourceKey: "line 1"},
		Result:         blockreport.Result{RunID: 3, Status: blockreport.StatusReachable, Reason: "HTTP 201", HTTPStatus: 201, Detail: "d", ProbedAt: at},
		PreviousStatus: blockreport.StatusBlocked, StatusSince: at,
	}
	values := make([]any, len(Columns))
	rowValues(values, row, styles{})
	rec := csvRecord(NewExportRow(row))
	if len(rec) != len(ExportColumns) {
		t.Fatalf("record has %d fields, header %d", len(rec), len(ExportColumns))
	}
	for i, c := range Columns {
		var want string
		switch v := values[i].(type) {
		case nil:
		case excelize.Cell: // a date
			want = at.Format(time.RFC3339)
		default:
			want = fmt.Sprint(v)
		}
		if rec[i] != want {
			t.Errorf("column %q: export %q, list sheet %q", c, rec[i], want)
		}
	}
	if rec[1] != "Recovered (was blocked)" {
		t.Errorf("reason %q, want Recovered (was blocked), not the HTTP status", rec[1])
	}
}

func TestExporterFormats(t *testing.T) {
	row := blockreport.Row{Reference: blockreport.Reference{UserName: "-1+1", ConversationID: "a:c"}, Result: blockreport.Result{Status: blockreport.StatusNotFound, Reason: "ConversationNotFound"}}
	var b bytes.Buffer
	e, err := NewExporter(&b, ExportCSV)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil || e.Rows() != 1 {
		t.Fatalf("close: %v, rows %d", err, e.Rows())
	}
	if !strings.Contains(b.String(), ",'-1+1,") {
		t.Errorf("formula-looking text not defused:\n%s", b.String())
	}
	b.Reset()
	e, _ = NewExporter(&b, ExportJSONL)
	_ = e.Write(row)
	_ = e.Close()
	if got := b.String(); !strings.Contains(got, `"userName":"-1+1"`) || !strings.HasSuffix(got, "}\n") || strings.Contains(got, "probedAt") {
		t.Errorf("JSON line = %s", got)
	}
	if _, err := NewExporter(&b, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestSourceOf(t *testing.T) {
	for _, c := range []struct{ src, key, want string }{
		{"refs.jsonl", "line 1", "refs.jsonl line 1"},
		{"azblob://c", "name", "azblob://c/name"},
		{"", "", ""},
	} {
		if got := SourceOf(blockreport.Reference{Source: c.src, SourceKey: c.key}); got != c.want {
			t.Errorf("SourceOf(%q, %q) = %q, want %q", c.src, c.key, got, c.want)
		}
	}
}
