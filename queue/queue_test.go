package queue

import (
	"context"
	"log/slog"
	"os"
	"sync"
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

func logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func openDB(t testing.TB, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// proberFactory builds probers against fake.
func proberFactory(t testing.TB, fake *faketeams.Server, rate float64) func(probe.Mode, []byte, int) (*probe.Prober, error) {
	cred, err := auth.New(auth.Config{AppID: faketeams.DefaultAppID, Secret: faketeams.DefaultAppSecret, TokenURL: fake.TokenURL("botframework.com")})
	if err != nil {
		t.Fatal(err)
	}
	return func(mode probe.Mode, message []byte, concurrency int) (*probe.Prober, error) {
		return probe.New(probe.Config{
			AppID: faketeams.DefaultAppID, Credential: cred, AllowHosts: []string{"127.0.0.1"},
			GCCServiceURL: fake.ServiceURL("gcc"), Mode: mode, Message: message, Concurrency: concurrency,
			Rate: rate, Timeout: 5 * time.Second, Attempts: 5, Grace: 2 * time.Second,
			BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		})
	}
}

// startWorkers runs n workers, each on its own connection pool, until
// the test ends.
func startWorkers(t testing.TB, url string, n int, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		w, err := NewWorker(ctx, openDB(t, url), cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestWorkersShareARun: two workers probe a run queued in chunks of 40
// references per tenant; every reference gets exactly one result with the
// status its state implies, no tenant goes over Teams' limit, and the run
// finishes by itself.
func TestWorkersShareARun(t *testing.T) {
	url := pgtest.URL(t)
	pop := faketeams.Generate(faketeams.GenerateOptions{Users: 600, Tenants: 6, Blocked: 0.1, Uninstalled: 0.05, Seed: 7})
	fake, err := faketeams.Start(faketeams.Config{Population: pop, Latency: 5 * time.Millisecond, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	db := openDB(t, url)
	ctx := context.Background()
	if _, err := db.UpsertReferences(ctx, fake.References(), time.Now()); err != nil {
		t.Fatal(err)
	}
	q, err := Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := q.Begin(ctx, runs.Choice{Mode: probe.ModeTyping}, nil, runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runID := sess.Run().ID
	if n, _ := q.Live(ctx, runID); n != 6 {
		t.Fatalf("%d chains queued with the run, want one per tenant (6)", n)
	}
	startWorkers(t, url, 2, Config{Prober: proberFactory(t, fake, 45), Concurrency: 16, Jobs: 4, ChunkSize: 40, Logger: logger(t)})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run, err := q.Wait(wctx, runID, nil, 200*time.Millisecond, nil)
	sess.Close()
	if err != nil {
		t.Fatal(err)
	}
	if run.State != blockreport.RunFinished || run.Total() != len(pop) {
		t.Fatalf("run %s with %d results, want finished with %d", run.State, run.Total(), len(pop))
	}
	checkResults(t, db, runID, pop)
	for tenant, n := range fake.Stats().MaxTenantRate {
		if n > 50 {
			t.Errorf("tenant %s saw %d requests in one second, over Teams' 50", tenant, n)
		}
	}
	var chunks int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, ChunkArgs{}.Kind()).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	if chunks < len(pop)/40 {
		t.Errorf("%d chunks completed, want at least %d (chunks of 40)", chunks, len(pop)/40)
	}
}

// checkResults asserts one result per conversation with the right status.
func checkResults(t *testing.T, db *store.DB, runID int64, pop []faketeams.Conversation) {
	t.Helper()
	want := map[string]blockreport.Status{}
	for _, c := range pop {
		switch c.State {
		case faketeams.StateBlocked:
			want[c.ConversationID] = blockreport.StatusBlocked
		case faketeams.StateUninstalled:
			want[c.ConversationID] = blockreport.StatusUninstalled
		default:
			want[c.ConversationID] = blockreport.StatusReachable
		}
	}
	seen := map[string]int{}
	err := db.Rows(context.Background(), runID, func(r blockreport.Row) error {
		seen[r.ConversationID]++
		if w := want[r.ConversationID]; r.Status != w {
			t.Errorf("%s: %s (%s), want %s", r.ConversationID, r.Status, r.Detail, w)
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
	}
}

// TestQueueNeedsPostgres: the queue refuses the embedded SQLite store.
func TestQueueNeedsPostgres(t *testing.T) {
	db := openDB(t, "sqlite:"+t.TempDir()+"/b.db")
	if _, err := Open(context.Background(), db, nil); err != ErrNeedsPostgres {
		t.Fatalf("Open on SQLite: %v, want ErrNeedsPostgres", err)
	}
	if _, err := Migrate(context.Background(), db); err != ErrNeedsPostgres {
		t.Fatalf("Migrate on SQLite: %v, want ErrNeedsPostgres", err)
	}
}
