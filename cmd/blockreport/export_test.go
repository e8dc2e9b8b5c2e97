package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/report"
)

func TestExportCommand(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	seed(t, url)
	dir := t.TempDir()

	// CSV of two statuses into a file.
	out := filepath.Join(dir, "cleanup.csv")
	if _, stderr, code := runCmd(t, "export", "--db", url, "--status", "uninstalled, blocked", "--out", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatalf("read the CSV back: %v", err)
	}
	if got := strings.Join(recs[0], "|"); got != strings.Join(report.ExportColumns, "|") {
		t.Fatalf("header = %q, want %q", got, report.ExportColumns)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d data rows, want the blocked and the uninstalled one: %q", len(recs)-1, recs)
	}
	got := map[string]string{}
	for _, r := range recs[1:] {
		got[r[0]] = r[2] + "|" + r[5] + "|" + r[8]
	}
	if got["Blocked"] != "<script>alert(1)</script>|29:user-1|a:conv-1" || got["Uninstalled"] != "Zoë 🚀|29:user-3|a:conv-3" {
		t.Fatalf("rows = %q", got)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != reportFileMode {
		t.Errorf("mode %v, want %v (the export holds personal data)", fi.Mode().Perm(), os.FileMode(reportFileMode))
	}

	// JSON Lines of every status of run 1 on stdout; a formula-looking name
	// is kept as stored there, and defused in CSV.
	stdout, stderr, code := runCmd(t, "export", "--db", url, "--run", "1", "--status", "all", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("export jsonl: exit %d: %s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	n := 0
	for sc.Scan() {
		var x report.ExportRow
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", n+1, err, sc.Text())
		}
		if x.RunID != 1 || x.ConversationID == "" || x.ReferenceID == 0 || x.ProbedAt == nil {
			t.Errorf("line %d: %+v", n+1, x)
		}
		if x.UserID == "29:user-2" && x.UserName != `=HYPERLINK("http://x","y")` {
			t.Errorf("JSON name = %q, want it as stored", x.UserName)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("%d JSON lines, want 5 (every row of run 1)", n)
	}
	stdout, _, code = runCmd(t, "export", "--db", url, "--status", "reachable")
	if code != 0 || !strings.Contains(stdout, `'=HYPERLINK(`) {
		t.Fatalf("exit %d; a formula-looking name must start with an apostrophe in CSV:\n%s", code, stdout)
	}
	if strings.Contains(stdout, "HTTP 200") {
		t.Errorf("a reachable row's reason is its HTTP status again:\n%s", stdout)
	}
}

func TestExportBadInput(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	seed(t, url)
	dir := t.TempDir()
	out := filepath.Join(dir, "x.csv")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown status", []string{"--status", "blocked,notfound", "--out", out}, 2, `unknown status "notfound"`},
		{"empty status", []string{"--status", ",", "--out", out}, 2, "no status given"},
		{"format", []string{"--format", "xml", "--out", out}, 2, `--format "xml"`},
		{"run", []string{"--run", "first", "--out", out}, 2, `--run "first"`},
		{"no such run", []string{"--run", "9", "--out", out}, 1, "no run 9"},
		{"missing dir", []string{"--out", filepath.Join(dir, "nope", "x.csv")}, 2, "cannot write into"},
		{"directory", []string{"--out", dir}, 2, "is a directory"},
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCmd(t, append([]string{"export", "--db", url}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr %q, want it to name %q", code, tc.code, stderr, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines != 0 {
				t.Errorf("want one line, got:\n%s", stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("bad input left files behind: %v", entries)
	}
}
