package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/faketeams"
)

// readMetrics reads a textfile and returns its samples by name and labels.
func readMetrics(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("bad line %q in %s", line, path)
		}
		m[f[0]] = f[1]
	}
	if !strings.Contains(string(b), "# TYPE blockreport_conversations gauge\n") {
		t.Errorf("no TYPE line:\n%s", b)
	}
	return m
}

func TestMetricsFileReport(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	seed(t, url)
	dir := t.TempDir()
	prom := filepath.Join(dir, "blockreport.prom")
	if err := os.WriteFile(prom, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, "report", "--db", url, "--out", filepath.Join(dir, "out"), "--metrics-file", prom); code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	m := readMetrics(t, prom)
	for k, want := range map[string]string{
		`blockreport_conversations{status="reachable"}`:   "3",
		`blockreport_conversations{status="blocked"}`:     "1",
		`blockreport_conversations{status="uninstalled"}`: "1",
		`blockreport_conversations{status="failed"}`:      "0",
		"blockreport_run_id":                              "2",
		"blockreport_run_duration_seconds":                "600",
		"blockreport_run_finish_timestamp_seconds":        fmt.Sprint(run2Start.Unix() + 600),
		"blockreport_unchecked_ratio":                     "0",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if fi, _ := os.Stat(prom); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 for the node_exporter user", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestMetricsFileUnwritable(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	seed(t, url)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing", "x.prom"), "cannot write into"},
		{dir, "is a directory"},
	} {
		_, stderr, code := runCmd(t, "report", "--db", url, "--out", out, "--metrics-file", tc.path)
		if code != 2 || !strings.Contains(stderr, "--metrics-file") || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--metrics-file %s: exit %d, stderr %q; want exit 2 and one line naming the flag and %q", tc.path, code, stderr, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("reports were written despite the bad metrics path: %v", err)
	}
}

func TestMetricsFileProbeAndRun(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 60, Tenants: 2, Blocked: 0.1, Uninstalled: 0.05, Seed: 9})
	fake := startFake(t, faketeams.Config{Population: pop, Seed: 9})
	u := "sqlite:" + filepath.Join(t.TempDir(), "blockreport.db")
	db := openSeeded(t, u, fake.References())
	dir := t.TempDir()
	prom := filepath.Join(dir, "probe.prom")
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--metrics-file", prom); code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr)
	}
	run, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := readMetrics(t, prom)
	if m["blockreport_run_id"] != fmt.Sprint(run.ID) || m[`blockreport_conversations{status="blocked"}`] != fmt.Sprint(run.Totals["blocked"]) ||
		m[`blockreport_run_info{state="finished",mode="typing"}`] != "1" {
		t.Errorf("probe metrics %v for run %+v", m, run)
	}

	prom = filepath.Join(dir, "run.prom")
	_, stderr, code := runEnvCmd(t, probeEnv(fake, u, nil), "run", "--out", filepath.Join(dir, "out"), "--metrics-file", prom)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if m := readMetrics(t, prom); m["blockreport_run_id"] != fmt.Sprint(run.ID+1) || m[`blockreport_conversations{status="reachable"}`] == "0" {
		t.Errorf("run metrics %v", m)
	}
	// An unwritable path fails run before anything is probed.
	_, stderr, code = runEnvCmd(t, probeEnv(fake, u, nil), "run", "--out", filepath.Join(dir, "out"), "--metrics-file", filepath.Join(dir, "no", "x.prom"))
	if code != 2 || !strings.Contains(stderr, "run: --metrics-file") {
		t.Errorf("run with a bad metrics path: exit %d, %q", code, stderr)
	}
	if latest, _ := db.LatestRun(context.Background()); latest.ID != run.ID+1 {
		t.Errorf("a run was recorded despite the bad metrics path: %d", latest.ID)
	}
}
