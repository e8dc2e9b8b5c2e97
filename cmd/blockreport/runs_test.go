package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunsCommand(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			migrated(t, url)
			stdout, stderr, code := runCmd(t, "runs", "--db", url)
			if code != 0 || strings.TrimSpace(stdout) != "no runs yet" {
				t.Errorf("empty store: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			stdout, _, code = runCmd(t, "runs", "--db", url, "--json")
			if code != 0 || strings.TrimSpace(stdout) != "[]" {
				t.Errorf("empty store, --json: exit %d, stdout %q", code, stdout)
			}

			seed(t, url) // run 1: 4 reachable, 1 failed; run 2: 3 reachable, 1 blocked, 1 uninstalled
			stdout, stderr, code = runCmd(t, "runs", "--db", url)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("table %q: want a header and two runs", stdout)
			}
			want := [][]string{
				{"ID", "STARTED", "(UTC)", "FINISHED", "(UTC)", "MODE", "STATE", "TOTAL", "REACHABLE", "BLOCKED", "UNINSTALLED", "ADMIN_DISABLED", "NOT_FOUND", "UNCHECKED", "OTHER"},
				{"2", "2026-11-05", "23:30", "2026-11-05", "23:40", "typing", "finished", "5", "3", "1", "1", "0", "0", "0", "0"},
				{"1", "2026-10-05", "07:00", "2026-10-05", "07:10", "typing", "finished", "5", "4", "0", "0", "0", "0", "1", "0"},
			}
			for i, line := range lines {
				if got := strings.Fields(line); strings.Join(got, " ") != strings.Join(want[i], " ") {
					t.Errorf("line %d = %q, want fields %q", i, line, want[i])
				}
			}
			// Aligned: every column starts at the same offset on each line.
			for _, col := range []string{"STATE", "TOTAL", "UNCHECKED"} {
				at := strings.Index(lines[0], col)
				for _, line := range lines[1:] {
					if at > len(line) || line[at-2:at] != "  " || line[at] == ' ' {
						t.Errorf("column %s (offset %d) is not aligned in %q", col, at, line)
					}
				}
			}

			stdout, _, code = runCmd(t, "runs", "--db", url, "--limit", "1", "--json")
			var got []runsJSON
			if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 {
				t.Fatalf("--json: exit %d, %v: %q", code, err, stdout)
			}
			if len(got) != 1 || got[0].ID != 2 || got[0].Total != 5 || got[0].Totals["blocked"] != 1 ||
				got[0].FinishedAt == nil || !got[0].StartedAt.Equal(time.Date(2026, 11, 5, 23, 30, 0, 0, time.UTC)) {
				t.Errorf("--json --limit 1 = %+v", got)
			}
		})
	}
}

func TestRunsUsage(t *testing.T) {
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	for _, args := range [][]string{
		{"runs", "--db", u, "--limit", "-1"}, {"runs", "--db", u, "extra"}, {"runs", "--db", "mysql://x"}, {"runs", "--limit", "x"},
	} {
		if _, stderr, code := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := runCmd(t, "version")
	if code != 0 || stdout != "blockreport "+version+"\n" {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}
