package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/store"
)

// storeURLs gives the test a fresh SQLite store and a fresh PostgreSQL one.
func storeURLs(t *testing.T) map[string]func(t *testing.T) string {
	t.Helper()
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
	}
}

var (
	run1Start = time.Date(2026, 10, 5, 7, 0, 0, 0, time.UTC)
	run2Start = time.Date(2026, 11, 5, 23, 30, 0, 0, time.UTC)
)

// seed stores five references and two finished runs: in run 2 a hostile
// name newly blocks the bot and another user uninstalls it.
func seed(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := []string{"Alice Adams", `<script>alert(1)</script>`, `=HYPERLINK("http://x","y")`, "Zoë 🚀", "Dan Diaz"}
	var refs []blockreport.Reference
	for i, n := range names {
		refs = append(refs, blockreport.Reference{
			TenantID: "tenant-1", UserID: fmt.Sprintf("29:user-%d", i), AADObjectID: fmt.Sprintf("aad-%d", i),
			UserName: n, Email: fmt.Sprintf("u%d@example.com", i), ConversationID: fmt.Sprintf("a:conv-%d", i),
			ConversationType: blockreport.ConversationPersonal, ServiceURL: "https://smba.trafficmanager.net/amer/",
			Source: "refs.jsonl", SourceKey: fmt.Sprintf("line %d", i+1),
		})
	}
	if _, err := db.UpsertReferences(ctx, refs, run1Start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	statuses := [][]blockreport.Status{
		{"reachable", "reachable", "reachable", "reachable", "failed"},
		{"reachable", "blocked", "reachable", "uninstalled", "reachable"},
	}
	for i, start := range []time.Time{run1Start, run2Start} {
		run, err := db.CreateRun(ctx, "typing", nil, start)
		if err != nil {
			t.Fatal(err)
		}
		var results []blockreport.Result
		err = db.Pending(ctx, run.ID, "tenant-1", func(ref blockreport.Reference) error {
			j := int(ref.UserID[len(ref.UserID)-1] - '0')
			results = append(results, blockreport.Result{RunID: run.ID, ReferenceID: ref.ID, Status: statuses[i][j], HTTPStatus: 200, ProbedAt: start.Add(time.Minute), Attempts: 1})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SaveResults(ctx, results); err != nil {
			t.Fatal(err)
		}
		if err := db.SetRunState(ctx, run.ID, blockreport.RunFinished, start.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// migrated creates an empty, migrated store at url.
func migrated(t *testing.T, url string) {
	t.Helper()
	if _, stderr, code := runCmd(t, "migrate", "--db", url); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
}

func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestReportCommand(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			seed(t, url)
			out := filepath.Join(t.TempDir(), "reports")

			stdout, stderr, code := runCmd(t, "report", "--db", url, "--out", out)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			want := []string{
				filepath.Join(out, "blockreport-2026-11-05-run2.xlsx"),
				filepath.Join(out, "blockreport-2026-11-05-run2.html"),
			}
			if got := strings.Split(strings.TrimSpace(stdout), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("stdout = %q, want the two paths %q", stdout, want)
			}
			for _, p := range want {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o640 {
					t.Errorf("%s has mode %v, want 0640", p, fi.Mode().Perm())
				}
			}
			html, _ := os.ReadFile(want[1])
			for _, s := range []string{"Newly blocked", "&lt;script&gt;alert(1)&lt;/script&gt;", "Blocked (1)", "Uninstalled (1)"} {
				if !bytes.Contains(html, []byte(s)) {
					t.Errorf("HTML lacks %q", s)
				}
			}
			f, err := excelize.OpenFile(want[0])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := f.GetRows("Blocked")
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[1][2] != `<script>alert(1)</script>` || rows[1][12] != "Reachable" {
				t.Errorf("Blocked sheet rows = %q", rows)
			}
			if rows, _ := f.GetRows("All conversations"); len(rows) != 6 {
				t.Errorf("All conversations has %d rows, want header + 5", len(rows))
			}
			assertNoTempFiles(t, out)

			// An older run by ID, and a redacted copy.
			stdout, stderr, code = runCmd(t, "report", "--db", url, "--out", out, "--run", "1", "--redact")
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, "blockreport-2026-10-05-run1-redacted.xlsx\n") || !strings.Contains(stdout, "blockreport-2026-10-05-run1-redacted.html\n") {
				t.Errorf("stdout = %q, want the redacted paths of run 1", stdout)
			}
			red, _ := os.ReadFile(filepath.Join(out, "blockreport-2026-10-05-run1-redacted.html"))
			for _, s := range []string{"Alice", "u0@example.com", "aad-0", "29:user-0", "a:conv-0"} {
				if bytes.Contains(red, []byte(s)) {
					t.Errorf("redacted HTML contains %q", s)
				}
			}

			// Unknown run.
			_, stderr, code = runCmd(t, "report", "--db", url, "--out", out, "--run", "9")
			if code != 1 || !strings.Contains(stderr, "no run 9") {
				t.Errorf("unknown run: exit %d, stderr %q; want 1 and \"no run 9\"", code, stderr)
			}
		})
	}
}

func TestReportCommandNoRuns(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			url := newURL(t)
			migrated(t, url)
			_, stderr, code := runCmd(t, "report", "--db", url, "--out", out)
			if code != 1 || !strings.Contains(stderr, "no runs yet") {
				t.Errorf("exit %d, stderr %q; want 1 and \"no runs yet\"", code, stderr)
			}
			assertEmptyDir(t, out)
		})
	}
}

func TestReportCommandOutNotWritable(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	seed(t, url)
	// A regular file where the directory should be: fails even as root.
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{blocker, filepath.Join(blocker, "sub")} {
		stdout, stderr, code := runCmd(t, "report", "--db", url, "--out", out)
		if code != 1 {
			t.Errorf("--out %s: exit %d, want 1", out, code)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "blockreport: --out "+out+": cannot write reports there") {
			t.Errorf("--out %s: last stderr line %q does not name the directory", out, last)
		}
		if stdout != "" {
			t.Errorf("--out %s: stdout %q, want nothing", out, stdout)
		}
	}
}

func TestReportCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"report"}, "--out DIR is required"},
		{"bad run", []string{"report", "--out", "x", "--run", "abc"}, `--run "abc"`},
		{"zero run", []string{"report", "--out", "x", "--run", "0"}, `--run "0"`},
		{"extra arg", []string{"report", "--out", "x", "extra"}, `unexpected argument "extra"`},
		{"bad db", []string{"report", "--out", "x", "--db", "mysql://x"}, "--db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runCmd(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.xlsx")
	if err := os.WriteFile(path, []byte("old complete report"), 0o640); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := writeFileAtomic(path, func(w io.Writer) error {
		if _, err := io.WriteString(w, strings.Repeat("half", 1<<19)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if b, _ := os.ReadFile(path); string(b) != "old complete report" {
		t.Errorf("failed write changed the file under the final name: %.20q", b)
	}
	assertNoTempFiles(t, dir)

	if err := writeFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("file = %q, want new", b)
	}
	assertNoTempFiles(t, dir)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("%s is not empty: %v", dir, entries)
	}
}
