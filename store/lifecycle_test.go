package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/store"
)

// seedRefs stores n references in tenant t1 and returns them in id order.
func seedRefs(t *testing.T, db *store.DB, n int) []blockreport.Reference {
	t.Helper()
	var refs []blockreport.Reference
	for i := range n {
		refs = append(refs, ref("t1", fmt.Sprintf("a:%d", i), fmt.Sprintf("29:%d", i), "U"))
	}
	if _, err := db.UpsertReferences(context.Background(), refs, t0); err != nil {
		t.Fatal(err)
	}
	return pending(t, db, 0, "t1")
}

func ids(refs []blockreport.Reference) []int64 {
	out := make([]int64, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// TestClaimSendsIsExclusive: two processes claiming the same references at
// once never both get one; a claim survives a reopen of the store, and
// only claims without a result can be released.
func TestClaimSendsIsExclusive(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			refs := ids(seedRefs(t, b.db, 200))
			run := createRun(t, b.db)
			other := openURL(t, b.url) // as a second process would
			var mu sync.Mutex
			got := map[int64]int{}
			var wg sync.WaitGroup
			for _, db := range []*store.DB{b.db, other} {
				wg.Go(func() {
					for start := 0; start < len(refs); start += 10 {
						claimed, err := db.ClaimSends(ctx, run.ID, refs[start:min(start+10, len(refs))], t0)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, id := range claimed {
							got[id]++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, id := range refs {
				if got[id] != 1 {
					t.Errorf("reference %d claimed %d times, want exactly once", id, got[id])
				}
			}
			if again, err := openURL(t, b.url).ClaimSends(ctx, run.ID, refs[:5], t0); err != nil || len(again) != 0 {
				t.Errorf("claiming again after a reopen = %v, %v; want nothing", again, err)
			}
			// Claims are per run.
			run2 := createRun(t, b.db)
			if c, err := b.db.ClaimSends(ctx, run2.ID, []int64{refs[0], refs[0]}, t0); err != nil || !slices.Equal(c, []int64{refs[0]}) {
				t.Errorf("claim in another run = %v, %v; want [%d] once", c, err, refs[0])
			}

			save(t, b.db, result(run.ID, refs[0], blockreport.StatusReachable))
			if err := b.db.ReleaseSends(ctx, run.ID, refs[:2]); err != nil {
				t.Fatal(err)
			}
			if c, _ := b.db.ClaimSends(ctx, run.ID, refs[:2], t0); !slices.Equal(c, refs[1:2]) {
				t.Errorf("after release, claimable = %v, want only %d (the other has a result)", c, refs[1])
			}
			claimed, unanswered, err := b.db.CountSends(ctx, run.ID)
			if err != nil || claimed != 200 || unanswered != 199 {
				t.Errorf("CountSends = %d, %d, %v; want 200, 199", claimed, unanswered, err)
			}
		})
	}
}

// TestFinishRunWaitsForEveryReference: a run with a reference still
// without a result is not finished; once it has one, it is.
func TestFinishRunWaitsForEveryReference(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			refs := seedRefs(t, b.db, 3)
			run := createRun(t, b.db)
			for _, r := range refs[:2] {
				save(t, b.db, result(run.ID, r.ID, blockreport.StatusReachable))
			}
			if n, err := b.db.CountPending(ctx, run.ID); err != nil || n != 1 {
				t.Errorf("CountPending = %d, %v; want 1", n, err)
			}
			if ok, err := b.db.FinishRun(ctx, run.ID, t0); err != nil || ok {
				t.Fatalf("FinishRun with a pending reference = %v, %v; want false", ok, err)
			}
			if r, _ := b.db.Run(ctx, run.ID); r.State != blockreport.RunRunning || !r.FinishedAt.IsZero() {
				t.Errorf("run after a refused finish: %+v", r)
			}
			save(t, b.db, result(run.ID, refs[2].ID, blockreport.StatusBlocked))
			if ok, err := b.db.FinishRun(ctx, run.ID, t0.Add(time.Hour)); err != nil || !ok {
				t.Fatalf("FinishRun = %v, %v; want true", ok, err)
			}
			r, err := b.db.Run(ctx, run.ID)
			if err != nil || r.State != blockreport.RunFinished || r.Totals[blockreport.StatusBlocked] != 1 || r.Total() != 3 {
				t.Errorf("finished run = %+v, %v", r, err)
			}
			if latest, err := b.db.LatestFinishedRun(ctx); err != nil || latest.ID != run.ID {
				t.Errorf("LatestFinishedRun = %d, %v; want %d", latest.ID, err, run.ID)
			}
			createRun(t, b.db) // newer, unfinished
			if latest, err := b.db.LatestFinishedRun(ctx); err != nil || latest.ID != run.ID {
				t.Errorf("LatestFinishedRun with a newer unfinished run = %d, %v; want %d", latest.ID, err, run.ID)
			}
			if _, err := b.db.FinishRun(ctx, 999, t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("FinishRun(999): %v, want ErrNotFound", err)
			}
		})
	}
}

// TestReopenResults: the chosen results and their send claims go, the
// others stay, and the run is running again.
func TestReopenResults(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			refs := ids(seedRefs(t, b.db, 5))
			run := createRun(t, b.db)
			if _, err := b.db.ReopenResults(ctx, run.ID, []blockreport.Status{blockreport.StatusFailed}, nil); err == nil {
				t.Error("ReopenResults on a running run succeeded")
			}
			unknown := result(run.ID, refs[3], blockreport.StatusFailed)
			unknown.Reason = "DeliveryUnknown"
			save(t, b.db,
				result(run.ID, refs[0], blockreport.StatusReachable),
				result(run.ID, refs[1], blockreport.StatusFailed),
				result(run.ID, refs[2], blockreport.StatusThrottled),
				unknown,
				result(run.ID, refs[4], blockreport.StatusBlocked))
			if _, err := b.db.ClaimSends(ctx, run.ID, refs, t0); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.db.FinishRun(ctx, run.ID, t0); !ok || err != nil {
				t.Fatalf("FinishRun = %v, %v", ok, err)
			}
			n, err := b.db.ReopenResults(ctx, run.ID, []blockreport.Status{blockreport.StatusFailed, blockreport.StatusThrottled}, []string{"DeliveryUnknown"})
			if err != nil || n != 2 {
				t.Fatalf("ReopenResults = %d, %v; want 2", n, err)
			}
			r, _ := b.db.Run(ctx, run.ID)
			if r.State != blockreport.RunRunning || r.Total() != 3 {
				t.Errorf("reopened run = %+v; want running with 3 results", r)
			}
			if got := ids(pending(t, b.db, run.ID, "t1")); !slices.Equal(got, refs[1:3]) {
				t.Errorf("pending after reopen = %v, want %v", got, refs[1:3])
			}
			if c, _ := b.db.ClaimSends(ctx, run.ID, refs, t0); !slices.Equal(c, refs[1:3]) {
				t.Errorf("claimable after reopen = %v, want %v (the kept DeliveryUnknown stays claimed)", c, refs[1:3])
			}
		})
	}
}

// TestDeleteRuns removes runs with their results in one go; a missing id
// deletes nothing.
func TestDeleteRuns(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			refs := ids(seedRefs(t, b.db, 4))
			var runs []blockreport.Run
			for range 3 {
				r := createRun(t, b.db)
				for _, id := range refs {
					save(t, b.db, result(r.ID, id, blockreport.StatusReachable))
				}
				if _, err := b.db.ClaimSends(ctx, r.ID, refs, t0); err != nil {
					t.Fatal(err)
				}
				runs = append(runs, r)
			}
			if _, err := b.db.DeleteRuns(ctx, []int64{runs[0].ID, 999}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteRuns with a missing id: %v, want ErrNotFound", err)
			}
			if n, _ := b.db.CountResults(ctx, runs[0].ID); n != 4 {
				t.Errorf("a failed delete removed results: %d left of 4", n)
			}
			n, err := b.db.DeleteRuns(ctx, []int64{runs[0].ID, runs[1].ID})
			if err != nil || n != 8 {
				t.Fatalf("DeleteRuns = %d, %v; want 8 results", n, err)
			}
			left, _ := b.db.Runs(ctx, 0, 0)
			if len(left) != 1 || left[0].ID != runs[2].ID {
				t.Errorf("runs left = %+v, want only run %d", left, runs[2].ID)
			}
			for _, r := range runs[:2] {
				if n, _ := b.db.CountResults(ctx, r.ID); n != 0 {
					t.Errorf("run %d still has %d results", r.ID, n)
				}
				if c, _, _ := b.db.CountSends(ctx, r.ID); c != 0 {
					t.Errorf("run %d still has %d send records", r.ID, c)
				}
			}
			if n, _ := b.db.CountReferences(ctx); n != 4 {
				t.Errorf("references after delete = %d, want 4 (they are the bot's, not the run's)", n)
			}
		})
	}
}

func TestServiceURLs(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			a, c, d := ref("t1", "a:1", "29:1", "A"), ref("t1", "a:2", "29:2", "B"), ref("t1", "a:3", "29:3", "C")
			d.ServiceURL = "https://evil.example/"
			out := ref("t1", "a:4", "29:4", "D")
			out.ServiceURL, out.OptedOut = "https://opted.example/", true
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{a, c, d, out}, t0); err != nil {
				t.Fatal(err)
			}
			got, err := b.db.ServiceURLs(ctx)
			want := []store.ServiceURLCount{{URL: a.ServiceURL, References: 2}, {URL: d.ServiceURL, References: 1}}
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("ServiceURLs = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

// TestOpenExistingCreatesNothing: a reading command's open of a missing
// SQLite file fails naming the path and leaves no file behind.
func TestOpenExistingCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	_, err := store.OpenExisting(context.Background(), "sqlite:"+path, nil)
	if !errors.Is(err, store.ErrNoStore) || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenExisting(missing) = %v; want ErrNoStore naming %s", err, path)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("OpenExisting created %v", ents)
	}
	if _, err := store.OpenExisting(context.Background(), "sqlite:"+dir, nil); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("OpenExisting(directory) = %v", err)
	}
	db := openURL(t, "sqlite:"+path)
	db.Close()
	if x, err := store.OpenExisting(context.Background(), "sqlite:"+path, nil); err != nil {
		t.Errorf("OpenExisting(existing) = %v", err)
	} else {
		x.Close()
	}
}

// TestStoreFileModes: the SQLite file, its -wal and -shm files and the lock
// file are created readable by their owner only, whatever the umask.
func TestStoreFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix file modes")
	}
	path := filepath.Join(t.TempDir(), "b.db")
	db := openURL(t, "sqlite:"+path)
	seedRefs(t, db, 3) // writes: the WAL files exist now
	release, err := db.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Errorf("%s: %v", suffix, err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(path+suffix), fi.Mode().Perm())
		}
	}
}
