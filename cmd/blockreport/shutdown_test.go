package main

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
)

// syncBuffer is a bytes.Buffer a test may read while a subprocess's output
// is still being copied into it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHelper starts this test binary as the blockreport command (see
// TestProbeHelperProcess) with args and env.
func startHelper(t *testing.T, args string, env map[string]string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeHelperProcess$")
	cmd.Env = append(os.Environ(), "BLOCKREPORT_PROBE_HELPER=1", "BLOCKREPORT_HELPER_ARGS="+args)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, out
}

// terminate sends SIGTERM and waits for the process to exit, at most
// bound; it returns the exit code and how long the exit took.
func terminate(t *testing.T, cmd *exec.Cmd, bound time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running %s after SIGTERM", bound)
	}
	return cmd.ProcessState.ExitCode(), time.Since(start)
}

// TestSIGTERMDuringProbe sends SIGTERM to a probe process while requests
// are in flight, some of them stalled past the grace period: the process
// exits within the grace period (plus the final save), the run is marked
// interrupted, and every answer the fake gave has its result stored; a
// stalled request cut off by the grace gets none, and the next probe
// resumes the run to one result per reference.
func TestSIGTERMDuringProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 1500, Tenants: 2, Blocked: 0.06, Uninstalled: 0.04, Seed: 41})
	fake := startFake(t, faketeams.Config{
		Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits(), Seed: 41,
		Faults: faketeams.Faults{Stalls: 0.02}, StallFor: time.Minute,
	})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	const grace = 2 * time.Second
	env := probeEnv(fake, u, nil)
	cmd, out := startHelper(t, "probe", map[string]string{
		"BLOCKREPORT_DB": u, "MICROSOFT_APP_ID": env("MICROSOFT_APP_ID"), "MICROSOFT_APP_PASSWORD": env("MICROSOFT_APP_PASSWORD"),
		"BLOCKREPORT_TOKEN_URL": env("BLOCKREPORT_TOKEN_URL"), "BLOCKREPORT_ALLOW_HOSTS": "127.0.0.1",
		"BLOCKREPORT_RATE": "150", "BLOCKREPORT_CONCURRENCY": "64", "BLOCKREPORT_TIMEOUT": "1m",
		"BLOCKREPORT_GRACE": grace.String(), "BLOCKREPORT_LOG_LEVEL": "warn",
	})
	run := waitResults(t, db, 200)
	if fake.Stats().Count(faketeams.RouteSendActivity, "stalled") == 0 {
		t.Log("no stalled request in flight at SIGTERM; the grace cut-off is not exercised this time")
	}
	code, took := terminate(t, cmd, grace+30*time.Second)
	t.Logf("exited %d, %s after SIGTERM (grace %s)", code, took.Round(time.Millisecond), grace)
	if code != 1 || !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("exit %d, output %q; want 1 and interrupted", code, out.String())
	}
	if took > grace+10*time.Second {
		t.Errorf("exit took %s, grace is %s", took, grace)
	}

	got, err := db.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := fake.Stats()
	answered := st.Total(faketeams.RouteSendActivity) - st.Count(faketeams.RouteSendActivity, "stalled")
	if got.State != blockreport.RunInterrupted || got.Total() != answered || answered >= len(pop) {
		t.Errorf("run %s with %d results; want interrupted with one per answer the fake gave (%d of %d)",
			got.State, got.Total(), answered, len(pop))
	}
	if stderr, code := runProbeCmd(t, context.Background(), probeEnv(fake, u, nil),
		"--rate", "1000", "--concurrency", "64", "--timeout", "200ms", "--attempts", "10"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	checkOneResultEach(t, db, run.ID, fake)
}

// TestSIGTERMDuringReport sends SIGTERM to a report process while it
// writes the workbook: it exits promptly, and no partial file is left under
// a final name (nor a temporary file): a report either is complete or is
// not there.
func TestSIGTERMDuringReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	const n = 8000
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: n, Tenants: 5, Seed: 42})
	refs := make([]blockreport.Reference, 0, n)
	for _, c := range pop {
		refs = append(refs, blockreport.Reference{
			TenantID: c.TenantID, UserID: c.UserID, UserName: c.UserName, Email: c.Email,
			ConversationID: c.ConversationID, ConversationType: c.ConversationType,
			ServiceURL: "https://smba.trafficmanager.net/amer/",
		})
	}
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, refs)
	ctx := context.Background()
	run, err := db.CreateRun(ctx, "typing", []byte(`{}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := db.PendingTenants(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var results []blockreport.Result
	for _, tn := range tenants {
		err := db.Pending(ctx, run.ID, tn, func(r blockreport.Reference) error {
			st := blockreport.StatusReachable
			if r.ID%7 == 0 {
				st = blockreport.StatusBlocked
			}
			results = append(results, blockreport.Result{RunID: run.ID, ReferenceID: r.ID, Status: st, HTTPStatus: 201, Attempts: 1, ProbedAt: time.Now()})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SaveResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRunState(ctx, run.ID, blockreport.RunFinished, time.Now()); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	cmd, output := startHelper(t, "report --out "+out, map[string]string{"BLOCKREPORT_DB": u, "BLOCKREPORT_LOG_LEVEL": "warn"})
	deadline := time.Now().Add(time.Minute)
	for !hasTemp(t, out) {
		if time.Now().After(deadline) {
			t.Fatalf("the report never started writing: %s", output.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	code, took := terminate(t, cmd, 30*time.Second)
	t.Logf("exited %d, %s after SIGTERM: %s", code, took.Round(time.Millisecond), strings.TrimSpace(output.String()))
	if code == 0 {
		t.Log("the signal came after the workbook's rows: the reports were completed")
	} else if !strings.Contains(output.String(), "context canceled") {
		t.Errorf("exit %d without saying it was cancelled: %q", code, output.String())
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(out, e.Name())
		switch {
		case strings.Contains(e.Name(), ".tmp-"):
			t.Errorf("temporary file %s left behind", e.Name())
		case strings.HasSuffix(e.Name(), ".xlsx"):
			zr, err := zip.OpenReader(p)
			if err != nil {
				t.Errorf("%s under its final name is not a complete workbook: %v", e.Name(), err)
				continue
			}
			zr.Close()
		case strings.HasSuffix(e.Name(), ".html"):
			b, _ := os.ReadFile(p)
			if !strings.Contains(string(b), "</html>") {
				t.Errorf("%s under its final name is not a complete page", e.Name())
			}
		}
	}
}

func hasTemp(t *testing.T, dir string) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			return true
		}
	}
	return false
}
