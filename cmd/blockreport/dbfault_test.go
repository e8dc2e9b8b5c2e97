package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/store"
)

// probeAsync runs the probe command in the background; the returned
// channel yields its stderr and exit code.
func probeAsync(t *testing.T, getenv func(string) string, args ...string) <-chan probeExit {
	t.Helper()
	ch := make(chan probeExit, 1)
	go func() {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"probe"}, args...), getenv, &out, &errb)
		code := exitCode(err, &errb)
		ch <- probeExit{errb.String(), code}
	}()
	return ch
}

type probeExit struct {
	stderr string
	code   int
}

// waitResults waits until run of db has at least n results (a liveness
// bound of a minute, not a timing assertion).
func waitResults(t *testing.T, db *store.DB, n int) blockreport.Run {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if run, err := db.LatestRun(context.Background()); err == nil {
			if c, err := db.CountResults(context.Background(), run.ID); err == nil && c >= n {
				return run
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the run never reached %d results", n)
	return blockreport.Run{}
}

// TestProbeWaitsOutPostgresOutage stops PostgreSQL for 20 s in the middle
// of a probe run: the run waits (the writer and the listing retry for up to
// --store-wait) and carries on when the server is back; every reference
// ends with exactly one result and none was probed twice.
func TestProbeWaitsOutPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops PostgreSQL for 20 s")
	}
	cluster := pgtest.NewCluster(t)
	u := cluster.NewDatabase(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 1200, Tenants: 2, Blocked: 0.06, Uninstalled: 0.04, Seed: 21})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 2 * time.Millisecond, Limits: faketeams.NoLimits()})
	db := openSeeded(t, u, fake.References())

	done := probeAsync(t, probeEnv(fake, u, nil), "--rate", "100", "--concurrency", "16", "--store-wait", "60s")
	run := waitResults(t, db, 150)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := len(pop) - fake.Stats().Total(faketeams.RouteSendActivity)
	time.Sleep(20 * time.Second)
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	if stopped <= 0 {
		t.Fatal("the run had finished before PostgreSQL stopped")
	}
	res := <-done
	if res.code != 0 {
		t.Fatalf("exit %d after the outage: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "store failing, retrying") {
		t.Errorf("stderr does not tell of the outage: %q", res.stderr)
	}
	got, err := db.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != blockreport.RunFinished || got.Total() != len(pop) {
		t.Errorf("run %d %s with %d results, want finished with %d", got.ID, got.State, got.Total(), len(pop))
	}
	checkOneResultEach(t, db, run.ID, fake)
	if n := fake.Stats().Total(faketeams.RouteSendActivity); n != len(pop) {
		t.Errorf("%d requests for %d references: a reference was probed twice or not at all", n, len(pop))
	}
}

// TestProbeStopsCleanlyWhenPostgresStaysDown: with PostgreSQL down longer
// than --store-wait the probe stops with a clear error and exit 1, the
// results saved before the outage are kept, and a later probe resumes the
// same run to one result per reference.
func TestProbeStopsCleanlyWhenPostgresStaysDown(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	u := cluster.NewDatabase(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 1000, Tenants: 2, Blocked: 0.06, Uninstalled: 0.04, Seed: 22})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 2 * time.Millisecond, Limits: faketeams.NoLimits()})
	db := openSeeded(t, u, fake.References())
	env := probeEnv(fake, u, map[string]string{"BLOCKREPORT_LOG_LEVEL": "info"})

	done := probeAsync(t, env, "--rate", "100", "--concurrency", "16", "--store-wait", "2s")
	run := waitResults(t, db, 150)
	before, err := db.CountResults(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	var res probeExit
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute): // liveness bound
		t.Fatal("the probe did not stop while PostgreSQL stayed down")
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	if res.code != 1 {
		t.Fatalf("exit %d, want 1: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{fmt.Sprintf("run %d interrupted", run.ID), "again (blockreport probe or run) to resume it", "store kept failing"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q does not say %q", last, want)
		}
	}
	after, err := db.CountResults(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after < before || after >= len(pop) {
		t.Fatalf("%d results after the stop (%d before it, %d references)", after, before, len(pop))
	}
	// The state could not be written while the server was down: the run is
	// still running (or interrupted), which the next probe resumes.
	got, err := db.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != blockreport.RunRunning && got.State != blockreport.RunInterrupted {
		t.Fatalf("run state %s, want running or interrupted", got.State)
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	again, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != run.ID || again.State != blockreport.RunFinished || again.Total() != len(pop) {
		t.Errorf("after resume: run %d %s with %d results, want run %d finished with %d", again.ID, again.State, again.Total(), run.ID, len(pop))
	}
	checkOneResultEach(t, db, run.ID, fake)
}

// twoRuns seeds an SQLite store with the results of two probe runs of a
// small population ("last month" and "this month").
func twoRuns(t *testing.T, users int) (dbURL string, runs []blockreport.Run) {
	t.Helper()
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: users, Tenants: 3, Blocked: 0.1, Uninstalled: 0.05, Seed: 31})
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	for range 2 {
		if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
			t.Fatalf("probe: exit %d: %s", code, stderr)
		}
		r, err := db.LatestRun(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	return u, runs
}

// snapshot maps each file name in dir to its contents.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestReportOnFullDisk writes reports into a 2 MiB tmpfs whose free space
// ends half way through this month's workbook: the command fails with a
// clear "no space left" error naming the file, no report exists under its
// final name, no temporary file is left, and last month's reports are
// byte for byte untouched. With space freed, the same command succeeds.
// Needs mount(2) (root); elsewhere TestWriteFileAtomicENOSPC covers the
// same path with an injected error.
func TestReportOnFullDisk(t *testing.T) {
	dbURL, runs := twoRuns(t, 300)
	out := t.TempDir()
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); TestWriteFileAtomicENOSPC covers the injected case", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(out, syscall.MNT_DETACH) })
	env := func(k string) string {
		return map[string]string{"BLOCKREPORT_DB": dbURL, "BLOCKREPORT_LOG_LEVEL": "warn", "GOMEMLIMIT": "off"}[k]
	}
	writeReport := func(id int64) (string, int) {
		var o, e bytes.Buffer
		err := run(context.Background(), []string{"report", "--run", fmt.Sprint(id), "--out", out}, env, &o, &e)
		code := exitCode(err, &e)
		return e.String(), code
	}
	if stderr, code := writeReport(runs[0].ID); code != 0 {
		t.Fatalf("last month's report: exit %d: %s", code, stderr)
	}
	prev := snapshot(t, out)
	smallest := 1 << 30
	for _, b := range prev {
		smallest = min(smallest, len(b))
	}
	// Fill the file system, then free less than the smallest report.
	filler := filepath.Join(out, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	fi, _ := f.Stat()
	if err := f.Truncate(fi.Size() - int64(smallest/4)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	stderr, code := writeReport(runs[1].ID)
	if code != 1 {
		t.Fatalf("exit %d on a full disk, want 1: %s", code, stderr)
	}
	last := strings.TrimSpace(stderr)
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	t.Logf("full disk: %s", last)
	want := reportFileBase(runs[1], false)
	if !strings.Contains(last, "no space left on device") || !strings.Contains(last, want) {
		t.Errorf("error %q does not say the disk is full and which report", last)
	}
	now := snapshot(t, out)
	for name := range now {
		if strings.HasPrefix(name, want) || strings.Contains(name, ".tmp-") {
			t.Errorf("%s left in --out after the failure", name)
		}
	}
	for name, b := range prev {
		if !bytes.Equal(now[name], b) {
			t.Errorf("last month's %s changed", name)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if stderr, code := writeReport(runs[1].ID); code != 0 {
		t.Fatalf("with space again: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, want+".xlsx")); err != nil {
		t.Error(err)
	}
}

// TestWriteFileAtomicENOSPC injects "no space left on device" part way
// through a write at the writeFileAtomic seam: the previous file under the
// final name is untouched, no temporary file is left, and the error names
// the file and the cause.
func TestWriteFileAtomicENOSPC(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blockreport-2026-10-01-run1.xlsx")
	if err := os.WriteFile(path, []byte("last month"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{0, 100, 3 << 20} { // before, inside and past the 1 MiB buffer
		err := writeFileAtomic(path, func(w io.Writer) error {
			if _, err := w.Write(bytes.Repeat([]byte("x"), at)); err != nil {
				return err
			}
			return &fs.PathError{Op: "write", Path: "tmp", Err: syscall.ENOSPC}
		})
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
			t.Errorf("after %d bytes: err = %v, want ENOSPC naming %s", at, err, path)
		}
		if b, _ := os.ReadFile(path); string(b) != "last month" {
			t.Errorf("after %d bytes: the previous file changed to %d bytes", at, len(b))
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("after %d bytes: %d files in the directory, want only the previous report", at, len(ents))
		}
	}
}
