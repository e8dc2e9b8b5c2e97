package report

import (
	"context"
	"errors"
	"fmt"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

func TestBuild(t *testing.T) {
	src := fixture()
	r, err := Build(context.Background(), src, 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.calls != 1 {
		t.Errorf("Build read the rows %d times, want once", src.calls)
	}
	if r.Total != 14 {
		t.Errorf("Total = %d, want 14", r.Total)
	}
	if r.Previous == nil || r.Previous.ID != 2 {
		t.Fatalf("Previous = %+v, want run 2", r.Previous)
	}
	wantCounts := map[blockreport.Status][3]int{ // count, previous, delta
		"reachable":      {4, 7, -3},
		"blocked":        {2, 2, 0},
		"uninstalled":    {1, 1, 0},
		"admin_disabled": {1, 0, 1},
		"not_found":      {1, 0, 1},
		"forbidden":      {1, 0, 1},
		"throttled":      {1, 0, 1},
		"failed":         {1, 1, 0},
		"invalid":        {1, 1, 0},
		"opted_out":      {1, 1, 0},
	}
	if len(r.Counts) != len(blockreport.Statuses) {
		t.Fatalf("len(Counts) = %d, want %d", len(r.Counts), len(blockreport.Statuses))
	}
	for i, c := range r.Counts {
		if c.Status != blockreport.Statuses[i] {
			t.Errorf("Counts[%d] = %s, want %s", i, c.Status, blockreport.Statuses[i])
		}
		w := wantCounts[c.Status]
		if got := [3]int{c.Count, c.Previous, c.Delta}; got != w {
			t.Errorf("%s: count, previous, delta = %v, want %v", c.Status, got, w)
		}
	}
	if got, want := r.Counts[0].Share, 4.0/14; got != want {
		t.Errorf("reachable share = %v, want %v", got, want)
	}

	changes := map[ChangeKind]int{}
	for _, c := range r.Changes {
		changes[c.Kind] = c.Total
		if len(c.Rows) != c.Total {
			t.Errorf("%s keeps %d rows, want %d", c.Kind, len(c.Rows), c.Total)
		}
	}
	// Row 3 stays blocked (not new); row 10 has no previous result; row 7
	// and 8 recovered from blocked and uninstalled.
	want := map[ChangeKind]int{NewlyBlocked: 1, NewlyUninstalled: 1, NewlyAdminDisabled: 1, NewlyNotFound: 1, Recovered: 2}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes = %v, want %v", changes, want)
	}

	lists := map[ListKind]int{}
	for _, l := range r.Lists {
		lists[l.Kind] = l.Total
	}
	wantLists := map[ListKind]int{ListBlocked: 2, ListUninstalled: 1, ListAdminDisabled: 1, ListNotFound: 1, ListUnchecked: 4}
	if fmt.Sprint(lists) != fmt.Sprint(wantLists) {
		t.Errorf("lists = %v, want %v", lists, wantLists)
	}

	if len(r.Tenants) != 2 || r.Tenants[0].TenantID != "tenant-aaaa" || r.Tenants[0].Total != 7 || r.Tenants[1].Counts.Unchecked() != 4 {
		t.Errorf("tenants = %+v", r.Tenants)
	}
	scopes := map[Scope]int{}
	for _, s := range r.Scopes {
		scopes[s.Scope] = s.Total
	}
	if fmt.Sprint(scopes) != fmt.Sprint(map[Scope]int{ScopePersonal: 11, ScopeTeam: 2, ScopeGroupChat: 1}) {
		t.Errorf("scopes = %v", scopes)
	}

	if len(r.Trend) != 3 || r.Trend[0].RunID != 1 || r.Trend[2].RunID != 3 {
		t.Fatalf("trend = %+v, want runs 1, 2, 3", r.Trend)
	}
	// Run 3 has no stored totals yet: the trend takes them from the rows.
	if r.Trend[2].Total != 14 || r.Trend[2].Counts["blocked"] != 2 {
		t.Errorf("trend point of run 3 = %+v", r.Trend[2])
	}
}

func TestBuildCaps(t *testing.T) {
	src := &memSource{runs: []blockreport.Run{{ID: 1, StartedAt: t0, Mode: "message", State: blockreport.RunFinished}}, rows: map[int64][]blockreport.Row{}}
	for i := int64(1); i <= 25; i++ {
		src.rows[1] = append(src.rows[1], row(i, "t", "n", blockreport.ConversationPersonal, blockreport.StatusBlocked, blockreport.StatusReachable, t0))
	}
	r, err := Build(context.Background(), src, 1, Options{ListLimit: 10, ChangeLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Lists[0]; l.Total != 25 || len(l.Rows) != 10 || l.More() != 15 {
		t.Errorf("blocked list: total %d, rows %d, more %d; want 25, 10, 15", l.Total, len(l.Rows), l.More())
	}
	if c := r.Changes[0]; c.Total != 25 || len(c.Rows) != 3 {
		t.Errorf("newly blocked: total %d, rows %d; want 25, 3", c.Total, len(c.Rows))
	}
	if r.Previous != nil {
		t.Errorf("first run has previous %+v", r.Previous)
	}
	if r.Counts[1].Previous != 0 || r.Counts[1].Delta != 25 {
		t.Errorf("blocked without a previous run: %+v", r.Counts[1])
	}
}

func TestBuildRedactKeepsNoRows(t *testing.T) {
	r, err := Build(context.Background(), fixture(), 3, Options{Redact: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Lists {
		if len(l.Rows) != 0 {
			t.Errorf("redacted list %s keeps %d rows", l.Kind, len(l.Rows))
		}
	}
	for _, c := range r.Changes {
		if len(c.Rows) != 0 {
			t.Errorf("redacted change %s keeps %d rows", c.Kind, len(c.Rows))
		}
	}
	if r.Lists[0].Total != 2 {
		t.Errorf("redacted blocked total = %d, want 2", r.Lists[0].Total)
	}
}

func TestBuildErrors(t *testing.T) {
	boom := errors.New("connection reset")
	tests := []struct {
		name  string
		src   *memSource
		runID int64
		want  error
	}{
		{"unknown run", fixture(), 9, errNoRun},
		{"rows fail", func() *memSource { s := fixture(); s.rowsErr = boom; return s }(), 3, boom},
		{"no rows", fixture(), 1, ErrNoRows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(context.Background(), tt.src, tt.runID, Options{})
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestModeOf(t *testing.T) {
	tests := []struct {
		mode    string
		blocked bool // whether "blocked" is detectable
	}{
		{"typing", true},
		{"message", true},
		{"members", false},
		{"carrier-pigeon", false},
	}
	for _, tt := range tests {
		m := ModeOf(tt.mode)
		got := false
		for _, d := range m.Detects {
			if d == "blocked" {
				got = true
			}
		}
		if got != tt.blocked {
			t.Errorf("%s detects blocked = %v, want %v", tt.mode, got, tt.blocked)
		}
		muted := false
		for _, d := range m.CannotDetect {
			if len(d) >= 5 && d[:5] == "muted" {
				muted = true
			}
		}
		if !muted {
			t.Errorf("%s does not say muting is undetectable: %v", tt.mode, m.CannotDetect)
		}
	}
}
