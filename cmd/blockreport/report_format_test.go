package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportFormatJSON(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	seed(t, url)
	out := filepath.Join(t.TempDir(), "reports")
	stdout, stderr, code := runCmd(t, "report", "--db", url, "--out", out, "--format", "json, xlsx")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []string{filepath.Join(out, "blockreport-2026-11-05-run2.xlsx"), filepath.Join(out, "blockreport-2026-11-05-run2.json")}
	if got := strings.Fields(stdout); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stdout %q, want %q (no HTML)", stdout, want)
	}
	b, err := os.ReadFile(want[1])
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Run struct {
			ID int64 `json:"id"`
		} `json:"run"`
		Total  int `json:"total"`
		Totals []struct {
			Status string `json:"status"`
			Count  int    `json:"count"`
			Change *int   `json:"change"`
		} `json:"totals"`
		Changes []struct {
			Kind  string `json:"kind"`
			Count int    `json:"count"`
		} `json:"changes"`
		Tenants []struct {
			ID    string `json:"id"`
			Total int    `json:"total"`
		} `json:"tenants"`
		Departments []any `json:"departments"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	if sum.Run.ID != 2 || sum.Total != 5 || sum.Totals[1].Status != "blocked" || sum.Totals[1].Count != 1 || *sum.Totals[1].Change != 1 {
		t.Errorf("summary %+v", sum)
	}
	if len(sum.Changes) != 5 || sum.Changes[0].Count != 1 || len(sum.Tenants) != 1 || sum.Tenants[0].Total != 5 || sum.Departments == nil {
		t.Errorf("changes %+v tenants %+v departments %v", sum.Changes, sum.Tenants, sum.Departments)
	}
	if strings.Contains(string(b), "u1@example.com") || strings.Contains(string(b), "<script>") {
		t.Error("the JSON summary holds personal data")
	}

	bad := filepath.Join(t.TempDir(), "bad")
	for _, f := range []string{"pdf", "html,csv", ","} {
		_, stderr, code := runCmd(t, "report", "--db", url, "--out", bad, "--format", f)
		if code != 2 || !strings.Contains(stderr, "--format") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--format %q: exit %d, %q; want exit 2, one line naming --format", f, code, stderr)
		}
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a bad --format created the output directory: %v", err)
	}
}
