package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// helperEnv is the environment of a blockreport subprocess against fake
// and the store at dbURL, plus extra.
func helperEnv(fake *faketeams.Server, dbURL string, extra map[string]string) map[string]string {
	env := fakeEnv(fake, dbURL)
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// checkAtMostOnce asserts the message-mode promise at faketeams: no
// conversation got two messages, every reference of run has exactly one
// result, and a result that says the message arrived (a definite answer)
// matches exactly one message.
func checkAtMostOnce(t *testing.T, db *store.DB, runID int64, fake *faketeams.Server) (unknown int) {
	t.Helper()
	msgs := fake.Stats().Messages
	for conv, n := range msgs {
		if n > 1 {
			t.Errorf("conversation %s got %d messages", conv, n)
		}
	}
	want := map[string]blockreport.Status{}
	for _, c := range fake.Population() {
		want[c.ConversationID] = wantStatus(c)
	}
	seen := map[string]int{}
	err := db.Rows(context.Background(), runID, func(r blockreport.Row) error {
		seen[r.ConversationID]++
		switch {
		case r.Reason == probe.ReasonDeliveryUnknown:
			unknown++
		case r.Status == blockreport.StatusThrottled:
		case r.Status != want[r.ConversationID]:
			t.Errorf("%s: %s (%s: %s), want %s", r.ConversationID, r.Status, r.Reason, r.Detail, want[r.ConversationID])
		case msgs[r.ConversationID] != 1:
			t.Errorf("%s: %s, but faketeams saw %d messages", r.ConversationID, r.Status, msgs[r.ConversationID])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("conversation %s has %d results, want 1", id, seen[id])
		}
	}
	return unknown
}

// TestMessageModeKill9: a message-mode probe with 5xx, 412, resets and
// answers later than --timeout is killed with SIGKILL half way and run
// again: no conversation gets two messages, every reference ends with
// exactly one result, and what the killed process had claimed but not
// answered ends as DeliveryUnknown.
func TestMessageModeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 1500, Tenants: 4, Blocked: 0.06, Uninstalled: 0.04, Seed: 31})
	fake := startFake(t, faketeams.Config{
		Population: pop, Latency: 3 * time.Millisecond, Limits: faketeams.NoLimits(), Seed: 31,
		Faults:   faketeams.Faults{ServerErrors: 0.03, Resets: 0.02, Stalls: 0.01, Throttles: 0.005, BurstFor: 200 * time.Millisecond},
		StallFor: 3 * time.Second,
	})
	dir := t.TempDir()
	u := "sqlite:" + filepath.Join(dir, "b.db")
	db := openSeeded(t, u, fake.References())
	msg := writeFile(t, dir, "msg.txt", "Please update the app")
	cmd, out := startHelper(t, "probe", helperEnv(fake, u, map[string]string{
		"BLOCKREPORT_MODE": "message", "BLOCKREPORT_MESSAGE_FILE": msg,
		"BLOCKREPORT_RATE": "200", "BLOCKREPORT_CONCURRENCY": "16", "BLOCKREPORT_TIMEOUT": "500ms",
	}))
	run := waitResults(t, db, len(pop)/2)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	claimed, stranded, err := db.CountSends(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := db.CountResults(context.Background(), run.ID)
	t.Logf("killed with %d results, %d sends claimed, %d of them unanswered", n, claimed, stranded)
	if n >= len(pop) {
		t.Fatalf("the kill came too late: %d results; output:\n%s", n, out.String())
	}

	stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil),
		"--mode", "message", "--message-file", msg, "--rate", "1000", "--timeout", "500ms")
	if code != 0 && code != 1 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	again, err := db.Run(context.Background(), run.ID)
	if err != nil || again.State != blockreport.RunFinished || again.Total() != len(pop) {
		t.Fatalf("after the resume: %+v, %v; want run %d finished with %d results", again, err, run.ID, len(pop))
	}
	unknown := checkAtMostOnce(t, db, run.ID, fake)
	if unknown < stranded {
		t.Errorf("%d DeliveryUnknown results, fewer than the %d sends stranded by the kill", unknown, stranded)
	}
	t.Logf("%d DeliveryUnknown results (faults and stranded sends)", unknown)
	if _, unanswered, _ := db.CountSends(context.Background(), run.ID); unanswered != 0 {
		t.Errorf("%d claimed sends without a result in a finished run", unanswered)
	}
}

// TestTypingModeKeepsRetrying: resets and one retryable answer (503, 502,
// 504, 412 or 429) per transient conversation are retried in typing mode,
// so every conversation ends with the status its state implies.
func TestTypingModeKeepsRetrying(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 300, Tenants: 2, Blocked: 0.1, Transient: 0.1, Seed: 32})
	fake := startFake(t, faketeams.Config{
		Population: pop, Limits: faketeams.NoLimits(), Seed: 32,
		Faults: faketeams.Faults{Resets: 0.03},
	})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000", "--attempts", "10"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	run, _ := db.LatestRun(context.Background())
	checkOneResultEach(t, db, run.ID, fake)
	st := fake.Stats()
	if st.Count(faketeams.RouteSendActivity, "reset") == 0 || st.Total(faketeams.RouteSendActivity) <= len(pop) {
		t.Errorf("no fault was retried: %v", st.Requests[faketeams.RouteSendActivity])
	}
}

// TestAllowListPreflight: when no stored service host is allowed, probe
// exits 2 naming the hosts and --allow-host and records no run; when some
// are not, it warns once per host with its count and goes on.
func TestAllowListPreflight(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 30, Tenants: 2, Seed: 33})
	fake := startFake(t, faketeams.Config{Population: pop})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	refs := fake.References()
	for i := range 4 {
		refs[i].ServiceURL = "https://evil.example/amer/"
	}
	refs[4].ServiceURL = "http://10.0.0.9/amer/"
	db := openSeeded(t, u, refs)

	stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, map[string]string{"BLOCKREPORT_ALLOW_HOSTS": "", "BLOCKREPORT_GCC_SERVICE_URL": ""}))
	host := strings.TrimPrefix(fake.URL(), "http://")
	if code != 2 || !strings.Contains(stderr, host+" (25 references)") || !strings.Contains(stderr, "--allow-host") {
		t.Errorf("none allowed: exit %d, stderr %q; want 2 naming %s and --allow-host", code, stderr, host)
	}
	if runs, _ := db.Runs(context.Background(), 0, 0); len(runs) != 0 {
		t.Errorf("%d runs recorded, want none", len(runs))
	}
	if st := fake.Stats(); st.Total(faketeams.RouteSendActivity) != 0 {
		t.Errorf("requests were sent: %v", st.Requests)
	}

	stderr, code = runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000")
	if code != 0 {
		t.Fatalf("some allowed: exit %d: %s", code, stderr)
	}
	var warnings []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "warning: ") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "4 references point at evil.example") ||
		!strings.Contains(warnings[1], "1 references point at http://10.0.0.9") {
		t.Errorf("warnings %q; want one per refused host with its count", warnings)
	}
	run, _ := db.LatestRun(context.Background())
	if run.Totals[blockreport.StatusInvalid] != 5 || run.Total() != len(pop) {
		t.Errorf("run totals %v, want 5 invalid of %d", run.Totals, len(pop))
	}
}

// TestCheckCommand: check reports every step on one line each and probes
// nobody; exit 0 when ready, 1 when a check fails, 2 when a flag or file
// must be fixed.
func TestCheckCommand(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 20, Tenants: 2, Seed: 34})
	fake := startFake(t, faketeams.Config{Population: pop})
	dir := t.TempDir()
	u := "sqlite:" + filepath.Join(dir, "b.db")
	openSeeded(t, u, fake.References())
	msg := writeFile(t, dir, "msg.txt", "Hello")
	badMsg := writeFile(t, dir, "bad.json", `{"type":"nope"}`)
	blocker := writeFile(t, dir, "a-file", "")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     []string
	}{
		{"ready", nil, []string{"--out", filepath.Join(dir, "reports")}, 0,
			[]string{"ok database", "20 references; the next probe starts a new run", "ok token", "20 of 20 references point at allowed hosts", "does not exist yet; run creates it"}},
		{"message mode", nil, []string{"--mode", "message", "--message-file", msg}, 0, []string{"ok message file " + msg}},
		{"wrong secret", map[string]string{"MICROSOFT_APP_PASSWORD": "Wrong-Secret-0123456789"}, nil, 1, []string{"FAILED token", "wrong or expired secret"}},
		{"nothing allowed", map[string]string{"BLOCKREPORT_ALLOW_HOSTS": "", "BLOCKREPORT_GCC_SERVICE_URL": ""}, nil, 2, []string{"FAILED allow-list", "--allow-host"}},
		{"no password", map[string]string{"MICROSOFT_APP_PASSWORD": ""}, nil, 2, []string{"FAILED credentials", "- token skipped"}},
		{"bad message", nil, []string{"--mode", "message", "--message-file", badMsg}, 2, []string{"FAILED message file", "Adaptive Card"}},
		{"out under a file", nil, []string{"--out", filepath.Join(blocker, "x")}, 1, []string{"FAILED output directory", "not a directory"}},
		{"no store", nil, []string{"--db", "sqlite:" + filepath.Join(dir, "typo.db")}, 2, []string{"FAILED database", "typo.db: no such file", "- allow-list skipped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeEnv(fake, u)
			for k, v := range tt.env {
				env[k] = v
			}
			stdout, stderr, code := runEnvCmd(t, mapEnv(env), append([]string{"check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.wantCode, stdout, stderr)
			}
			if n := strings.Count(stdout, "\n"); n < 7 {
				t.Errorf("%d lines, want one per step:\n%s", n, stdout)
			}
			flat := strings.Join(strings.Fields(stdout), " ") // the columns' padding aside
			for _, w := range tt.want {
				if !strings.Contains(flat, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout+stderr, faketeams.DefaultAppSecret) {
				t.Error("the secret was printed")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "reports")); err == nil {
		t.Error("check created the output directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
		t.Error("check created a store")
	}
	if st := fake.Stats(); st.Total(faketeams.RouteSendActivity)+st.Total(faketeams.RouteCreateConversation) != 0 {
		t.Errorf("check probed: %v", st.Requests)
	}
}

func runEnvCmd(t *testing.T, getenv func(string) string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	err := run(context.Background(), args, getenv, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// TestRunRetryUnchecked: after exit 3, run --retry-unchecked re-probes the
// failed conversations inside the same run, writes that run's reports
// again and exits 0; the trend keeps one point per run.
func TestRunRetryUnchecked(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 60, Tenants: 2, Blocked: 0.05, Seed: 35})
	for i, n := 0, 0; i < len(pop) && n < 6; i++ {
		if pop[i].State == faketeams.StateActive {
			pop[i].State = faketeams.StateScripted
			pop[i].Script = []faketeams.Step{{Status: 500, Code: "InternalServerError"}, {State: faketeams.StateActive}}
			n++
		}
	}
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	out := t.TempDir()
	env := probeEnv(fake, u, map[string]string{"BLOCKREPORT_OUT": out})
	stdout, stderr, code := runRunCmd(t, env, "--rate", "1000")
	if code != exitUnchecked || !strings.Contains(stderr, "--retry-unchecked") {
		t.Fatalf("first run: exit %d, stderr %q; want 3 and the advice", code, stderr)
	}
	first := strings.Fields(stdout)

	stdout, stderr, code = runRunCmd(t, env, "--rate", "1000", "--retry-unchecked")
	if code != 0 || !strings.Contains(stderr, "run 1: re-probing 6 results") {
		t.Fatalf("retry: exit %d, stderr %q", code, stderr)
	}
	if again := strings.Fields(stdout); strings.Join(again, " ") != strings.Join(first, " ") {
		t.Errorf("retry wrote %v, want the same run's reports %v", again, first)
	}
	runs, _ := db.Runs(context.Background(), 0, 0)
	if len(runs) != 1 || runs[0].State != blockreport.RunFinished || runs[0].Totals[blockreport.StatusFailed] != 0 {
		t.Errorf("runs after retry: %+v; want one finished run without failures", runs)
	}
	checkOneResultEach(t, db, 1, fake)
	f, err := excelize.OpenFile(first[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rows, _ := f.GetRows("Trend"); len(rows) != 2 {
		t.Errorf("Trend sheet has %d rows, want header + one run", len(rows))
	}
	if rows, _ := f.GetRows("Could not check"); len(rows) != 1 {
		t.Errorf("the rewritten report still lists %d unchecked conversations", len(rows)-1)
	}

	// The flags that go together, and those that do not.
	for _, args := range [][]string{
		{"--resume", "1"},
		{"--run", "1"},
		{"--include-unknown"},
		{"--retry-unchecked", "--resume", "1"},
		{"--retry-unchecked", "--run", "7"},
	} {
		if _, stderr, code := runRunCmd(t, env, args...); code != 2 {
			t.Errorf("%v: exit %d, stderr %q; want 2", args, code, stderr)
		} else if args[0] == "--resume" && !strings.Contains(stderr, "--retry-unchecked") {
			t.Errorf("--resume of a finished run does not point at --retry-unchecked: %q", stderr)
		}
	}
}

// TestRunsDeleteAndPrune: runs delete removes a run, refuses the running
// one and names a missing one; prune keeps the newest finished runs.
func TestRunsDeleteAndPrune(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 10, Seed: 36})
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	for range 4 {
		if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
			t.Fatalf("probe: exit %d: %s", code, stderr)
		}
	}
	stdout, stderr, code := runCmd(t, "runs", "delete", "--db", u, "2")
	if code != 0 || stdout != "deleted run 2 and its 10 results\n" {
		t.Errorf("runs delete 2: exit %d, %q %q", code, stdout, stderr)
	}
	if _, stderr, code := runCmd(t, "runs", "delete", "--db", u, "2"); code != 2 || !strings.Contains(stderr, "no run 2") {
		t.Errorf("delete again: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{{"runs", "delete", "--db", u}, {"runs", "delete", "--db", u, "x"}, {"prune", "--db", u}} {
		if _, _, code := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// A run in progress (this test holds the lock, as its process would).
	run, err := db.CreateRun(context.Background(), "typing", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	release, err := db.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, "runs", "delete", "--db", u, "5"); code != 1 || !strings.Contains(stderr, "being probed") {
		t.Errorf("delete of the running run %d: exit %d, %q; want 1", run.ID, code, stderr)
	}
	stdout, _, code = runCmd(t, "prune", "--db", u, "--keep", "1", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "would delete 2 runs (1, 3)") || !strings.Contains(stdout, "would keep the 1 newest finished run\n") {
		t.Errorf("prune --dry-run: exit %d, %q", code, stdout)
	}
	stdout, _, code = runCmd(t, "prune", "--db", u, "--keep", "1")
	if code != 0 || !strings.Contains(stdout, "deleted 2 runs (1, 3) and their 20 results") {
		t.Errorf("prune: exit %d, %q", code, stdout)
	}
	release()
	left, _ := db.Runs(context.Background(), 0, 0)
	if len(left) != 2 || left[0].ID != 5 || left[1].ID != 4 {
		t.Errorf("runs left %+v, want 5 (running) and 4", left)
	}
}

// TestReportLatestIsFinished: report --run latest takes the latest
// finished run, not a newer interrupted one; that one's report, asked for
// by id, says it is incomplete.
func TestReportLatestIsFinished(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 400, Tenants: 2, Blocked: 0.1, Seed: 37})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitResultsOf(t, db, 2, 50)
		cancel()
	}()
	if _, code := runProbeCmd(t, ctx, probeEnv(fake, u, nil), "--rate", "100", "--concurrency", "2"); code != 1 {
		t.Fatalf("the second probe was not interrupted (exit %d)", code)
	}
	out := t.TempDir()
	stdout, stderr, code := runCmd(t, "report", "--db", u, "--out", out)
	if code != 0 || !strings.Contains(stdout, "-run1.html") {
		t.Fatalf("report latest: exit %d, stdout %q, stderr %q; want run 1", code, stdout, stderr)
	}
	stdout, _, code = runCmd(t, "report", "--db", u, "--out", out, "--run", "2")
	if code != 0 {
		t.Fatalf("report --run 2: exit %d", code)
	}
	html, _ := os.ReadFile(strings.Fields(stdout)[1])
	run2, _ := db.Run(context.Background(), 2)
	note := fmt.Sprintf("Incomplete: %d of 400 probed", run2.Total())
	title := string(html[strings.Index(string(html), "<title>"):strings.Index(string(html), "</title>")])
	if !strings.Contains(title, note) {
		t.Errorf("title %q lacks %q", title, note)
	}
	// With only the unfinished run, latest says what to do.
	if _, err := db.DeleteRuns(context.Background(), []int64{1}); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, "report", "--db", u, "--out", out); code != 1 || !strings.Contains(stderr, "no finished run yet: run 2 is interrupted") {
		t.Errorf("latest without a finished run: exit %d, %q", code, stderr)
	}
}

// waitResultsOf waits until run runID has at least n results.
func waitResultsOf(t *testing.T, db *store.DB, runID int64, n int) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if c, err := db.CountResults(context.Background(), runID); err == nil && c >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("run %d never reached %d results", runID, n)
}

// TestMissingStoreCreatesNothing: every command that works on an existing
// store, given a SQLite path that does not exist, fails with one line
// naming the path (exit 2) and creates nothing.
func TestMissingStoreCreatesNothing(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	dir := t.TempDir()
	u := "sqlite:" + filepath.Join(dir, "typo.db")
	env := fakeEnv(fake, u)
	env["BLOCKREPORT_OUT"] = filepath.Join(dir, "out")
	for _, args := range [][]string{
		{"runs"}, {"runs", "--json"}, {"report"}, {"runs", "delete", "1"}, {"prune", "--keep", "3"}, {"probe"}, {"run"},
	} {
		_, stderr, code := runEnvCmd(t, mapEnv(env), args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], filepath.Join(dir, "typo.db")+": no such file") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming the path", args, code, stderr)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "out" { // run checks --out before the store
			t.Errorf("created %s", e.Name())
		}
	}
}

// TestStoreCreated0600: the store import creates, with its WAL files and
// the lock file, is readable by its owner only.
func TestStoreCreated0600(t *testing.T) {
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 5, Seed: 38})})
	dir := t.TempDir()
	refs := filepath.Join(dir, "refs.jsonl")
	f, err := os.Create(refs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.WriteReferences(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	u := "sqlite:" + filepath.Join(dir, "b.db")
	if _, stderr, code := runCmd(t, "import", "--db", u, refs); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil)); code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr)
	}
	for _, name := range []string{"b.db", "b.db.lock"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

// TestCtrlCTwice: the first SIGINT says what the run waits for and how to
// stop at once; the second cuts the stalled probes off well before the
// grace period ends; the run is interrupted and resumes to one result per
// reference.
func TestCtrlCTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 1000, Tenants: 2, Blocked: 0.06, Seed: 39})
	fake := startFake(t, faketeams.Config{
		Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits(), Seed: 39,
		Faults: faketeams.Faults{Stalls: 0.05}, StallFor: 2 * time.Minute,
	})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	cmd, out := startHelper(t, "probe", helperEnv(fake, u, map[string]string{
		"BLOCKREPORT_RATE": "150", "BLOCKREPORT_CONCURRENCY": "64", "BLOCKREPORT_TIMEOUT": "5m", "BLOCKREPORT_GRACE": "2m",
	}))
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	run := waitResults(t, db, 150)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "stopping: ") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	line := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "stopping: ") {
			line = l
		}
	}
	if !strings.HasPrefix(line, "stopping: waiting up to 2m0s for ") || !strings.HasSuffix(line, " probes in flight (press Ctrl-C again to stop now)") {
		t.Fatalf("after the first SIGINT: %q; output:\n%s", line, out.String())
	}
	select {
	case <-exited:
		t.Fatalf("the process exited within the grace period with stalled probes in flight:\n%s", out.String())
	case <-time.After(time.Second):
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("still running a minute after the second SIGINT")
	}
	took := time.Since(start)
	code := cmd.ProcessState.ExitCode()
	t.Logf("exited %d, %s after the second SIGINT", code, took.Round(time.Millisecond))
	if code != 1 || took > 20*time.Second {
		t.Errorf("second SIGINT: exit %d after %s; want 1 well within the 2m grace", code, took)
	}
	got, err := db.Run(context.Background(), run.ID)
	if err != nil || got.State != blockreport.RunInterrupted {
		t.Fatalf("run %+v, %v; want interrupted", got, err)
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil),
		"--rate", "1000", "--timeout", "200ms", "--attempts", "10"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	checkOneResultEach(t, db, run.ID, fake)
}
