package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

// fakeEnv is the environment of a command against fake and the store at dbURL.
func fakeEnv(fake *faketeams.Server, dbURL string) map[string]string {
	return map[string]string{
		"BLOCKREPORT_DB":              dbURL,
		"MICROSOFT_APP_ID":            faketeams.DefaultAppID,
		"MICROSOFT_APP_PASSWORD":      faketeams.DefaultAppSecret,
		"BLOCKREPORT_TOKEN_URL":       fake.TokenURL("botframework.com"),
		"BLOCKREPORT_ALLOW_HOSTS":     "127.0.0.1",
		"BLOCKREPORT_GCC_SERVICE_URL": fake.ServiceURL("gcc"),
		"BLOCKREPORT_LOG_LEVEL":       "warn",
	}
}

// probeEnv is fakeEnv with extra variables, as a getenv function.
func probeEnv(fake *faketeams.Server, dbURL string, extra map[string]string) func(string) string {
	env := fakeEnv(fake, dbURL)
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

func startFake(t *testing.T, cfg faketeams.Config) *faketeams.Server {
	t.Helper()
	fake, err := faketeams.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake
}

func openSeeded(t *testing.T, url string, refs []blockreport.Reference) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.UpsertReferences(context.Background(), refs, time.Now()); err != nil {
		t.Fatal(err)
	}
	return db
}

func runProbeCmd(t *testing.T, ctx context.Context, getenv func(string) string, args ...string) (stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, append([]string{"probe"}, args...), getenv, &out, &errb)
	code = exitCode(err, &errb)
	return errb.String(), code
}

// wantStatus is the status a faketeams state implies.
func wantStatus(c faketeams.Conversation) blockreport.Status {
	switch c.State {
	case faketeams.StateActive, faketeams.StateScripted:
		return blockreport.StatusReachable
	case faketeams.StateBlocked:
		return blockreport.StatusBlocked
	case faketeams.StateUninstalled, faketeams.StateNotInstalled:
		return blockreport.StatusUninstalled
	case faketeams.StateAdminDisabled:
		return blockreport.StatusAdminDisabled
	case faketeams.StateDeleted:
		return blockreport.StatusNotFound
	}
	return blockreport.StatusForbidden
}

// checkOneResultEach asserts that every conversation of fake has exactly
// one result in run, with the status its state implies.
func checkOneResultEach(t *testing.T, db *store.DB, runID int64, fake *faketeams.Server) {
	t.Helper()
	want := map[string]blockreport.Status{}
	for _, c := range fake.Population() {
		want[c.ConversationID] = wantStatus(c)
	}
	seen := map[string]int{}
	wrong := 0
	err := db.Rows(context.Background(), runID, func(r blockreport.Row) error {
		seen[r.ConversationID]++
		if w := want[r.ConversationID]; r.Status != w {
			if wrong++; wrong <= 5 {
				t.Errorf("%s: %s (%s: %s), want %s", r.ConversationID, r.Status, r.Reason, r.Detail, w)
			}
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
	if wrong > 0 {
		t.Errorf("%d references with the wrong status", wrong)
	}
}

// TestProbeMustShow is the run: 10,000 references in 5 tenants
// with every failure state, each gets exactly the status its state
// implies, one result each, and no tenant goes above its limit.
func TestProbeMustShow(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	for name, url := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			users := n
			if name == "postgres" {
				users = n / 5 // the same paths, kept lean on the shared machine
			}
			pop := faketeams.Generate(faketeams.GenerateOptions{
				Users: users, Tenants: 5, Blocked: 0.06, Uninstalled: 0.04, AdminDisabled: 0.01,
				Deleted: 0.01, Transient: 0.02, TeamShare: 0.1, Seed: 4,
			})
			const limit = 1000
			fake := startFake(t, faketeams.Config{Population: pop, Limits: &faketeams.Limits{TenantPerSecond: limit}, Seed: 4})
			u := url(t)
			db := openSeeded(t, u, fake.References())
			stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil),
				"--rate", "800", "--concurrency", "64")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			run, err := db.LatestRun(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if run.State != blockreport.RunFinished || run.Total() != users {
				t.Errorf("run %+v, want finished with %d results", run, users)
			}
			checkOneResultEach(t, db, run.ID, fake)
			st := fake.Stats()
			for tenant, max := range st.MaxTenantRate {
				if max > limit {
					t.Errorf("tenant %s reached %d requests/s, limit %d", tenant, max, limit)
				}
			}
			if !strings.Contains(stderr, fmt.Sprintf("run %d finished: %d results", run.ID, users)) {
				t.Errorf("no final summary on stderr: %q", stderr)
			}
		})
	}
}

// TestProbeConfigurationFailures: a wrong secret, an unreachable token
// URL and a 401 from the connector each exit 1 with one clear line and
// leave no per-user rows.
func TestProbeConfigurationFailures(t *testing.T) {
	// A token endpoint that issues tokens the fake connector does not know.
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"foreign-token"}`)
	}))
	defer foreign.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/tenant/oauth2/v2.0/token"
	dead.Close()

	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 50, Tenants: 2, Seed: 1})
	fake := startFake(t, faketeams.Config{Population: pop})
	secret := "Wrong-Secret-Value-1234567890"
	tests := []struct {
		name     string
		env      map[string]string
		wantText string
	}{
		{"wrong secret", map[string]string{"MICROSOFT_APP_PASSWORD": secret}, "wrong or expired secret"},
		{"unreachable token URL", map[string]string{"BLOCKREPORT_TOKEN_URL": deadURL}, "unreachable"},
		{"401 from the connector", map[string]string{"BLOCKREPORT_TOKEN_URL": foreign.URL + "/token"}, "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
			db := openSeeded(t, u, fake.References())
			stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, tt.env), "--attempts", "4")
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr %q", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "blockreport: ") || !strings.Contains(last, tt.wantText) {
				t.Errorf("last line %q does not say %q", last, tt.wantText)
			}
			if strings.Contains(stderr, secret) || strings.Contains(stderr, faketeams.DefaultAppSecret) || strings.Contains(stderr, "foreign-token") {
				t.Errorf("secret or token on stderr: %q", stderr)
			}
			runs, err := db.Runs(context.Background(), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if n, _ := db.CountResults(context.Background(), r.ID); n != 0 {
					t.Errorf("run %d has %d results, want none", r.ID, n)
				}
			}
		})
	}
}

func TestProbeRefusesSecondRun(t *testing.T) {
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 5, Seed: 1})})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	release, err := db.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil))
	if code != 1 || !strings.Contains(stderr, "another blockreport run is in progress") {
		t.Errorf("exit %d, stderr %q; want 1 and a clear message", code, stderr)
	}
}

func TestProbeUsage(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	for _, args := range [][]string{
		{"--mode", "poke"}, {"--mode", "message"}, {"--cloud", "mars"}, {"--concurrency", "0"},
		{"--rate", "0"}, {"--attempts", "0"}, {"extra"}, {"--db", "mysql://x"},
		{"--app-password-file", filepath.Join(t.TempDir(), "missing")},
	} {
		if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	env := probeEnv(fake, u, map[string]string{"MICROSOFT_APP_PASSWORD": ""})
	if stderr, code := runProbeCmd(t, context.Background(), env); code != 2 || !strings.Contains(stderr, "app password") {
		t.Errorf("no password: exit %d, %q", code, stderr)
	}
}

// TestProbeInterruptAndResume cancels a run (as SIGINT does), then runs
// again: the run is resumed, not restarted, and ends with one result per
// reference.
func TestProbeInterruptAndResume(t *testing.T) {
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 400, Tenants: 2, Blocked: 0.1, Seed: 9})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits()})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for fake.Stats().Total(faketeams.RouteSendActivity) < 100 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	stderr, code := runProbeCmd(t, ctx, probeEnv(fake, u, nil), "--rate", "100", "--concurrency", "4")
	if code != 1 || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("exit %d, stderr %q; want 1 and interrupted", code, stderr)
	}
	first, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.State != blockreport.RunInterrupted || first.Total() == 0 || first.Total() >= len(pop) {
		t.Fatalf("after interrupt: %+v", first)
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	run, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != first.ID || run.State != blockreport.RunFinished {
		t.Errorf("resume made run %d (%s), want run %d finished", run.ID, run.State, first.ID)
	}
	checkOneResultEach(t, db, run.ID, fake)
}

// TestProbeKill9 kills a probe process with SIGKILL half way and runs the
// probe again: every reference ends with exactly one result.
func TestProbeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 2000, Tenants: 4, Blocked: 0.06, Uninstalled: 0.04, Seed: 3})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 2 * time.Millisecond, Limits: faketeams.NoLimits()})
	path := filepath.Join(t.TempDir(), "b.db")
	u := "sqlite:" + path
	db := openSeeded(t, u, fake.References())

	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeHelperProcess$")
	env := probeEnv(fake, u, map[string]string{"BLOCKREPORT_RATE": "300", "BLOCKREPORT_CONCURRENCY": "8"})
	cmd.Env = append(os.Environ(), "BLOCKREPORT_PROBE_HELPER=1")
	for _, k := range []string{"BLOCKREPORT_DB", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "BLOCKREPORT_TOKEN_URL",
		"BLOCKREPORT_ALLOW_HOSTS", "BLOCKREPORT_RATE", "BLOCKREPORT_CONCURRENCY"} {
		cmd.Env = append(cmd.Env, k+"="+env(k))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		run, err := db.LatestRun(context.Background())
		if err == nil {
			if n, err := db.CountResults(context.Background(), run.ID); err == nil && n >= len(pop)/2 {
				if err := cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				killed = true
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the probe never got half way; output:\n%s", out.String())
	}
	run, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountResults(context.Background(), run.ID); n >= len(pop) || run.State != blockreport.RunRunning {
		t.Fatalf("kill came too late: %d results, state %s", n, run.State)
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--rate", "1000"); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	again, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != run.ID || again.State != blockreport.RunFinished || again.Total() != len(pop) {
		t.Errorf("after the second run: %+v, want run %d finished with %d results", again, run.ID, len(pop))
	}
	checkOneResultEach(t, db, run.ID, fake)
}

// TestProbeHelperProcess is the command run as a subprocess by
// TestProbeKill9 and the SIGTERM tests, with main's signal handling; it runs
// "probe" unless BLOCKREPORT_HELPER_ARGS gives other arguments (separated by
// spaces). It does nothing in a normal test run.
func TestProbeHelperProcess(t *testing.T) {
	if os.Getenv("BLOCKREPORT_PROBE_HELPER") != "1" {
		return
	}
	args := []string{"probe"}
	if a := os.Getenv("BLOCKREPORT_HELPER_ARGS"); a != "" {
		args = strings.Fields(a)
	}
	ctx, stop := signalContext() // main's signal handling
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// TestProbeGraceFlag: --grace 0 means no grace at all, not the prober's
// default of 10 s.
func TestProbeGraceFlag(t *testing.T) {
	env := map[string]string{
		"BLOCKREPORT_DB":         "sqlite:" + filepath.Join(t.TempDir(), "b.db"),
		"MICROSOFT_APP_ID":       "app",
		"MICROSOFT_APP_PASSWORD": "pw",
	}
	getenv := func(k string) string { return env[k] }
	for _, tt := range []struct {
		args  []string
		check func(time.Duration) bool
		want  string
	}{
		{nil, func(d time.Duration) bool { return d == 10*time.Second }, "10s"},
		{[]string{"--grace", "3s"}, func(d time.Duration) bool { return d == 3*time.Second }, "3s"},
		{[]string{"--grace", "0"}, func(d time.Duration) bool { return d < 0 }, "negative (none)"},
	} {
		cfg, err := parseProbeFlags(tt.args, getenv, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if g := cfg.proberConfig(nil).Grace; !tt.check(g) {
			t.Errorf("%v: probe grace %v, want %s", tt.args, g, tt.want)
		}
	}
	if _, err := parseProbeFlags([]string{"--grace", "-1s"}, getenv, io.Discard); err == nil {
		t.Error("--grace -1s accepted")
	}
}

// TestProbeTokenURLMustBeHTTPS: --token-url to a non-loopback host over
// plain http is a usage error naming the flag; nothing is sent.
func TestProbeTokenURLMustBeHTTPS(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	for _, tokenURL := range []string{"http://any-host/token", "http://10.1.2.3:8080/token", "ftp://127.0.0.1/token"} {
		stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil), "--token-url", tokenURL)
		if code != 2 || !strings.Contains(stderr, "--token-url") {
			t.Errorf("--token-url %s: exit %d, %q; want 2 naming --token-url", tokenURL, code, stderr)
		}
		if strings.Contains(stderr, faketeams.DefaultAppSecret) {
			t.Errorf("--token-url %s: secret in the message", tokenURL)
		}
	}
	if st := fake.Stats(); len(st.Requests) != 0 || st.TokensIssued != 0 {
		t.Errorf("requests reached the fake: %v", st.Requests)
	}
	env := map[string]string{"BLOCKREPORT_DB": u, "MICROSOFT_APP_ID": "app", "MICROSOFT_APP_PASSWORD": "pw"}
	for _, tokenURL := range []string{"https://login.example/t", "http://127.0.0.1:9/t", "http://[::1]:9/t", "http://localhost:9/t"} {
		if _, err := parseProbeFlags([]string{"--token-url", tokenURL}, func(k string) string { return env[k] }, io.Discard); err != nil {
			t.Errorf("--token-url %s: %v", tokenURL, err)
		}
	}
}
