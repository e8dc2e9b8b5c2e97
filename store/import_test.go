package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/store"
)

// TestImportDuplicatesAcrossChunks: references with the same key in one
// import collapse to the last one and count once against what was stored
// before the import, whether they fall in one chunk or in several.
func TestImportDuplicatesAcrossChunks(t *testing.T) {
	named := func(tenant, name string) blockreport.Reference { return ref(tenant, "a:1", "29:1", name) }
	cases := []struct {
		name   string
		stored string   // the stored user name before the import, "" for none
		input  []string // user names of the same key, in order
		want   string   // the count it must add to: added, updated or unchanged
	}{
		{"new twice", "", []string{"X", "Y"}, "added"},
		{"same then changed", "A", []string{"A", "B"}, "updated"},
		{"changed then back", "A", []string{"B", "A"}, "unchanged"},
		{"changed twice", "A", []string{"B", "C"}, "updated"},
		{"same twice", "A", []string{"A", "A"}, "unchanged"},
		{"changed, same again", "A", []string{"B", "B"}, "updated"},
		{"changed, back, changed", "A", []string{"B", "A", "B"}, "updated"},
		{"back and forth", "A", []string{"A", "B", "A"}, "unchanged"},
	}
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			for _, size := range []int{1, 2, 3, 1000} {
				tenant := func(i int) string { return fmt.Sprintf("c%d-%d", size, i) }
				var seed []blockreport.Reference
				var want store.ImportCounts
				for i, c := range cases {
					if c.stored != "" {
						seed = append(seed, named(tenant(i), c.stored))
					}
					switch c.want {
					case "added":
						want.Added++
					case "updated":
						want.Updated++
					default:
						want.Unchanged++
					}
				}
				if _, err := b.db.UpsertReferences(ctx, seed, t0); err != nil {
					t.Fatal(err)
				}
				// Interleave the cases, so that with small chunks every
				// duplicate is in a later chunk than the one before it.
				var input []blockreport.Reference
				for j := 0; ; j++ {
					more := false
					for i, c := range cases {
						if j < len(c.input) {
							input = append(input, named(tenant(i), c.input[j]))
							more = true
						}
					}
					if !more {
						break
					}
				}
				im, err := b.db.BeginImport(ctx, t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				store.SetChunkSize(im, size)
				for _, r := range input {
					if err := im.Add(ctx, r); err != nil {
						t.Fatal(err)
					}
				}
				got, err := im.Commit(ctx)
				if err != nil || got != want {
					t.Errorf("chunks of %d: counts %+v, %v; want %+v", size, got, err, want)
				}
				for i, c := range cases {
					refs := pending(t, b.db, 0, tenant(i))
					if len(refs) != 1 || refs[0].UserName != c.input[len(c.input)-1] {
						t.Errorf("chunks of %d, %s: stored %+v, want one reference named %q", size, c.name, refs, c.input[len(c.input)-1])
					}
				}
			}
		})
	}
}

// TestImportRollsBack: nothing an import session wrote survives a
// rollback, or a bad reference at the very end of a large import.
func TestImportRollsBack(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			seed := ref("t1", "a:0", "29:0", "Seed")
			if _, err := b.db.UpsertReferences(ctx, []blockreport.Reference{seed}, t0); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []bool{false, true} {
				im, err := b.db.BeginImport(ctx, t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				store.SetChunkSize(im, 100)
				renamed := seed
				renamed.UserName = "Changed"
				if err := im.Add(ctx, renamed); err != nil {
					t.Fatal(err)
				}
				for i := range 1000 {
					if err := im.Add(ctx, ref("t1", fmt.Sprintf("a:%d", i+1), fmt.Sprintf("29:%d", i+1), "N")); err != nil {
						t.Fatal(err)
					}
				}
				if bad {
					last := ref("t1", "a:x", "29:x", "Bad")
					last.ServiceURL = "" // the store refuses it
					if err := im.Add(ctx, last); err != nil {
						t.Fatal(err)
					}
					if _, err := im.Commit(ctx); err == nil {
						t.Fatal("Commit with a bad last reference succeeded")
					}
					if err := im.Add(ctx, seed); err == nil {
						t.Error("Add after a failed Commit succeeded")
					}
				} else {
					im.Rollback()
				}
				im.Rollback() // again: harmless
				if n, err := b.db.CountReferences(ctx); err != nil || n != 1 {
					t.Errorf("bad=%v: %d references after the rollback, %v; want the 1 stored before", bad, n, err)
				}
				if refs := pending(t, b.db, 0, "t1"); len(refs) != 1 || refs[0].UserName != "Seed" {
					t.Errorf("bad=%v: stored %+v, want the seed unchanged", bad, refs)
				}
			}
			// And the store takes a new import afterwards.
			if c, err := b.db.UpsertReferences(ctx, []blockreport.Reference{seed}, t0.Add(2*time.Hour)); err != nil || c.Unchanged != 1 {
				t.Errorf("import after rollbacks = %+v, %v", c, err)
			}
		})
	}
}
