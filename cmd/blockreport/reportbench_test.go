package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

// benchPopulation is the population the report benchmark stores: faketeams'
// generator, so ids are as long as Teams' own (29:1 + 60 characters for a
// user, a:1 + 60 for a 1:1 conversation, 19:…@thread.tacv2 for a channel,
// GUIDs for tenants and AAD objects), names with accents and emoji, and
// the state mix of a large bot.
func benchPopulation(n, tenants int) []faketeams.Conversation {
	return faketeams.Generate(faketeams.GenerateOptions{
		Users: n, Tenants: tenants, Seed: 18,
		Blocked: 0.06, Uninstalled: 0.05, AdminDisabled: 0.01, Deleted: 0.03, Transient: 0.02, TeamShare: 0.10,
	})
}

// teamsServiceURL is the service URL of Teams' Americas region, as long as
// the ones real references carry.
const teamsServiceURL = "https://smba.trafficmanager.net/amer/"

// probeAnswer is what "blockreport probe" records for a conversation in a
// faketeams state (TestReportBenchStoreIsTheCommandsStore checks it
// against the probe command itself).
func probeAnswer(c faketeams.Conversation) (blockreport.Status, int, string, string, int) {
	switch c.State {
	case faketeams.StateBlocked:
		if c.BlockShape == faketeams.BlockTeamsCRLF || c.BlockShape == faketeams.BlockTeamsLF {
			return blockreport.StatusBlocked, 403, "MessageWritesBlocked", "Thread is blocked from message writes.", 1
		}
		return blockreport.StatusBlocked, 403, "ConversationBlockedByUser", "User blocked the conversation with the bot.", 1
	case faketeams.StateUninstalled:
		return blockreport.StatusUninstalled, 403, "BotNotInConversationRoster", "The bot is not part of the conversation roster.", 1
	case faketeams.StateAdminDisabled:
		return blockreport.StatusAdminDisabled, 403, "BotDisabledByAdmin", "The tenant admin disabled this bot", 1
	case faketeams.StateDeleted:
		return blockreport.StatusNotFound, 404, "ConversationNotFound", "Conversation not found.", 1
	case faketeams.StateScripted: // one transient failure, then created
		return blockreport.StatusReachable, 201, "HTTP 201", "", 2
	}
	return blockreport.StatusReachable, 201, "HTTP 201", "", 1
}

// earlierState is the state a conversation had in the runs before the
// last one: every 20th conversation changed since (active ones were
// blocked, the others were active), so sheet "Changed" and the change
// counts have rows, as a monthly run's would.
func earlierState(i int, c faketeams.Conversation) faketeams.Conversation {
	if i%20 != 0 {
		return c
	}
	if c.State == faketeams.StateActive {
		c.State, c.BlockShape = faketeams.StateBlocked, faketeams.BlockEnvelope
	} else {
		c.State = faketeams.StateActive
	}
	return c
}

// seedReportStore fills the store at dbURL as users do, except for the
// probing: "blockreport import" of faketeams' exported references
// (serviceURL, when not empty, replaces the fake's own), then `runs`
// finished runs with one result per reference, what "blockreport probe"
// records for its state, saved through the store's own API: the rows are
// the command's rows, only faster to make than probing a million
// conversations.
func seedReportStore(tb testing.TB, dbURL string, pop []faketeams.Conversation, runs int, serviceURL string) {
	tb.Helper()
	ctx := context.Background()
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	if err != nil {
		tb.Fatal(err)
	}
	defer fake.Close()
	file := filepath.Join(tb.TempDir(), "refs.jsonl")
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var write io.Writer = bw
	if serviceURL != "" {
		write = &replaceWriter{w: bw, old: []byte(`"serviceUrl":"` + fake.ServiceURL("amer") + `"`), new: []byte(`"serviceUrl":"` + serviceURL + `"`)}
	}
	if err := fake.WriteReferences(write); err != nil {
		tb.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	var stderr strings.Builder
	if err := run(ctx, []string{"import", "--db", dbURL, file}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		tb.Fatalf("import: %v: %s", err, stderr.String())
	}
	os.Remove(file)
	byKey := make(map[string]int, len(pop))
	for i, c := range pop {
		byKey[c.TenantID+"|"+c.ConversationID] = i
	}
	db, err := store.OpenExisting(ctx, dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)
	for k := range runs {
		at := start.AddDate(0, 0, 30*(k-runs+1)+30)
		run, err := db.CreateRun(ctx, "typing", nil, at)
		if err != nil {
			tb.Fatal(err)
		}
		tenants, err := db.PendingTenants(ctx, run.ID)
		if err != nil {
			tb.Fatal(err)
		}
		var results []blockreport.Result
		for _, t := range tenants {
			err := db.Pending(ctx, run.ID, t, func(ref blockreport.Reference) error {
				i, ok := byKey[ref.TenantID+"|"+ref.ConversationID]
				if !ok {
					return fmt.Errorf("reference %s not in the population", ref.Key())
				}
				c := pop[i]
				if k < runs-1 {
					c = earlierState(i, c)
				}
				st, code, reason, detail, attempts := probeAnswer(c)
				results = append(results, blockreport.Result{RunID: run.ID, ReferenceID: ref.ID, Status: st, HTTPStatus: code,
					Reason: reason, Detail: detail, Attempts: attempts, Latency: 3 * time.Millisecond,
					ProbedAt: at.Add(time.Duration(len(results)) * time.Millisecond)})
				return nil
			})
			if err != nil {
				tb.Fatal(err)
			}
		}
		for i := 0; i < len(results); i += 5000 {
			if err := db.SaveResults(ctx, results[i:min(i+5000, len(results))]); err != nil {
				tb.Fatal(err)
			}
		}
		if ok, err := db.FinishRun(ctx, run.ID, at.Add(time.Hour)); err != nil || !ok {
			tb.Fatalf("finish run %d: %v, %v", run.ID, ok, err)
		}
	}
}

// BenchmarkReportCommand runs the blockreport binary's report command, as
// users run it, on stores of 100,000 and 1,000,000 references (50 tenants,
// Teams' id lengths, two runs) on SQLite and PostgreSQL, and reports its
// wall time, CPU time and peak RSS (by /usr/bin/time, "Maximum resident
// set size" of time -v) and the sizes of the workbook and HTML page.
// With BLOCKREPORT_BENCH_SOFFICE=1 it also times LibreOffice loading the
// workbook (soffice --headless --convert-to csv, 600 s timeout).
// BLOCKREPORT_BENCH_DIR keeps the seeded SQLite stores there for reruns;
// the 1,000,000-reference stores are made only with BLOCKREPORT_BENCH_1M=1
// (make bench-report sets both flags).
//
// Run: make bench-report (or -bench 'ReportCommand/sqlite/100k').
func BenchmarkReportCommand(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "blockreport")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, n := range []int{100_000, 1_000_000} {
			if n > 100_000 && os.Getenv("BLOCKREPORT_BENCH_1M") != "1" {
				continue // an hour of seeding on a shared machine: make bench-report
			}
			b.Run(fmt.Sprintf("%s/%dk", backend, n/1000), func(b *testing.B) {
				dbURL := benchStore(b, backend, n)
				for b.Loop() {
					benchReport(b, bin, dbURL)
				}
			})
		}
	}
}

// benchStore returns the URL of a seeded store of n references.
func benchStore(b *testing.B, backend string, n int) string {
	b.Helper()
	if backend == "postgres" {
		u := pgtest.URL(b)
		seedReportStore(b, u, benchPopulation(n, 50), 2, teamsServiceURL)
		return u
	}
	dir := os.Getenv("BLOCKREPORT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("report-bench-%d.db", n))
	if _, err := os.Stat(path); err != nil {
		seedReportStore(b, "sqlite:"+path+".tmp", benchPopulation(n, 50), 2, teamsServiceURL)
		if err := os.Rename(path+".tmp", path); err != nil {
			b.Fatal(err)
		}
	}
	return "sqlite:" + path
}

func benchReport(b *testing.B, bin, dbURL string) {
	b.Helper()
	out := b.TempDir()
	// Under /usr/bin/time, not the benchmark's own rusage of the child: a
	// child's ru_maxrss starts from the RSS of the process that forked it,
	// and this one holds the seeded population.
	timing := filepath.Join(b.TempDir(), "time")
	cmd := exec.Command("/usr/bin/time", "-o", timing, "-f", "%M %U %S", bin, "report", "--db", dbURL, "--out", out)
	cmd.Env = append(os.Environ(), "BLOCKREPORT_LOG_LEVEL=warn")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	stdout, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("report: %v\n%s", err, stderr.String())
	}
	b.ReportMetric(wall.Seconds(), "wall-s")
	t, err := os.ReadFile(timing)
	if err != nil {
		b.Fatal(err)
	}
	var rssKB, user, sys float64
	if _, err := fmt.Sscan(string(t), &rssKB, &user, &sys); err != nil {
		b.Fatalf("read /usr/bin/time output %q: %v", t, err)
	}
	b.ReportMetric(rssKB/1024, "peak-rss-MB")
	b.ReportMetric(user+sys, "cpu-s")
	var xlsx string
	for _, p := range strings.Fields(string(stdout)) {
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		unit := strings.TrimPrefix(filepath.Ext(p), ".") + "-MB"
		b.ReportMetric(float64(st.Size())/1e6, unit)
		if strings.HasSuffix(p, ".xlsx") {
			xlsx = p
		}
	}
	if os.Getenv("BLOCKREPORT_BENCH_SOFFICE") == "1" && xlsx != "" {
		start := time.Now()
		cmd := exec.Command("timeout", "600", "soffice", "-env:UserInstallation=file://"+b.TempDir(),
			"--headless", "--convert-to", "csv", "--outdir", b.TempDir(), xlsx)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Logf("soffice: %v\n%s", err, out)
			b.ReportMetric(-1, "soffice-s")
			return
		}
		b.ReportMetric(time.Since(start).Seconds(), "soffice-s")
	}
}

// TestReportBenchStoreIsTheCommandsStore: the store the report benchmark
// seeds holds what "blockreport import" of faketeams' exported references
// and "blockreport probe" against faketeams store for the same
// population: every list-sheet column of every row is the same (ids of
// Teams' lengths, reasons, details, HTTP statuses, scopes), times aside.
// A change to the probe's answers or the export that the seeder does not
// follow fails here, so the benchmark cannot drift from the command.
func TestReportBenchStoreIsTheCommandsStore(t *testing.T) {
	ctx := context.Background()
	pop := benchPopulation(400, 3)
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
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
	cmdURL := "sqlite:" + filepath.Join(dir, "command.db")
	if _, stderr, code := runCommand(t, "import", "--db", cmdURL, refs); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if stderr, code := runProbeCmd(t, ctx, probeEnv(fake, cmdURL, nil), "--rate", "1000"); code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr)
	}
	seedURL := "sqlite:" + filepath.Join(dir, "seeded.db")
	seedReportStore(t, seedURL, pop, 1, fake.ServiceURL("amer"))

	got, want := exportRows(t, seedURL), exportRows(t, cmdURL)
	if len(got) != len(pop) || len(want) != len(pop) {
		t.Fatalf("seeded store has %d rows, command's %d, population %d", len(got), len(want), len(pop))
	}
	statuses := map[blockreport.Status]int{}
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("reference %s: not in the seeded store", key)
			continue
		}
		// The two stores import the same file name from different temp
		// directories: the source must agree on the file and its line.
		g.Source, w.Source = filepath.Base(g.Source), filepath.Base(w.Source)
		if g != w {
			t.Errorf("reference %s:\nseeded  %+v\ncommand %+v", key, g, w)
		}
		statuses[w.Status]++
	}
	// The population covers every answer the seeder imitates.
	for _, s := range []blockreport.Status{blockreport.StatusReachable, blockreport.StatusBlocked, blockreport.StatusUninstalled,
		blockreport.StatusAdminDisabled, blockreport.StatusNotFound} {
		if statuses[s] == 0 {
			t.Errorf("no %s conversation in the population: the comparison does not cover it", s)
		}
	}
	// And its ids are Teams' lengths, not short stand-ins.
	for _, c := range pop {
		if c.ConversationType == blockreport.ConversationPersonal && (len(c.UserID) != 64 || len(c.ConversationID) != 63 || len(c.AADObjectID) != 36 || len(c.TenantID) != 36) {
			t.Fatalf("population ids of lengths %d, %d, %d, %d: want Teams' 64, 63, 36, 36", len(c.UserID), len(c.ConversationID), len(c.AADObjectID), len(c.TenantID))
		}
	}
}

// exportRows maps each reference's key to its row of the latest run as the
// export (which has every list-sheet column) shows it, without the times
// and database ids that differ between two stores.
func exportRows(t *testing.T, dbURL string) map[string]report.ExportRow {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenExisting(ctx, dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run, err := db.LatestFinishedRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]report.ExportRow{}
	err = db.Rows(ctx, run.ID, func(r blockreport.Row) error {
		x := report.NewExportRow(r)
		x.ProbedAt, x.StatusSince, x.ReferenceID, x.RunID = nil, nil, 0, 0
		out[r.Key()] = x
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// replaceWriter replaces old by new in what is written through it; each
// Write must hold whole occurrences (json.Encoder writes a line at a time).
type replaceWriter struct {
	w        io.Writer
	old, new []byte
}

func (r *replaceWriter) Write(p []byte) (int, error) {
	if _, err := r.w.Write(bytes.ReplaceAll(p, r.old, r.new)); err != nil {
		return 0, err
	}
	return len(p), nil
}
