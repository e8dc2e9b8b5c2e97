package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	r, err := Build(context.Background(), layoutSource(), 3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Run struct {
			ID    int64  `json:"id"`
			State string `json:"state"`
		} `json:"run"`
		PreviousRun *struct{ ID int64 } `json:"previousRun"`
		Headline    string              `json:"headline"`
		Total       int                 `json:"total"`
		Totals      []struct {
			Status string `json:"status"`
			Count  int    `json:"count"`
			Change *int   `json:"change"`
		} `json:"totals"`
		Changes []struct {
			Kind  string `json:"kind"`
			Count int    `json:"count"`
		} `json:"changes"`
		Tenants []struct {
			ID     string         `json:"id"`
			Name   string         `json:"name"`
			Total  int            `json:"total"`
			Counts map[string]int `json:"counts"`
		} `json:"tenants"`
		Departments []struct {
			Name  string `json:"name"`
			Total int    `json:"total"`
		} `json:"departments"`
		Trend []struct {
			Run int64 `json:"run"`
		} `json:"trend"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if got.Run.ID != 3 || got.Run.State != "finished" || got.PreviousRun == nil || got.PreviousRun.ID != 2 || got.Total != 2000 {
		t.Errorf("run %+v previous %+v total %d", got.Run, got.PreviousRun, got.Total)
	}
	if !strings.HasPrefix(got.Headline, "90.9 % of 2,000 users") {
		t.Errorf("headline %q", got.Headline)
	}
	if got.Totals[1].Status != "blocked" || got.Totals[1].Count != 142 || got.Totals[1].Change == nil || *got.Totals[1].Change != 22 {
		t.Errorf("blocked total %+v, want 142, +22", got.Totals[1])
	}
	if len(got.Changes) != 5 || got.Changes[0].Kind != "Newly blocked" || got.Changes[0].Count != 22 {
		t.Errorf("changes %+v", got.Changes)
	}
	if len(got.Tenants) != 2 || got.Tenants[0].Name != "Fabrikam" || got.Tenants[0].Total != 1000 || got.Tenants[0].Counts["blocked"] != 71 {
		t.Errorf("tenants %+v", got.Tenants)
	}
	if len(got.Departments) != 3 || len(got.Trend) != 3 || got.Trend[0].Run != 1 {
		t.Errorf("departments %+v trend %+v", got.Departments, got.Trend)
	}
	for _, personal := range []string{"29:u", "a:c"} {
		if strings.Contains(b.String(), personal) {
			t.Errorf("the JSON summary holds user or conversation ids (%q)", personal)
		}
	}

	// A first run has no changes (null), not zeros.
	src := layoutSource()
	src.runs = src.runs[:1]
	r1, _ := Build(context.Background(), src, 1, Options{})
	b.Reset()
	_ = WriteJSON(&b, r1)
	if !strings.Contains(b.String(), `"changes": null`) || !strings.Contains(b.String(), `"previousRun": null`) {
		t.Errorf("first run:\n%s", b.String())
	}
}
