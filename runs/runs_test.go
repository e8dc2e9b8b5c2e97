package runs_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/probe"
	"github.com/blockreport/blockreport/runs"
	"github.com/blockreport/blockreport/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func startFake(t *testing.T, cfg faketeams.Config) *faketeams.Server {
	t.Helper()
	fake, err := faketeams.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake
}

func openStore(t *testing.T, url string, refs []blockreport.Reference) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if len(refs) > 0 {
		if _, err := db.UpsertReferences(context.Background(), refs, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func sqliteURL(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "b.db") }

func prober(t *testing.T, fake *faketeams.Server, mode probe.Mode, tweak func(*probe.Config)) *probe.Prober {
	t.Helper()
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := probe.Config{
		AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"},
		GCCServiceURL: fake.ServiceURL("gcc"), Mode: mode, Message: []byte("Hello"),
		Rate: 500, Concurrency: 16, Attempts: 1, Timeout: 5 * time.Second,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		FlushEvery: 10 * time.Millisecond, StoreWait: time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := probe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func begin(t *testing.T, db *store.DB, c runs.Choice) *runs.Session {
	t.Helper()
	s, err := runs.Begin(context.Background(), db, c, runs.Options{})
	if err != nil {
		t.Fatalf("Begin(%+v): %v", c, err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestBeginChoosesTheRun: a new run when none is unfinished; the
// unfinished one otherwise; a finished or missing run by id is refused, and
// so is a second process while the first holds the lock.
func TestBeginChoosesTheRun(t *testing.T) {
	ctx := context.Background()
	url := sqliteURL(t)
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 5, Seed: 1})})
	db := openStore(t, url, fake.References())

	s := begin(t, db, runs.Choice{Mode: probe.ModeTyping})
	first := s.Run()
	if first.State != blockreport.RunRunning || first.Mode != "typing" {
		t.Errorf("new run = %+v", first)
	}
	if _, err := runs.Begin(ctx, openStore(t, url, nil), runs.Choice{}, runs.Options{}); !errors.Is(err, runs.ErrBusy) {
		t.Errorf("Begin while another process holds the lock: %v, want ErrBusy", err)
	}
	s.Close()
	if err := db.SetRunState(ctx, first.ID, blockreport.RunInterrupted, time.Now()); err != nil {
		t.Fatal(err)
	}
	s = begin(t, db, runs.Choice{Mode: probe.ModeMessage})
	if s.Run().ID != first.ID || s.Run().State != blockreport.RunRunning || s.Run().Mode != "typing" {
		t.Errorf("resumed %+v, want run %d running in its own mode", s.Run(), first.ID)
	}
	if n, _ := s.Pending(ctx); n != 5 {
		t.Errorf("Pending = %d, want 5", n)
	}
	if _, err := s.Probe(ctx, prober(t, fake, probe.ModeTyping, nil)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, c := range []struct {
		choice runs.Choice
		want   error
	}{
		{runs.Choice{Resume: first.ID}, runs.ErrFinished},
		{runs.Choice{Resume: 99}, runs.ErrNoRun},
		{runs.Choice{Retry: &runs.Retry{Run: 99}}, runs.ErrNoRun},
	} {
		if _, err := runs.Begin(ctx, db, c.choice, runs.Options{}); !errors.Is(err, c.want) {
			t.Errorf("Begin(%+v) = %v, want %v", c.choice, err, c.want)
		}
	}
	if got, _ := db.Runs(ctx, 0, 0); len(got) != 1 {
		t.Errorf("%d runs, want 1: a refused Begin records nothing", len(got))
	}
}

// TestProbeWaitsForLateImports: references imported while the run goes on
// are probed before it is marked finished.
func TestProbeWaitsForLateImports(t *testing.T) {
	ctx := context.Background()
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 600, Tenants: 3, Blocked: 0.1, Seed: 5})
	fake := startFake(t, faketeams.Config{Population: pop, Latency: 5 * time.Millisecond, Limits: faketeams.NoLimits()})
	all := fake.References()
	db := openStore(t, sqliteURL(t), all[:300])
	s := begin(t, db, runs.Choice{Mode: probe.ModeTyping})
	go func() {
		for {
			if n, _ := db.CountResults(ctx, s.Run().ID); n >= 100 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := db.UpsertReferences(ctx, all[300:], time.Now()); err != nil {
			t.Error(err)
		}
	}()
	run, err := s.Probe(ctx, prober(t, fake, probe.ModeTyping, func(c *probe.Config) { c.Rate, c.Concurrency = 100, 4 }))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != blockreport.RunFinished || run.Total() != len(pop) {
		t.Errorf("run %s with %d results, want finished with %d (the late imports too)", run.State, run.Total(), len(pop))
	}
	if n, _ := db.CountPending(ctx, run.ID); n != 0 {
		t.Errorf("%d references pending in a finished run", n)
	}
}

// TestRetryInPlace: the unchecked results of a finished run are re-probed
// in the same run, which ends finished again with them replaced; the
// others are not probed again, and no run is added.
func TestRetryInPlace(t *testing.T) {
	for name, url := range map[string]func(*testing.T) string{"sqlite": sqliteURL, "postgres": func(t *testing.T) string { return pgtest.URL(t) }} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			pop := faketeams.Generate(faketeams.GenerateOptions{Users: 40, Tenants: 2, Blocked: 0.1, Seed: 6})
			failing := map[string]bool{}
			for i := range pop {
				if pop[i].State == faketeams.StateActive && len(failing) < 5 {
					pop[i].State = faketeams.StateScripted
					pop[i].Script = []faketeams.Step{{Status: 500}, {State: faketeams.StateActive}}
					failing[pop[i].ConversationID] = true
				}
			}
			fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
			db := openStore(t, url(t), fake.References())
			s := begin(t, db, runs.Choice{Mode: probe.ModeTyping})
			run, err := s.Probe(ctx, prober(t, fake, probe.ModeTyping, nil))
			if err != nil || run.Totals[blockreport.StatusFailed] != 5 {
				t.Fatalf("first pass: %+v, %v; want 5 failed", run.Totals, err)
			}
			s.Close()
			before := fake.Stats().Conversations

			s = begin(t, db, runs.Choice{Retry: &runs.Retry{}})
			if s.Run().ID != run.ID || s.Reopened() != 5 || s.Run().State != blockreport.RunRunning {
				t.Fatalf("retry chose run %d (%s) with %d reopened; want run %d, 5", s.Run().ID, s.Run().State, s.Reopened(), run.ID)
			}
			again, err := s.Probe(ctx, prober(t, fake, probe.ModeTyping, nil))
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if again.ID != run.ID || again.State != blockreport.RunFinished || again.Totals[blockreport.StatusFailed] != 0 ||
				again.Total() != len(pop) {
				t.Errorf("after retry: %+v", again)
			}
			after := fake.Stats().Conversations
			for conv, n := range after {
				if d := n - before[conv]; d != 0 && !failing[conv] || failing[conv] && d != 1 {
					t.Errorf("%s probed %d more times by the retry", conv, d)
				}
			}
			if all, _ := db.Runs(ctx, 0, 0); len(all) != 1 {
				t.Errorf("%d runs after a retry, want 1", len(all))
			}
			// Nothing left: the run stays finished, nothing is probed.
			s = begin(t, db, runs.Choice{Retry: &runs.Retry{Run: run.ID}})
			if s.Reopened() != 0 || s.Run().State != blockreport.RunFinished {
				t.Errorf("second retry reopened %d, state %s", s.Reopened(), s.Run().State)
			}
			s.Close()

			// A later run with results makes this one history: no retry.
			later, _ := db.CreateRun(ctx, "typing", nil, time.Now())
			save := []blockreport.Result{{RunID: later.ID, ReferenceID: 1, Status: blockreport.StatusReachable, ProbedAt: time.Now()}}
			if err := db.SaveResults(ctx, save); err != nil {
				t.Fatal(err)
			}
			if _, err := runs.Begin(ctx, db, runs.Choice{Retry: &runs.Retry{Run: run.ID}}, runs.Options{}); !errors.Is(err, runs.ErrNotRetryable) {
				t.Errorf("retry of an older run: %v, want ErrNotRetryable", err)
			}
			if _, err := runs.Begin(ctx, db, runs.Choice{Retry: &runs.Retry{Run: later.ID}}, runs.Options{}); !errors.Is(err, runs.ErrNotRetryable) {
				t.Errorf("retry of an unfinished run: %v, want ErrNotRetryable", err)
			}
		})
	}
}

// TestRetryKeepsDeliveryUnknown: in message mode a retry re-sends to the
// throttled conversations but not to those whose delivery is unknown,
// unless asked.
func TestRetryKeepsDeliveryUnknown(t *testing.T) {
	ctx := context.Background()
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 20, Seed: 7})
	var unknown, throttled string
	for i := range pop {
		switch {
		case unknown == "":
			pop[i].State, pop[i].Script = faketeams.StateScripted, []faketeams.Step{{Status: 503}, {State: faketeams.StateActive}}
			unknown = pop[i].ConversationID
		case throttled == "":
			pop[i].State, pop[i].Script = faketeams.StateScripted, []faketeams.Step{{Status: 429}, {State: faketeams.StateActive}}
			throttled = pop[i].ConversationID
		}
		if pop[i].State != faketeams.StateScripted {
			pop[i].State = faketeams.StateActive
		}
	}
	fake := startFake(t, faketeams.Config{Population: pop, Limits: faketeams.NoLimits()})
	db := openStore(t, sqliteURL(t), fake.References())
	msg := prober(t, fake, probe.ModeMessage, nil)
	s := begin(t, db, runs.Choice{Mode: probe.ModeMessage})
	run, err := s.Probe(ctx, msg)
	s.Close()
	if err != nil || run.Totals[blockreport.StatusFailed] != 1 || run.Totals[blockreport.StatusThrottled] != 1 {
		t.Fatalf("first pass %+v, %v; want 1 failed, 1 throttled", run.Totals, err)
	}
	s = begin(t, db, runs.Choice{Retry: &runs.Retry{}})
	if s.Reopened() != 1 {
		t.Errorf("reopened %d, want 1 (the throttled one)", s.Reopened())
	}
	if _, err := s.Probe(ctx, msg); err != nil {
		t.Fatal(err)
	}
	s.Close()
	m := fake.Stats().Messages
	if m[unknown] != 1 || m[throttled] != 1 {
		t.Errorf("messages: unknown %d, throttled %d; want 1 each", m[unknown], m[throttled])
	}
	s = begin(t, db, runs.Choice{Retry: &runs.Retry{IncludeUnknown: true}})
	if s.Reopened() != 1 {
		t.Errorf("with IncludeUnknown reopened %d, want 1", s.Reopened())
	}
	final, err := s.Probe(ctx, msg)
	if err != nil || final.Totals[blockreport.StatusReachable] != len(pop) {
		t.Errorf("after both retries: %+v, %v", final.Totals, err)
	}
	if n := fake.Stats().Messages[unknown]; n != 2 {
		t.Errorf("the DeliveryUnknown conversation got %d messages after --include-unknown, want 2 (as documented)", n)
	}
}

// TestDeleteAndPrune: a run being probed cannot be deleted; a dead
// process's running run can; prune keeps the newest finished runs.
func TestDeleteAndPrune(t *testing.T) {
	ctx := context.Background()
	url := sqliteURL(t)
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 3, Seed: 8})})
	db := openStore(t, url, fake.References())
	var ids []int64
	for range 4 {
		s := begin(t, db, runs.Choice{Mode: probe.ModeTyping})
		r, err := s.Probe(ctx, prober(t, fake, probe.ModeTyping, nil))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		ids = append(ids, r.ID)
	}
	s := begin(t, db, runs.Choice{Mode: probe.ModeTyping}) // run 5: running, lock held
	other := openStore(t, url, nil)                        // another process
	if _, err := runs.Delete(ctx, other, s.Run().ID); !errors.Is(err, runs.ErrInProgress) {
		t.Errorf("delete of the run being probed: %v, want ErrInProgress", err)
	}
	if n, err := runs.Delete(ctx, other, ids[0]); err != nil || n != 3 {
		t.Errorf("delete of a finished run while another is probed = %d, %v; want 3 results", n, err)
	}
	if _, err := runs.Delete(ctx, other, ids[0]); !errors.Is(err, runs.ErrNoRun) {
		t.Errorf("delete of a deleted run: %v, want ErrNoRun", err)
	}
	deleted, _, err := runs.Prune(ctx, other, 1, true)
	if err != nil || len(deleted) != 2 {
		t.Errorf("dry-run prune --keep 1 = %d runs, %v; want runs 2, 3", len(deleted), err)
	}
	if got, _ := db.Runs(ctx, 0, 0); len(got) != 4 {
		t.Errorf("a dry run deleted something: %d runs left", len(got))
	}
	s.Close() // the process "dies": its run stays running, the lock is free
	deleted, results, err := runs.Prune(ctx, other, 2, false)
	if err != nil || len(deleted) != 1 || deleted[0].ID != ids[1] || results != 3 {
		t.Errorf("prune --keep 2 = %+v, %d, %v; want run %d with 3 results", deleted, results, err, ids[1])
	}
	if _, err := runs.Delete(ctx, other, s.Run().ID); err != nil {
		t.Errorf("delete of a dead process's running run: %v", err)
	}
	left, _ := db.Runs(ctx, 0, 0)
	if len(left) != 2 || left[0].ID != ids[3] || left[1].ID != ids[2] {
		t.Errorf("runs left: %+v, want the two newest finished", left)
	}
	if _, _, err := runs.Prune(ctx, other, 0, false); err == nil {
		t.Error("prune --keep 0 accepted")
	}
}

// TestCoverage groups references by service host and applies the
// allow-list; none allowed is ErrNoAllowedHost naming the hosts.
func TestCoverage(t *testing.T) {
	ctx := context.Background()
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 6, Seed: 9})})
	refs := fake.References()
	refs[0].ServiceURL, refs[1].ServiceURL = "https://evil.example/amer/", "https://evil.example/emea/"
	refs[2].ServiceURL = "not a url"
	refs[3].OptedOut = true
	db := openStore(t, sqliteURL(t), refs)
	check, err := probe.ServiceURLChecker(probe.CloudPublic, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cov, err := runs.CheckCoverage(ctx, db, check)
	if err != nil {
		t.Fatal(err)
	}
	refused := cov.RefusedHosts()
	if cov.Allowed != 2 || cov.Refused != 3 || len(refused) != 2 || refused[0].Host != "evil.example" || refused[0].References != 2 {
		t.Errorf("coverage = %+v", cov)
	}
	if cov.Err() != nil {
		t.Errorf("Err with some allowed = %v", cov.Err())
	}
	none, _ := probe.ServiceURLChecker(probe.CloudPublic, nil)
	cov, _ = runs.CheckCoverage(ctx, db, none)
	if err := cov.Err(); !errors.Is(err, runs.ErrNoAllowedHost) || cov.Allowed != 0 {
		t.Errorf("Err with none allowed = %v", err)
	}
}

// TestGuardAfterLockTakeover: a PostgreSQL restart drops the advisory
// lock; when another process takes it meanwhile, the guarded store neither
// saves results nor claims sends any more, and cancels the run's context
// with ErrLockLost.
func TestGuardAfterLockTakeover(t *testing.T) {
	ctx := context.Background()
	cluster := pgtest.NewCluster(t)
	u := cluster.NewDatabase(t)
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 3, Seed: 23})})
	db := openStore(t, u, fake.References())
	s := begin(t, db, runs.Choice{Mode: probe.ModeMessage})
	run := s.Run()
	result := func(id int64) []blockreport.Result {
		return []blockreport.Result{{RunID: run.ID, ReferenceID: id, Status: blockreport.StatusReachable, ProbedAt: time.Now()}}
	}
	runCtx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	g := runs.Guard(db, lost)
	if err := g.SaveResults(runCtx, result(1)); err != nil {
		t.Fatalf("save while holding the lock: %v", err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	other := openStore(t, u, nil) // a second blockreport process
	releaseOther, err := other.Lock(ctx)
	if err != nil {
		t.Fatalf("the second process could not take the lock after the restart: %v", err)
	}
	defer releaseOther()

	if _, err := g.ClaimSends(runCtx, run.ID, []int64{2}, time.Now()); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("claim after another process took the lock: %v, want ErrLockLost", err)
	}
	if err := g.SaveResults(runCtx, result(2)); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("save after another process took the lock: %v, want ErrLockLost", err)
	}
	if cause := context.Cause(runCtx); !errors.Is(cause, store.ErrLockLost) {
		t.Errorf("run context cause %v, want ErrLockLost (dispatch must stop)", cause)
	}
	if n, err := db.CountResults(ctx, run.ID); err != nil || n != 1 {
		t.Errorf("%d results (err %v), want only the one saved before the lock was lost", n, err)
	}
	if c, _, _ := db.CountSends(ctx, run.ID); c != 0 {
		t.Errorf("%d sends claimed after the lock was lost", c)
	}
}
