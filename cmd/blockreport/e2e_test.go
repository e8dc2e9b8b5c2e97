package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

// sheetRows is the number of rows of sheet in the workbook at path.
func sheetRows(t *testing.T, path, sheet string) [][]string {
	t.Helper()
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := f.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestDemoEndToEnd runs the demo as "make demo" does, in-process, twice in
// the same directory: the printed reports exist, the workbook lists every
// conversation, the second run shows changes, and the rerun starts clean.
func TestDemoEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"demo", "--out", dir, "--users", "300"}, mapEnv(nil), &stdout, &stderr)
		cancel()
		if code := exitCode(err, &stderr); code != 0 {
			t.Fatalf("demo %d: exit %d\nstdout:\n%s\nstderr:\n%s", attempt, code, stdout.String(), stderr.String())
		}
		out := stdout.String()
		var paths []string
		for _, line := range strings.Split(out, "\n") {
			if p := strings.TrimSpace(line); strings.HasSuffix(p, ".xlsx") || strings.HasSuffix(p, ".html") {
				paths = append(paths, p)
			}
		}
		if len(paths) != 4 {
			t.Fatalf("demo %d printed %d report paths, want 4 (two runs):\n%s", attempt, len(paths), out)
		}
		for _, p := range paths {
			if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("printed path %s: %v", p, err)
			}
		}
		if !strings.HasSuffix(paths[0], "-run1.xlsx") || !strings.HasSuffix(paths[2], "-run2.xlsx") {
			t.Errorf("demo %d: paths %v, want run 1's then run 2's (a rerun starts from a clean database)", attempt, paths)
		}
		// 300 conversations, plus the references coverage created for
		// users who installed the app without one (Graph in the demo).
		results := 0
		if m := regexp.MustCompile(`\(a simulated month ago\): (\d+) results`).FindStringSubmatch(out); m != nil {
			results, _ = strconv.Atoi(m[1])
		}
		if results < 300 || results > 330 {
			t.Errorf("demo %d: run 1 has %d results, want the 300 conversations and a few created by coverage", attempt, results)
		}
		for _, p := range []string{paths[0], paths[2]} {
			if rows := sheetRows(t, p, report.SheetAll); len(rows) != results+1 {
				t.Errorf("%s: %s has %d rows, want header + %d", p, report.SheetAll, len(rows), results)
			}
		}
		if rows := sheetRows(t, paths[2], report.SheetChanged); len(rows) < 2 {
			t.Errorf("run 2's %s sheet has no changes: %q", report.SheetChanged, rows)
		}
		m := regexp.MustCompile(`Changes in run 2: (\d+) \(.*reachable → blocked \d+`).FindStringSubmatch(out)
		if m == nil || m[1] == "0" {
			t.Errorf("demo %d: no changes in the summary:\n%s", attempt, out)
		}
		for _, want := range []string{"300 conversations in 3 tenants", "Run 1, ", "(a simulated month ago): ", "Microsoft Graph (simulated at", "enabled users in the directory", "Graph unavailable", "Run 2, ", "blockreport-demo.db"} {
			if !strings.Contains(out, want) {
				t.Errorf("demo %d: summary lacks %q:\n%s", attempt, want, out)
			}
		}
	}

	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, demoDBName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.Runs(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("the rerun left %d runs, want 2", len(runs))
	}
	gap := runs[0].StartedAt.Sub(runs[1].StartedAt)
	if gap < 29*24*time.Hour || gap > 31*24*time.Hour {
		t.Errorf("runs started %s apart, want a month", gap)
	}
	for _, r := range runs {
		// 300, and the conversations coverage found (Graph in the demo).
		if r.State != blockreport.RunFinished || r.Total() < 300 || r.Total() > 330 || r.FinishedAt.Before(r.StartedAt) {
			t.Errorf("run %d %s with %d results, want finished with 300 and a few created by coverage", r.ID, r.State, r.Total())
		}
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "mine" {
		t.Errorf("the demo touched %s: %q, %v", other, b, err)
	}
}

// helperEnvVars are passed from a test to its blockreport subprocess.
var helperEnvVars = []string{
	"BLOCKREPORT_DB", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "BLOCKREPORT_TOKEN_URL",
	"BLOCKREPORT_ALLOW_HOSTS", "BLOCKREPORT_GCC_SERVICE_URL", "BLOCKREPORT_LOG_LEVEL",
	"BLOCKREPORT_RATE", "BLOCKREPORT_CONCURRENCY", "BLOCKREPORT_OUT",
}

// runSubprocess starts "blockreport run" as a child process: the test
// binary re-executed into TestRunHelperProcess.
func runSubprocess(t *testing.T, getenv func(string) string, out *bytes.Buffer, errb *bytes.Buffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunHelperProcess$")
	cmd.Env = []string{"BLOCKREPORT_RUN_HELPER=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range helperEnvVars {
		if v := getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestRunKill9Resumes kills "blockreport run" with SIGKILL half way, runs it
// again, and checks the second process resumed the same run, recorded one
// result per reference and wrote a report counting the whole population.
func TestRunKill9Resumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{
		Users: 1200, Tenants: 3, Blocked: 0.06, Uninstalled: 0.04, AdminDisabled: 0.01, Deleted: 0.01, Seed: 11,
	})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	out := filepath.Join(t.TempDir(), "reports")
	env := probeEnv(fake, u, map[string]string{"BLOCKREPORT_OUT": out, "BLOCKREPORT_RATE": "150", "BLOCKREPORT_CONCURRENCY": "8"})

	var out1, err1 bytes.Buffer
	cmd := runSubprocess(t, env, &out1, &err1)
	ctx := context.Background()
	killed := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		run, err := db.LatestRun(ctx)
		if err != nil {
			continue
		}
		if n, err := db.CountResults(ctx, run.ID); err == nil && n >= len(pop)/2 {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the run never got half way; stderr:\n%s", err1.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != -1 {
		t.Fatalf("first process exit code %d, want -1 (killed); stderr:\n%s", code, err1.String())
	}
	first, err := db.LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountResults(ctx, first.ID); n >= len(pop) || first.State != blockreport.RunRunning {
		t.Fatalf("the kill came too late: %d results, state %s", n, first.State)
	}
	if files := reportFiles(t, out); len(files) != 0 {
		t.Errorf("the killed run left report files: %v", files)
	}

	env = probeEnv(fake, u, map[string]string{"BLOCKREPORT_OUT": out, "BLOCKREPORT_RATE": "1000"})
	var out2, err2 bytes.Buffer
	cmd = runSubprocess(t, env, &out2, &err2)
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("second process exit code %d, want 0; stderr:\n%s", code, err2.String())
	}

	runs, err := db.Runs(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != first.ID || runs[0].State != blockreport.RunFinished || runs[0].Total() != len(pop) {
		t.Fatalf("runs after the resume: %+v; want only run %d, finished with %d results", runs, first.ID, len(pop))
	}
	checkOneResultEach(t, db, first.ID, fake)

	paths := strings.Fields(out2.String())
	if len(paths) != 2 || !strings.HasSuffix(paths[0], "-run"+strconv.FormatInt(first.ID, 10)+".xlsx") {
		t.Fatalf("stdout %q, want run %d's workbook and page", out2.String(), first.ID)
	}
	if rows := sheetRows(t, paths[0], report.SheetAll); len(rows) != len(pop)+1 {
		t.Errorf("%s has %d rows, want header + %d", report.SheetAll, len(rows), len(pop))
	}
	want := map[string]int{"Total": len(pop)}
	for _, c := range pop {
		want[wantStatus(c).Label()]++
	}
	for _, row := range sheetRows(t, paths[0], report.SheetSummary) {
		if len(row) < 2 {
			continue
		}
		if n, ok := want[row[0]]; ok {
			if got, err := strconv.Atoi(strings.ReplaceAll(row[1], ",", "")); err != nil || got != n {
				t.Errorf("%s row %q: want %d", report.SheetSummary, row, n)
			}
			delete(want, row[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("%s lacks the counts of %v", report.SheetSummary, want)
	}
	assertNoTempFiles(t, out)
}

// TestRunHelperProcess is "blockreport run" as a subprocess of
// TestRunKill9Resumes; it does nothing in a normal test run.
func TestRunHelperProcess(t *testing.T) {
	if os.Getenv("BLOCKREPORT_RUN_HELPER") != "1" {
		return
	}
	err := run(context.Background(), []string{"run"}, os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}
