package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type backend struct {
	name string
	url  string
	db   *store.DB
}

// openStores opens a fresh store on every backend: an SQLite file and a
// PostgreSQL database.
func openStores(t *testing.T) []backend {
	t.Helper()
	urls := []backend{
		{name: "sqlite", url: "sqlite:" + filepath.Join(t.TempDir(), "test.db")},
		{name: "postgres", url: pgtest.URL(t)},
	}
	for i := range urls {
		urls[i].db = openURL(t, urls[i].url)
	}
	return urls
}

func openURL(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)

func ref(tenant, conv, user, name string) blockreport.Reference {
	return blockreport.Reference{
		TenantID: tenant, ConversationID: conv, UserID: user, UserName: name,
		ConversationType: blockreport.ConversationPersonal,
		ServiceURL:       "https://smba.trafficmanager.net/amer/",
		BotID:            "28:bot", ChannelID: "msteams", Locale: "en-US",
		Raw: json.RawMessage(`{"user":{"id":"` + user + `"}}`),
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			if err := b.db.Migrate(ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			// A second Open of the same database migrates again.
			openURL(t, b.url)
			// The newest migration's number: every file in store/migrations.
			files, _ := filepath.Glob(filepath.Join("migrations", "*.sql"))
			v, err := b.db.SchemaVersion(ctx)
			if err != nil || v != int64(len(files)) {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(files))
			}
			if got := b.db.Driver(); got != b.name {
				t.Errorf("Driver = %q, want %q", got, b.name)
			}
		})
	}
}

func TestUpsertReferences(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			a, c := ref("t1", "a:1", "29:1", "Ann"), ref("t1", "a:2", "29:2", "Cid")
			got, err := b.db.UpsertReferences(ctx, []blockreport.Reference{a, c}, t0)
			if err != nil || got != (store.ImportCounts{Added: 2}) {
				t.Fatalf("first import = %+v, %v; want 2 added", got, err)
			}
			got, err = b.db.UpsertReferences(ctx, []blockreport.Reference{a, c}, t0.Add(time.Hour))
			if err != nil || got != (store.ImportCounts{Unchanged: 2}) {
				t.Fatalf("re-import = %+v, %v; want 2 unchanged", got, err)
			}
			moved := a
			moved.ServiceURL = "https://smba.trafficmanager.net/emea/"
			moved.UserName = "Ann B."
			got, err = b.db.UpsertReferences(ctx, []blockreport.Reference{moved, c}, t0.Add(2*time.Hour))
			if err != nil || got != (store.ImportCounts{Updated: 1, Unchanged: 1}) {
				t.Fatalf("changed import = %+v, %v; want 1 updated, 1 unchanged", got, err)
			}
			// Duplicates in one batch collapse to the last.
			dup := c
			dup.Locale = "de-DE"
			got, err = b.db.UpsertReferences(ctx, []blockreport.Reference{c, dup}, t0.Add(3*time.Hour))
			if err != nil || got != (store.ImportCounts{Updated: 1}) {
				t.Fatalf("duplicate import = %+v, %v; want 1 updated", got, err)
			}
			// Opting out sticks: an import without the flag does not clear it.
			out := c
			out.Locale = "de-DE"
			out.OptedOut = true
			if got, err = b.db.UpsertReferences(ctx, []blockreport.Reference{out}, t0.Add(3*time.Hour)); err != nil || got != (store.ImportCounts{Updated: 1}) {
				t.Fatalf("opt-out import = %+v, %v; want 1 updated", got, err)
			}
			if got, err = b.db.UpsertReferences(ctx, []blockreport.Reference{dup}, t0.Add(3*time.Hour)); err != nil || got != (store.ImportCounts{Unchanged: 1}) {
				t.Fatalf("import without opt-out = %+v, %v; want 1 unchanged", got, err)
			}
			if n, err := b.db.CountReferences(ctx); err != nil || n != 2 {
				t.Fatalf("CountReferences = %d, %v; want 2", n, err)
			}
			refs := pending(t, b.db, createRun(t, b.db).ID, "t1")
			if refs[0].ServiceURL != moved.ServiceURL || refs[0].UserName != "Ann B." {
				t.Errorf("changed reference not updated: %+v", refs[0])
			}
			if !refs[0].FirstSeen.Equal(t0.Truncate(time.Microsecond)) {
				t.Errorf("first_seen = %v, want %v", refs[0].FirstSeen, t0)
			}
			if want := t0.Add(2 * time.Hour).Truncate(time.Microsecond); !refs[0].LastSeen.Equal(want) {
				t.Errorf("last_seen = %v, want %v", refs[0].LastSeen, want)
			}
			if !refs[1].OptedOut {
				t.Error("opt-out cleared by an import without it")
			}
			if refs[1].Locale != "de-DE" || !refs[1].LastSeen.Equal(t0.Add(3*time.Hour).Truncate(time.Microsecond)) {
				t.Errorf("duplicate: last one not kept: %+v", refs[1])
			}
			if string(refs[0].Raw) != string(a.Raw) {
				t.Errorf("raw = %s, want %s", refs[0].Raw, a.Raw)
			}
		})
	}
}

func TestUpsertReferencesIsAtomic(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			// The bad reference sits in a later statement than the first
			// (chunks are 500 references on SQLite, 5000 on PostgreSQL).
			var refs []blockreport.Reference
			for i := range 6000 {
				refs = append(refs, ref("t1", fmt.Sprintf("a:%d", i), fmt.Sprintf("29:%d", i), "U"))
			}
			refs[5500].ConversationType = "meeting"
			if _, err := b.db.UpsertReferences(ctx, refs, t0); err == nil {
				t.Fatal("UpsertReferences with a bad reference succeeded")
			}
			if n, err := b.db.CountReferences(ctx); err != nil || n != 0 {
				t.Errorf("after a failed batch CountReferences = %d, %v; want 0", n, err)
			}
		})
	}
}

func createRun(t *testing.T, db *store.DB) blockreport.Run {
	t.Helper()
	r, err := db.CreateRun(context.Background(), "full", json.RawMessage(`{"concurrency":4}`), t0)
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return r
}

func pending(t *testing.T, db *store.DB, runID int64, tenant string) []blockreport.Reference {
	t.Helper()
	var refs []blockreport.Reference
	err := db.Pending(context.Background(), runID, tenant, func(r blockreport.Reference) error {
		refs = append(refs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return refs
}

func TestRuns(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := b.db.LatestRun(ctx); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LatestRun on empty store: %v, want ErrNotFound", err)
			}
			if _, ok, err := b.db.UnfinishedRun(ctx); ok || err != nil {
				t.Errorf("UnfinishedRun on empty store = %v, %v", ok, err)
			}
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{ref("t1", "a:1", "29:1", "A"), ref("t1", "a:2", "29:2", "B")}, t0); err != nil {
				t.Fatal(err)
			}
			refs := pending(t, b.db, 0, "t1")

			r1 := createRun(t, b.db)
			if r1.State != blockreport.RunRunning || !r1.StartedAt.Equal(t0.Truncate(time.Microsecond)) ||
				r1.Mode != "full" || string(r1.Params) != `{"concurrency":4}` || !r1.FinishedAt.IsZero() {
				t.Errorf("CreateRun = %+v", r1)
			}
			save(t, b.db, result(r1.ID, refs[0].ID, blockreport.StatusReachable), result(r1.ID, refs[1].ID, blockreport.StatusBlocked))
			if got, _ := b.db.Run(ctx, r1.ID); got.Totals[blockreport.StatusBlocked] != 1 || got.Total() != 2 {
				t.Errorf("live totals = %v, want 1 blocked of 2", got.Totals)
			}
			if err := b.db.SetRunState(ctx, r1.ID, blockreport.RunInterrupted, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if u, ok, err := b.db.UnfinishedRun(ctx); !ok || err != nil || u.ID != r1.ID || u.State != blockreport.RunInterrupted {
				t.Errorf("UnfinishedRun = %+v, %v, %v; want run %d interrupted", u, ok, err, r1.ID)
			}
			end := t0.Add(2 * time.Minute)
			if err := b.db.SetRunState(ctx, r1.ID, blockreport.RunFinished, end); err != nil {
				t.Fatal(err)
			}
			got, err := b.db.Run(ctx, r1.ID)
			if err != nil || got.State != blockreport.RunFinished || !got.FinishedAt.Equal(end.Truncate(time.Microsecond)) ||
				got.Totals[blockreport.StatusReachable] != 1 || got.Totals[blockreport.StatusBlocked] != 1 {
				t.Errorf("finished run = %+v, %v", got, err)
			}
			if _, ok, _ := b.db.UnfinishedRun(ctx); ok {
				t.Error("UnfinishedRun found a run after the only one finished")
			}

			r2 := createRun(t, b.db)
			r3 := createRun(t, b.db)
			if latest, err := b.db.LatestRun(ctx); err != nil || latest.ID != r3.ID {
				t.Errorf("LatestRun = %d, %v; want %d", latest.ID, err, r3.ID)
			}
			for _, c := range []struct {
				upTo  int64
				limit int
				want  []int64
			}{
				{0, 0, []int64{r3.ID, r2.ID, r1.ID}},
				{r2.ID, 0, []int64{r2.ID, r1.ID}},
				{0, 2, []int64{r3.ID, r2.ID}},
				{r2.ID, 1, []int64{r2.ID}},
			} {
				runs, err := b.db.Runs(ctx, c.upTo, c.limit)
				var ids []int64
				for _, r := range runs {
					ids = append(ids, r.ID)
				}
				if err != nil || fmt.Sprint(ids) != fmt.Sprint(c.want) {
					t.Errorf("Runs(%d, %d) = %v, %v; want %v", c.upTo, c.limit, ids, err, c.want)
				}
				if len(runs) > 0 && runs[len(runs)-1].ID == r1.ID && runs[len(runs)-1].Total() != 2 {
					t.Errorf("Runs: totals of run %d missing", r1.ID)
				}
			}
			if _, err := b.db.Run(ctx, 999); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Run(999): %v, want ErrNotFound", err)
			}
			if err := b.db.SetRunState(ctx, 999, blockreport.RunFailed, end); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SetRunState(999): %v, want ErrNotFound", err)
			}
		})
	}
}

func result(run, refID int64, s blockreport.Status) blockreport.Result {
	return blockreport.Result{RunID: run, ReferenceID: refID, Status: s, Reason: "code-" + string(s), HTTPStatus: 403,
		Detail: "detail", Attempts: 2, Latency: 1500 * time.Millisecond, ProbedAt: t0.Add(time.Second)}
}

func save(t *testing.T, db *store.DB, rs ...blockreport.Result) {
	t.Helper()
	if err := db.SaveResults(context.Background(), rs); err != nil {
		t.Fatalf("SaveResults: %v", err)
	}
}

func TestLock(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			other := openURL(t, b.url) // as a second process would
			release, err := b.db.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock: %v", err)
			}
			if _, err := other.Lock(ctx); !errors.Is(err, store.ErrLocked) {
				t.Errorf("Lock while held: %v, want ErrLocked", err)
			}
			release()
			release() // harmless
			release2, err := other.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock after release: %v", err)
			}
			release2()
		})
	}
}

func TestPendingAndSaveResults(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			var refs []blockreport.Reference
			for i := range 1200 { // more than one page
				refs = append(refs, ref("t1", fmt.Sprintf("a:%d", i), fmt.Sprintf("29:%d", i), "U"))
			}
			optedOut := ref("t2", "a:x", "29:x", "X")
			optedOut.OptedOut = true
			refs = append(refs, optedOut)
			if _, err := b.db.UpsertReferences(ctx, refs, t0); err != nil {
				t.Fatal(err)
			}
			run := createRun(t, b.db)
			tenants, err := b.db.PendingTenants(ctx, run.ID)
			if err != nil || fmt.Sprint(tenants) != "[t1 t2]" {
				t.Fatalf("PendingTenants = %v, %v; want [t1 t2]", tenants, err)
			}
			// Record the first 10 before streaming: they must be skipped.
			first := pending(t, b.db, run.ID, "t1")[:10]
			for _, r := range first {
				save(t, b.db, result(run.ID, r.ID, blockreport.StatusReachable))
			}
			// Saving from inside the callback must not deadlock (SQLite has
			// one connection) and must not disturb the paging.
			seen := map[int64]bool{}
			var last int64
			err = b.db.Pending(ctx, run.ID, "t1", func(r blockreport.Reference) error {
				if seen[r.ID] || r.ID <= last {
					t.Fatalf("reference %d out of order or seen twice", r.ID)
				}
				seen[r.ID], last = true, r.ID
				return b.db.SaveResults(ctx, []blockreport.Result{result(run.ID, r.ID, blockreport.StatusBlocked)})
			})
			if err != nil {
				t.Fatalf("Pending: %v", err)
			}
			if len(seen) != 1190 {
				t.Errorf("Pending gave %d references, want 1190", len(seen))
			}
			for _, r := range first {
				if seen[r.ID] {
					t.Errorf("Pending gave reference %d that already had a result", r.ID)
				}
			}
			if tenants, _ := b.db.PendingTenants(ctx, run.ID); fmt.Sprint(tenants) != "[t2]" {
				t.Errorf("PendingTenants after t1 = %v, want [t2]", tenants)
			}
			// Opted-out references are the caller's business: still pending.
			if got := pending(t, b.db, run.ID, "t2"); len(got) != 1 || !got[0].OptedOut {
				t.Errorf("Pending(t2) = %+v, want the opted-out reference", got)
			}
			// Saving again is a no-op, and the first result is kept.
			save(t, b.db, result(run.ID, first[0].ID, blockreport.StatusFailed))
			if n, err := b.db.CountResults(ctx, run.ID); err != nil || n != 1200 {
				t.Errorf("CountResults = %d, %v; want 1200", n, err)
			}
			if got, _ := b.db.Run(ctx, run.ID); got.Totals[blockreport.StatusFailed] != 0 || got.Totals[blockreport.StatusReachable] != 10 {
				t.Errorf("totals after a repeated save = %v", got.Totals)
			}
			// An error from fn stops the stream and comes back as is.
			stop := errors.New("stop")
			if err := b.db.Pending(ctx, run.ID, "t2", func(blockreport.Reference) error { return stop }); err != stop {
				t.Errorf("Pending returned %v, want fn's error", err)
			}
			if err := b.db.SaveResults(ctx, []blockreport.Result{result(999, first[0].ID, blockreport.StatusFailed)}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SaveResults for a missing run: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestStatusHistory: previous_status and status_since come from the
// latest earlier finished run; a failed or interrupted run in between is
// never the baseline of a change.
func TestStatusHistory(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{ref("t1", "a:1", "29:1", "A")}, t0); err != nil {
				t.Fatal(err)
			}
			id := pending(t, b.db, 0, "t1")[0].ID
			runs := []struct {
				status blockreport.Status
				state  blockreport.RunState
			}{
				{blockreport.StatusReachable, blockreport.RunFinished},
				{blockreport.StatusReachable, blockreport.RunFinished},
				{blockreport.StatusFailed, blockreport.RunFailed},
				{blockreport.StatusUninstalled, blockreport.RunInterrupted},
				{blockreport.StatusBlocked, blockreport.RunFinished},
				{blockreport.StatusBlocked, blockreport.RunFinished},
			}
			var starts []time.Time
			for i, r := range runs {
				start := t0.Add(time.Duration(i) * 24 * time.Hour)
				run, err := b.db.CreateRun(ctx, "full", nil, start)
				if err != nil {
					t.Fatal(err)
				}
				starts = append(starts, run.StartedAt)
				save(t, b.db, result(run.ID, id, r.status))
				if err := b.db.SetRunState(ctx, run.ID, r.state, start.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			want := []struct {
				prev  blockreport.Status
				since time.Time
			}{
				{"", starts[0]},
				{blockreport.StatusReachable, starts[0]},
				{blockreport.StatusReachable, starts[2]},
				{blockreport.StatusReachable, starts[3]}, // not the failed run 3
				{blockreport.StatusReachable, starts[4]}, // nor the interrupted run 4
				{blockreport.StatusBlocked, starts[4]},
			}
			for i, w := range want {
				rows := allRows(t, b.db, int64(i+1))
				if len(rows) != 1 || rows[0].PreviousStatus != w.prev || !rows[0].StatusSince.Equal(w.since) {
					t.Errorf("run %d: rows = %+v; want previous %q since %v", i+1, rows, w.prev, w.since)
				}
			}
		})
	}
}

func allRows(t *testing.T, db *store.DB, runID int64) []blockreport.Row {
	t.Helper()
	var rows []blockreport.Row
	if err := db.Rows(context.Background(), runID, func(r blockreport.Row) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatalf("Rows: %v", err)
	}
	return rows
}

func TestNewConversationID(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			// A personal reference without a conversation: the probe
			// creates the 1:1 and the store keeps its id.
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{ref("t1", "", "29:1", "A")}, t0); err != nil {
				t.Fatal(err)
			}
			run := createRun(t, b.db)
			r := pending(t, b.db, run.ID, "t1")[0]
			res := result(run.ID, r.ID, blockreport.StatusReachable)
			res.NewConversationID = "a:new"
			save(t, b.db, res)
			if got := pending(t, b.db, 0, "t1"); got[0].ConversationID != "a:new" {
				t.Errorf("conversation id = %q, want a:new", got[0].ConversationID)
			}
			// Importing the reference again updates that row instead of
			// adding a second one for the same user.
			again := ref("t1", "", "29:1", "A (renamed)")
			if c, err := b.db.UpsertReferences(ctx, []blockreport.Reference{again}, t0); err != nil || c != (store.ImportCounts{Updated: 1}) {
				t.Errorf("re-import = %+v, %v; want 1 updated", c, err)
			}
			if got := pending(t, b.db, 0, "t1"); len(got) != 1 || got[0].ConversationID != "a:new" || got[0].UserName != "A (renamed)" {
				t.Errorf("after re-import: %+v", got)
			}
		})
	}
}

func TestRowsOrderAndJoin(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			in := []blockreport.Reference{
				ref("t2", "a:1", "29:1", "Amy"),
				ref("t1", "a:2", "29:2", "Zoe"),
				ref("t1", "a:3", "29:3", "Bob"),
				ref("t1", "a:4", "29:4", "Bob"),
				ref("t1", "a:5", "29:5", "Not probed"),
			}
			in[0].Email = "amy@example.com"
			if _, err := b.db.UpsertReferences(ctx, in, t0); err != nil {
				t.Fatal(err)
			}
			run := createRun(t, b.db)
			var rs []blockreport.Result
			for _, tenant := range []string{"t1", "t2"} {
				for _, r := range pending(t, b.db, run.ID, tenant) {
					if r.UserName != "Not probed" {
						rs = append(rs, result(run.ID, r.ID, blockreport.StatusUninstalled))
					}
				}
			}
			save(t, b.db, rs...)
			var got []string
			rows := allRows(t, b.db, run.ID)
			for _, r := range rows {
				got = append(got, r.TenantID+"/"+r.UserName+"/"+r.ConversationID)
			}
			if want := "t1/Bob/a:3 t1/Bob/a:4 t1/Zoe/a:2 t2/Amy/a:1"; strings.Join(got, " ") != want {
				t.Errorf("Rows order = %v, want %s", got, want)
			}
			last := rows[3]
			if last.Email != "amy@example.com" || last.RunID != run.ID || last.ReferenceID != last.ID ||
				last.Status != blockreport.StatusUninstalled || last.Reason != "code-uninstalled" ||
				last.HTTPStatus != 403 || last.Detail != "detail" || last.Attempts != 2 ||
				last.Latency != 1500*time.Millisecond || !last.ProbedAt.Equal(t0.Add(time.Second).Truncate(time.Microsecond)) ||
				last.ServiceURL != in[0].ServiceURL || last.ConversationType != blockreport.ConversationPersonal {
				t.Errorf("joined row = %+v", last)
			}
			stop := errors.New("stop")
			if err := b.db.Rows(ctx, run.ID, func(blockreport.Row) error { return stop }); err != stop {
				t.Errorf("Rows returned %v, want fn's error", err)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url, driver, err string
	}{
		{"postgres://u:pw@db.example.com/blockreport", "postgres", ""},
		{"postgresql://db.example.com/blockreport?sslmode=disable", "postgres", ""},
		{"sqlite:blockreport.db", "sqlite", ""},
		{"sqlite:///var/lib/blockreport.db", "sqlite", ""},
		{"sqlite:", "", "want sqlite:PATH"},
		{"sqlite:a?b.db", "", "must not contain"},
		{"mysql://u:topsecret@h/db", "", "want postgres://"},
		{"blockreport.db", "", "want postgres://"},
		{"postgres://u:topsecret@h:port/db", "", "invalid port"},
	} {
		driver, dsn, err := store.ParseURL(c.url)
		if c.err == "" {
			if err != nil || driver != c.driver || dsn == "" {
				t.Errorf("ParseURL(%q) = %q, %q, %v; want driver %q", c.url, driver, dsn, err, c.driver)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseURL(%q) error = %v, want one containing %q", c.url, err, c.err)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("ParseURL(%q) error shows the password: %v", c.url, err)
		}
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	// Port 1 on loopback refuses at once.
	_, err := store.Open(context.Background(), "postgres://u:topsecret@127.0.0.1:1/db?sslmode=disable", nil)
	if err == nil {
		t.Fatal("Open succeeded on a closed port")
	}
	if msg := err.Error(); strings.Contains(msg, "topsecret") || strings.Contains(msg, "\n") || !strings.Contains(msg, "connect to postgres://u:xxxxx@127.0.0.1:1/db") {
		t.Errorf("Open error = %q; want one line naming the redacted URL", msg)
	}
}

func TestOpenSilentPostgres(t *testing.T) {
	// A server that accepts connections and never answers: Open must give
	// up on its own (connect_timeout and a bounded ping), with one line.
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	url := "postgres://u:topsecret@" + ln.Addr().String() + "/db?sslmode=disable"
	_, err = store.Open(context.Background(), url, nil)
	if err == nil {
		t.Fatal("Open succeeded against a silent server")
	}
	t.Logf("Open error: %v", err)
	if msg := err.Error(); strings.Contains(msg, "topsecret") || strings.Contains(msg, "\n") || !strings.Contains(msg, "connect to postgres://u:xxxxx@") {
		t.Errorf("Open error = %q; want one line naming the redacted URL", msg)
	}
}

func TestOpenSQLiteCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	openURL(t, "sqlite:"+path)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not created: %v", err)
	}
	if _, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "missing", "dir", "x.db"), nil); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// rawDB opens the backend's database directly, for what the store API does
// not offer (listing tables, deleting a reference behind the store's back).
func rawDB(t *testing.T, b backend) *sql.DB {
	t.Helper()
	driver, dsn, err := store.ParseURL(b.url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	x, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func TestSchemaTables(t *testing.T) {
	queries := map[string]string{
		"sqlite":   `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
		"postgres": `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`,
	}
	want := []string{"conversation_references", "coverage_users", "directory_users", "goose_db_version", "graph_checks", "probe_results", "probe_runs", "probe_sends", "run_tenants", "tenants"}
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			rows, err := rawDB(t, b).QueryContext(context.Background(), queries[b.name])
			if err != nil {
				t.Fatalf("list tables: %v", err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatalf("list tables: %v", err)
				}
				got = append(got, name)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("list tables: %v", err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("tables = %q, want %q (no unused tables)", got, want)
			}
		})
	}
}

func TestSaveResultsSkipsDeletedReferences(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{ref("t1", "a:1", "29:1", "A"), ref("t1", "a:2", "29:2", "B")}, t0); err != nil {
				t.Fatalf("UpsertReferences: %v", err)
			}
			run := createRun(t, b.db)
			refs := pending(t, b.db, run.ID, "t1")
			// The reference is deleted while its probe is in flight.
			if _, err := rawDB(t, b).ExecContext(ctx, `DELETE FROM conversation_references WHERE id = `+fmt.Sprint(refs[0].ID)); err != nil {
				t.Fatalf("delete reference: %v", err)
			}
			if err := b.db.SaveResults(ctx, []blockreport.Result{
				result(run.ID, refs[0].ID, blockreport.StatusReachable),
				result(run.ID, refs[1].ID, blockreport.StatusBlocked),
			}); err != nil {
				t.Fatalf("SaveResults with one deleted reference: %v", err)
			}
			rows := allRows(t, b.db, run.ID)
			if len(rows) != 1 || rows[0].ReferenceID != refs[1].ID || rows[0].Status != blockreport.StatusBlocked {
				t.Errorf("rows = %+v, want only the result of reference %d", rows, refs[1].ID)
			}
			// Only orphans: nothing to write, no error.
			if err := b.db.SaveResults(ctx, []blockreport.Result{result(run.ID, refs[0].ID, blockreport.StatusReachable)}); err != nil {
				t.Errorf("SaveResults of only a deleted reference: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://bob:hunter2@db.example.com/br", "postgres://bob:xxxxx@db.example.com/br"},
		{"postgres://bob@db/br?password=hunter2", "postgres://bob@db/br?password=xxxxx"},
		{"postgres://bob@db/br?sslmode=verify-full&sslpassword=hunter2&connect_timeout=5", "postgres://bob@db/br?sslmode=verify-full&sslpassword=xxxxx&connect_timeout=5"},
		{"postgresql://db/br?PassWord=hunter2", "postgresql://db/br?PassWord=xxxxx"},
		{"postgres://db/br?pass%77ord=hunter2", "postgres://db/br?pass%77ord=xxxxx"},
		{"postgres://db/br?sslmode=disable;password=hunter2", "postgres://db/br?sslmode=disable;password=xxxxx"},
		{"postgres://bob:hunter2@db/br?password=hunter2", "postgres://bob:xxxxx@db/br?password=xxxxx"},
		{"postgres://db/br?sslmode=disable", "postgres://db/br?sslmode=disable"},
		{"host=db user=bob password=hunter2 dbname=br", "host=db user=bob password=xxxxx dbname=br"},
		{"host=db password = 'hunter2 \\' x' sslpassword=hunter2", "host=db password=xxxxx sslpassword=xxxxx"},
		{"postgres://u:hunter2@[::1/x", "postgres://(unparsable URL)"},
		{"sqlite:blockreport.db", "sqlite:blockreport.db"},
		{"sqlite:/var/lib/my%zz@db", "sqlite:/var/lib/my%zz@db"},
	} {
		if got := store.RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestOpenHidesQueryPassword(t *testing.T) {
	for _, url := range []string{
		"postgres://bob@127.0.0.1:1/db?password=hunter2&sslmode=disable",
		"postgres://bob@127.0.0.1:1/db?sslmode=disable&sslpassword=hunter2",
		"host=127.0.0.1 port=1 password=hunter2",
	} {
		_, err := store.Open(context.Background(), url, nil)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", url)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

func TestCheckLock(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			if err := b.db.CheckLock(ctx); !errors.Is(err, store.ErrLockLost) {
				t.Errorf("CheckLock without the lock: %v, want ErrLockLost", err)
			}
			release, err := b.db.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock: %v", err)
			}
			if err := b.db.CheckLock(ctx); err != nil {
				t.Errorf("CheckLock while held: %v", err)
			}
			release()
			if err := b.db.CheckLock(ctx); !errors.Is(err, store.ErrLockLost) {
				t.Errorf("CheckLock after release: %v, want ErrLockLost", err)
			}
		})
	}
}

// TestCheckLockAfterRestart: a PostgreSQL restart drops the advisory lock
// with its session. CheckLock takes it back when nobody else did, and
// reports it lost when another process took it in between.
func TestCheckLockAfterRestart(t *testing.T) {
	ctx := context.Background()
	c := pgtest.NewCluster(t)
	url := c.NewDatabase(t)
	db := openURL(t, url)
	release, err := db.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer release()
	restart := func() {
		t.Helper()
		if err := c.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := c.Start(); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = db.CheckLock(down)
	cancel()
	if err == nil || errors.Is(err, store.ErrLockLost) {
		t.Errorf("CheckLock with the server down: %v, want an error that is not ErrLockLost (retryable)", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := db.CheckLock(ctx); err != nil {
		t.Fatalf("CheckLock after a restart, lock free: %v, want it re-acquired", err)
	}
	// Really held again: a second process cannot take it.
	if _, err := openURL(t, url).Lock(ctx); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Lock by another process after the re-acquire: %v, want ErrLocked", err)
	}

	restart()
	other := openURL(t, url) // a second process, started during the outage's aftermath
	releaseOther, err := other.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock by another process after the restart: %v", err)
	}
	defer releaseOther()
	if err := db.CheckLock(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("CheckLock with the lock taken by another process: %v, want ErrLockLost", err)
	}
	// Lost stays lost: the other process may have resumed the run.
	releaseOther()
	if err := db.CheckLock(ctx); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("CheckLock after the other process released it: %v, want ErrLockLost still", err)
	}
	release()
	if _, err := openURL(t, url).Lock(ctx); err != nil {
		t.Errorf("Lock after release: %v", err)
	}
}
