package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
)

// runRunCmd runs "blockreport run args..." in-process with getenv, under a
// generous timeout that only guards against a hang.
func runRunCmd(t *testing.T, getenv func(string) string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, append([]string{"run"}, args...), getenv, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// mapEnv is a getenv over m only: the test's own environment never leaks in.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// reportFiles lists the .xlsx and .html files under dir.
func reportFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".xlsx") || strings.HasSuffix(path, ".html")) {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// TestRunFailsFast: each configuration mistake fails before anything is
// probed, with exactly one line on stderr naming the fix, exit 1 or 2, and
// no report file.
func TestRunFailsFast(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 20, Tenants: 2, Seed: 1})
	fake := startFake(t, faketeams.Config{Population: pop})
	dir := t.TempDir()
	seeded := "sqlite:" + filepath.Join(dir, "seeded.db")
	openSeeded(t, seeded, fake.References())
	blocker := filepath.Join(dir, "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDB := "sqlite:" + filepath.Join(dir, "empty.db")
	migrated(t, emptyDB)
	good := fakeEnv(fake, seeded)
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantText string
	}{
		{"no credentials", with(map[string]string{"MICROSOFT_APP_ID": "", "MICROSOFT_APP_PASSWORD": ""}), nil, 2, "set --app-id or MICROSOFT_APP_ID"},
		{"no password", with(map[string]string{"MICROSOFT_APP_PASSWORD": ""}), nil, 2, "set --app-password-file or MICROSOFT_APP_PASSWORD"},
		{"wrong secret", with(map[string]string{"MICROSOFT_APP_PASSWORD": "Wrong-Secret-0123456789"}), nil, 1, "wrong or expired secret"},
		{"malformed db URL", good, []string{"--db", "postgres://%zz"}, 2, "--db"},
		{"unknown db scheme", good, []string{"--db", "mysql://x"}, 2, "want postgres://..., postgresql://... or sqlite:PATH"},
		{"unreachable database", good, []string{"--db", "postgres://127.0.0.1:1/x"}, 1, "check --db or BLOCKREPORT_DB"},
		{"out under a file", good, []string{"--out", filepath.Join(blocker, "reports")}, 1, "set --out or BLOCKREPORT_OUT to a writable directory"},
		{"out is a file", good, []string{"--out", blocker}, 1, "set --out or BLOCKREPORT_OUT to a writable directory"},
		{"no out", good, []string{"--out", ""}, 2, "--out DIR is required"},
		{"empty store", good, []string{"--db", emptyDB}, 1, "blockreport import"},
		{"no such store", good, []string{"--db", "sqlite:" + filepath.Join(dir, "typo.db")}, 2, "typo.db: no such file"},
		{"bad max-unchecked", good, []string{"--max-unchecked", "120"}, 2, "--max-unchecked"},
		{"bad env value", with(map[string]string{"BLOCKREPORT_MAX_UNCHECKED": "lots"}), nil, 2, "BLOCKREPORT_MAX_UNCHECKED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "reports")
			args := append([]string{"--out", out}, tt.args...)
			stdout, stderr, code := runRunCmd(t, mapEnv(tt.env), args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "blockreport: ") || !strings.Contains(lines[0], tt.wantText) {
				t.Errorf("stderr %q: want one line naming %q", stderr, tt.wantText)
			}
			if strings.Contains(stderr, faketeams.DefaultAppSecret) || strings.Contains(stderr, "Wrong-Secret") {
				t.Errorf("a secret reached stderr: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if files := reportFiles(t, filepath.Dir(out)); len(files) > 0 {
				t.Errorf("report files written: %v", files)
			}
		})
	}
}

// TestRunExitUnchecked: a run where more than --max-unchecked percent of
// the conversations fail still writes its reports, then exits 3 with a
// line saying why; a higher threshold lets the next run exit 0.
func TestRunExitUnchecked(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 100, Tenants: 2, Blocked: 0.05, Seed: 7})
	failing := 0
	for i := range pop {
		if pop[i].State == faketeams.StateActive && failing < 8 {
			pop[i].State = faketeams.StateScripted
			pop[i].Script = []faketeams.Step{{Status: 500, Code: "InternalServerError"}}
			failing++
		}
	}
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	out := t.TempDir()
	env := probeEnv(fake, u, map[string]string{"BLOCKREPORT_OUT": out})

	stdout, stderr, code := runRunCmd(t, env, "--rate", "1000")
	if code != exitUnchecked {
		t.Fatalf("exit %d, want 3; stderr %q", code, stderr)
	}
	paths := strings.Fields(stdout)
	if len(paths) != 2 {
		t.Fatalf("stdout %q, want the two report paths", stdout)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"run 1 finished", "8 of 100 conversations (8.0 %) could not be checked", "failed 8", "--max-unchecked 5 %"} {
		if !strings.Contains(last, want) {
			t.Errorf("last stderr line %q lacks %q", last, want)
		}
	}
	run1, err := db.Run(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if run1.State != blockreport.RunFinished || run1.Totals[blockreport.StatusFailed] != 8 {
		t.Errorf("run 1: %+v, want finished with 8 failed", run1)
	}

	// At the threshold exactly, and above it, the run is fine.
	for i, limit := range []string{"8", "50"} {
		stdout, stderr, code = runRunCmd(t, env, "--rate", "1000", "--max-unchecked", limit)
		if code != 0 || len(strings.Fields(stdout)) != 2 {
			t.Errorf("--max-unchecked %s: exit %d, stdout %q, stderr %q; want 0 and two paths", limit, code, stdout, stderr)
		}
		if want := "run" + string(rune('2'+i)); !strings.Contains(stdout, want) {
			t.Errorf("--max-unchecked %s: stdout %q, want a new run's reports (%s)", limit, stdout, want)
		}
	}
}

func TestCheckUnchecked(t *testing.T) {
	tests := []struct {
		totals map[blockreport.Status]int
		max    float64
		want3  bool
	}{
		{nil, 5, false},
		{map[blockreport.Status]int{"reachable": 95, "failed": 5}, 5, false},
		{map[blockreport.Status]int{"reachable": 94, "failed": 3, "throttled": 2, "forbidden": 1}, 5, true},
		{map[blockreport.Status]int{"reachable": 90, "blocked": 10}, 0, false},
		{map[blockreport.Status]int{"reachable": 999, "throttled": 1}, 0, true},
		{map[blockreport.Status]int{"failed": 1}, 100, false},
	}
	for _, tt := range tests {
		err := checkUnchecked(blockreport.Run{ID: 4, Totals: tt.totals}, tt.max)
		var buf bytes.Buffer
		if got := exitCode(err, &buf) == exitUnchecked; got != tt.want3 {
			t.Errorf("%v with max %g: exit 3 = %v, want %v (%v)", tt.totals, tt.max, got, tt.want3, err)
		}
	}
}

// TestEveryFlagNamesItsEnv: the help of every command lists each flag with
// the environment variable that sets it.
func TestEveryFlagNamesItsEnv(t *testing.T) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	flagLine := regexp.MustCompile(`^  -(\S+)`)
	for _, name := range names {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{name, "-h"}, mapEnv(nil), &out, &errb)
		if code := exitCode(err, &errb); code != 0 {
			t.Errorf("%s -h: exit %d: %s", name, code, errb.String())
			continue
		}
		help := errb.String()
		if name == "version" {
			continue // no flags
		}
		if !strings.Contains(help, "Usage: blockreport "+name) {
			t.Errorf("%s -h: no usage line in %q", name, help)
		}
		// Each flag is a "  -name type" line followed by its usage lines.
		var flags []string
		blocks := map[string]string{}
		cur := ""
		for _, line := range strings.Split(help, "\n") {
			if m := flagLine.FindStringSubmatch(line); m != nil {
				cur = m[1]
				flags = append(flags, cur)
				continue
			}
			if cur != "" {
				blocks[cur] += line
			}
		}
		if len(flags) == 0 {
			t.Errorf("%s -h lists no flags: %q", name, help)
		}
		for _, f := range flags {
			if !regexp.MustCompile(`\(env (BLOCKREPORT|MICROSOFT)_[A-Z_]+`).MatchString(blocks[f]) {
				t.Errorf("%s --%s: usage %q names no BLOCKREPORT_* or MICROSOFT_* variable", name, f, blocks[f])
			}
		}
	}
	var errb bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, mapEnv(nil), &bytes.Buffer{}, &errb); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"run", "runs", "demo", "version"} {
		if !strings.Contains(errb.String(), "  "+name+" ") {
			t.Errorf("blockreport -h does not list %s: %q", name, errb.String())
		}
	}
}

func TestRunFlagsFromEnv(t *testing.T) {
	var errb bytes.Buffer
	cfg, err := parseRunFlags(nil, mapEnv(map[string]string{
		"BLOCKREPORT_OUT": "/reports", "BLOCKREPORT_MAX_UNCHECKED": "2.5", "BLOCKREPORT_REDACT": "true",
		"MICROSOFT_APP_ID": "app", "MICROSOFT_APP_PASSWORD": "pw", "BLOCKREPORT_RATE": "10",
		"BLOCKREPORT_DB": "sqlite:/x.db",
	}), &errb)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.report.Out != "/reports" || !cfg.report.Redact || cfg.MaxUnchecked != 2.5 || cfg.probe.Rate != 10 ||
		cfg.probe.cred.AppID != "app" || cfg.report.common.DB != "sqlite:/x.db" {
		t.Errorf("config from the environment: %+v", cfg)
	}
	// A flag beats its variable.
	cfg, err = parseRunFlags([]string{"--max-unchecked", "0", "--out", "o"}, mapEnv(map[string]string{
		"BLOCKREPORT_MAX_UNCHECKED": "2.5", "MICROSOFT_APP_ID": "app", "MICROSOFT_APP_PASSWORD": "pw",
	}), &errb)
	if err != nil || cfg.MaxUnchecked != 0 || cfg.report.Out != "o" {
		t.Errorf("flags over env: %+v, %v", cfg, err)
	}
}
