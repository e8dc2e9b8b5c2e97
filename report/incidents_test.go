package report

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
)

// incidentRows are 40 rows of tenant "t-incident" of which failed502 failed
// with HTTP 502, and 40 of "t-calm" with one 502.
func incidentRows(runID int64, failed502 int) []blockreport.Row {
	var rows []blockreport.Row
	add := func(tenant string, i int, st blockreport.Status, http int) {
		var row blockreport.Row
		row.Reference = blockreport.Reference{ID: int64(len(rows) + 1), TenantID: tenant, UserID: fmt.Sprintf("29:%s-%d", tenant, i), ConversationType: blockreport.ConversationPersonal}
		row.Result = blockreport.Result{RunID: runID, ReferenceID: row.Reference.ID, Status: st, HTTPStatus: http, Reason: "ServiceError", ProbedAt: t2}
		rows = append(rows, row)
	}
	for i := range 40 {
		switch {
		case i < failed502:
			add("t-incident", i, blockreport.StatusFailed, 502)
		case i < failed502+2:
			add("t-incident", i, blockreport.StatusFailed, 500) // not a typing incident's answer
		default:
			add("t-incident", i, blockreport.StatusReachable, 201)
		}
	}
	for i := range 40 {
		if i == 0 {
			add("t-calm", i, blockreport.StatusFailed, 502)
			continue
		}
		add("t-calm", i, blockreport.StatusReachable, 201)
	}
	add("t-calm", 99, blockreport.StatusInvalid, 0)
	return rows
}

// TestTypingIncidents: a typing run in which a tenant's probes failed with
// 502s (as Teams answers during typing incidents) gets a note naming the
// tenant and the counts, in the HTML and the workbook; a tenant with one
// 502, a message run and a tenant under the thresholds get none.
func TestTypingIncidents(t *testing.T) {
	for _, tt := range []struct {
		name      string
		mode      string
		failed502 int
		want      []TypingIncident
	}{
		{"typing run with an incident", "typing", 12, []TypingIncident{{TenantID: "t-incident", Failed: 12, Probed: 40}}},
		{"typing run, 2 502s: below the threshold", "typing", 2, nil},
		{"message run", "message", 12, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &memSource{
				runs: []blockreport.Run{{ID: 1, StartedAt: t2, FinishedAt: t2, State: blockreport.RunFinished, Mode: tt.mode}},
				rows: map[int64][]blockreport.Row{1: incidentRows(1, tt.failed502)},
			}
			r, err := Build(context.Background(), src, 1, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(r.TypingIncidents) != fmt.Sprint(tt.want) {
				t.Fatalf("incidents %+v, want %+v", r.TypingIncidents, tt.want)
			}
			var html bytes.Buffer
			if err := WriteHTML(&html, r); err != nil {
				t.Fatal(err)
			}
			var xlsx bytes.Buffer
			if err := WriteExcel(context.Background(), &xlsx, r, src, Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := excelize.OpenReader(&xlsx)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sheetText := ""
			rows, err := f.GetRows(f.GetSheetName(0))
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				sheetText += strings.Join(row, "\t") + "\n"
			}
			note := "Teams answered 502 to 12 of 40 typing probes (30.0 %)"
			for what, text := range map[string]string{"HTML": html.String(), "workbook": sheetText} {
				has := strings.Contains(text, note) && strings.Contains(text, "t-incident")
				if has != (tt.want != nil) {
					t.Errorf("%s: has the incident note %v, want %v", what, has, tt.want != nil)
				}
				if strings.Contains(text, "Tenant t-calm: Teams answered 502") {
					t.Errorf("%s: a note for the calm tenant", what)
				}
			}
		})
	}
}
