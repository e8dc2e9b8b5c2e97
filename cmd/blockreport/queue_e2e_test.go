package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/store"
)

// Settings of the queue tests' workers: small chunks that hand on often,
// and a rescue delay of 15 s (the job timeout is 3 s + 1 s + 10 s).
const (
	testChunkSize   = "150"
	testChunkTime   = "3s"
	testGrace       = "1s"
	testRescueAfter = 15 * time.Second
)

// queueEnv is the environment of a worker or a run --queue against fake
// and the store at dbURL.
func queueEnv(fake *faketeams.Server, dbURL string, extra map[string]string) map[string]string {
	env := fakeEnv(fake, dbURL)
	for k, v := range map[string]string{
		"BLOCKREPORT_CONCURRENCY": "8", "BLOCKREPORT_JOBS": "2", // --rate: the worker's default, 40
		"BLOCKREPORT_CHUNK_SIZE": testChunkSize, "BLOCKREPORT_CHUNK_TIME": testChunkTime, "BLOCKREPORT_GRACE": testGrace,
		"BLOCKREPORT_RESCUE_AFTER": testRescueAfter.String(), "BLOCKREPORT_TIMEOUT": "5s", "BLOCKREPORT_LOG_LEVEL": "info",
	} {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// waitExit waits at most bound for cmd to exit and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, bound time.Duration, out *syncBuffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %s: %s", cmd.Args, bound, out.String())
	}
	return -1
}

// queueKillRun is the Must-show run of issue 14: three worker processes
// and a "run --queue" process share a run on PostgreSQL; once a quarter of
// the references have results, one worker is killed with SIGKILL. The run
// must still finish, its killed chunks taken over by another worker within
// two minutes, with exactly one result per reference, and faketeams must
// have seen no tenant above its limit of 50 requests per second.
func queueKillRun(t *testing.T, mode probe.Mode) (fake *faketeams.Server, db *store.DB, run blockreport.Run) {
	t.Helper()
	u := pgtest.URL(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 2400, Tenants: 6, Blocked: 0.08, Uninstalled: 0.05, Seed: 14})
	fake = startFake(t, faketeams.Config{Population: pop, Latency: 20 * time.Millisecond, Seed: 14})
	db = openSeeded(t, u, fake.References())
	extra := map[string]string{}
	if mode == probe.ModeMessage {
		msg := filepath.Join(t.TempDir(), "message.txt")
		if err := os.WriteFile(msg, []byte("Is this bot still useful to you?"), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = map[string]string{"BLOCKREPORT_MODE": "message", "BLOCKREPORT_MESSAGE_FILE": msg}
	}

	var workers []*exec.Cmd
	var outs []*syncBuffer
	for range 3 {
		cmd, out := startHelper(t, "worker", queueEnv(fake, u, nil))
		workers, outs = append(workers, cmd), append(outs, out)
	}
	reports := t.TempDir()
	waiter, wout := startHelper(t, "run --queue --out "+reports, queueEnv(fake, u, extra))

	run = waitResults(t, db, len(pop)/4)
	// The victim is a worker that holds a chunk now (River's client id
	// ends with the worker's pid).
	victim := -1
	for victim < 0 {
		var by string
		err := db.SQL().QueryRow(`SELECT attempted_by[array_upper(attempted_by, 1)] FROM river_job
			WHERE kind = 'blockreport_probe_chunk' AND state = 'running' LIMIT 1`).Scan(&by)
		if err == nil {
			for i, w := range workers {
				if strings.HasSuffix(by, fmt.Sprintf("-%d", w.Process.Pid)) {
					victim = i
				}
			}
		}
		if victim < 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := workers[victim].Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killed := time.Now()
	_ = workers[victim].Wait()
	t.Logf("worker %d killed at %d of %d results", victim+1, mustCount(t, db, run.ID), len(pop))
	workers[0], workers[victim], outs[0], outs[victim] = workers[victim], workers[0], outs[victim], outs[0]

	if code := waitExit(t, waiter, 4*time.Minute, wout); code != 0 {
		t.Fatalf("run --queue exited %d: %s\nworker 2: %s", code, wout.String(), outs[1].String())
	}
	took := time.Since(killed)
	if !strings.Contains(wout.String(), "finished") {
		t.Errorf("run --queue did not say the run finished: %s", wout.String())
	}
	if ents, _ := filepath.Glob(filepath.Join(reports, "*.xlsx")); len(ents) != 1 {
		t.Errorf("run --queue wrote %d workbooks, want 1", len(ents))
	}
	for i, w := range workers[1:] {
		if code, _ := terminate(t, w, time.Minute); code != 0 {
			t.Errorf("worker %d exited %d after SIGTERM: %s", i+2, code, outs[i+1].String())
		}
	}

	// The killed worker's chunks were rescued and run again elsewhere.
	var rescued int
	var firstRetry time.Time
	err := db.SQL().QueryRow(`SELECT COUNT(*), COALESCE(MIN(attempted_at), now()) FROM river_job
		WHERE kind = 'blockreport_probe_chunk' AND attempt >= 2`).Scan(&rescued, &firstRetry)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chunks rescued; the first ran again %s after the kill; the run finished %s after it",
		rescued, firstRetry.Sub(killed).Round(time.Second), took.Round(time.Second))
	if rows, err := db.SQL().Query(`SELECT id, attempt, state, COALESCE(errors::text, '') || ' by ' || array_to_string(attempted_by, ',') || ' seq ' || (args->>'seq') FROM river_job WHERE kind = 'blockreport_probe_chunk' AND attempt >= 2`); err == nil {
		for rows.Next() {
			var id, attempt int
			var state, errs string
			_ = rows.Scan(&id, &attempt, &state, &errs)
			t.Logf("job %d attempt %d %s: %.300s", id, attempt, state, errs)
		}
		rows.Close()
	}
	if rescued == 0 {
		t.Error("no chunk of the killed worker was rescued")
	} else if d := firstRetry.Sub(killed); d > 2*time.Minute {
		t.Errorf("the killed worker's chunk was taken over %s after the kill, want within 2 minutes", d)
	}
	run, err = db.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != blockreport.RunFinished {
		t.Fatalf("run %d is %s", run.ID, run.State)
	}
	for tenant, n := range fake.Stats().MaxTenantRate {
		if n > 50 {
			t.Errorf("tenant %s saw %d requests in one second, above Teams' 50", tenant, n)
		}
	}
	return fake, db, run
}

func mustCount(t *testing.T, db *store.DB, runID int64) int {
	t.Helper()
	n, err := db.CountResults(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueueWorkersKill9: typing mode; every reference ends with exactly
// one result, with the status its conversation's state implies.
func TestQueueWorkersKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four subprocesses and waits for a rescue")
	}
	fake, db, run := queueKillRun(t, probe.ModeTyping)
	checkOneResultEach(t, db, run.ID, fake)
}

// TestQueueMessageModeKill9: message mode with a worker killed mid-run:
// no conversation gets the message twice; every conversation has exactly
// one result, and the only ones whose status is not what the state
// implies are the DeliveryUnknown results of the killed worker's claims.
func TestQueueMessageModeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four subprocesses and waits for a rescue")
	}
	fake, db, run := queueKillRun(t, probe.ModeMessage)
	msgs := fake.Stats().Messages
	want := map[string]blockreport.Status{}
	for _, c := range fake.Population() {
		want[c.ConversationID] = wantStatus(c)
	}
	seen, unknown := map[string]int{}, 0
	err := db.Rows(context.Background(), run.ID, func(r blockreport.Row) error {
		seen[r.ConversationID]++
		switch {
		case r.Reason == probe.ReasonDeliveryUnknown:
			unknown++
		case r.Status != want[r.ConversationID]:
			t.Errorf("%s: %s (%s), want %s", r.ConversationID, r.Status, r.Detail, want[r.ConversationID])
		case msgs[r.ConversationID] != 1:
			t.Errorf("%s: %s, but faketeams saw %d messages to it", r.ConversationID, r.Status, msgs[r.ConversationID])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s has %d results, want 1", id, seen[id])
		}
		if msgs[id] > 1 {
			t.Errorf("%s got the message %d times", id, msgs[id])
		}
	}
	t.Logf("%d DeliveryUnknown results (claimed by the killed worker, never sent again)", unknown)
}

// TestWorkerSIGTERMHandsBack: a worker told to stop mid-run (SIGTERM)
// exits within its grace (plus the final save), its chunks' results saved
// and the rest handed back at once, not after a rescue delay: a second
// worker started afterwards finishes the run, one result per reference.
func TestWorkerSIGTERMHandsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	u := pgtest.URL(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 900, Tenants: 3, Blocked: 0.1, Seed: 15})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 20 * time.Millisecond, Seed: 15})
	db := openSeeded(t, u, fake.References())
	// Chunks long enough to be cut short by the signal.
	env := queueEnv(fake, u, map[string]string{"BLOCKREPORT_CHUNK_SIZE": "2000", "BLOCKREPORT_CHUNK_TIME": "30s", "BLOCKREPORT_RESCUE_AFTER": "10m"})
	w1, out1 := startHelper(t, "worker", env)
	waiter, wout := startHelper(t, "probe --queue", env)
	waitResults(t, db, len(pop)/4)
	code, took := terminate(t, w1, time.Minute)
	t.Logf("worker exited %d, %s after SIGTERM (grace %s)", code, took.Round(time.Millisecond), testGrace)
	if code != 0 {
		t.Fatalf("worker exited %d: %s", code, out1.String())
	}
	if took > 15*time.Second {
		t.Errorf("worker took %s to stop, grace is %s", took, testGrace)
	}
	var handedOn int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'blockreport_probe_chunk' AND state = 'available'`).Scan(&handedOn); err != nil {
		t.Fatal(err)
	}
	if handedOn == 0 {
		t.Errorf("no chunk was handed back to the queue: %s", out1.String())
	}
	startHelper(t, "worker", env)
	if code := waitExit(t, waiter, 3*time.Minute, wout); code != 0 {
		t.Fatalf("probe --queue exited %d: %s", code, wout.String())
	}
	run, err := db.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkOneResultEach(t, db, run.ID, fake)
}

// TestWorkerSchedule: two worker processes with the same --schedule
// start one run per tick between them, and the runs finish.
func TestWorkerSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	u := pgtest.URL(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 40, Tenants: 2, Seed: 16})
	fake := startFake(t, faketeams.Config{Population: pop, Seed: 16})
	db := openSeeded(t, u, fake.References())
	env := queueEnv(fake, u, map[string]string{"BLOCKREPORT_SCHEDULE": "@every 5s"})
	start := time.Now()
	for range 2 {
		startHelper(t, "worker", env)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		runs, err := db.Runs(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		for _, r := range runs {
			if r.State == blockreport.RunFinished && r.Total() == len(pop) {
				finished++
			}
		}
		if finished >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs finished in 2 minutes of ticks every 5s", finished)
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var ticks, distinct int
	if err := db.SQL().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT args->>'tick') FROM river_job WHERE kind = 'blockreport_scheduled_run'`).Scan(&ticks, &distinct); err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d ticks, %d runs", elapsed.Round(time.Millisecond), ticks, len(runs))
	if ticks != distinct || ticks > int(elapsed/(5*time.Second))+1 {
		t.Errorf("%d tick jobs (%d distinct ticks) in %s at one per 5s: a tick was scheduled twice", ticks, distinct, elapsed)
	}
	if len(runs) < ticks-1 || len(runs) > ticks {
		t.Errorf("%d runs for %d ticks, want one per tick", len(runs), ticks)
	}
}
