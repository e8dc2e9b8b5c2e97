package store_test

import (
	"context"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/store"
)

func storedRefs(t *testing.T, b backend) map[string]blockreport.Reference {
	t.Helper()
	rows, err := rawDB(t, b).Query(`SELECT tenant_id, conversation_id, user_id, aad_object_id, source, source_key FROM conversation_references ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]blockreport.Reference{}
	for rows.Next() {
		var r blockreport.Reference
		if err := rows.Scan(&r.TenantID, &r.ConversationID, &r.UserID, &r.AADObjectID, &r.Source, &r.SourceKey); err != nil {
			t.Fatal(err)
		}
		m[r.Key()] = r
	}
	return m
}

func upsert(t *testing.T, db *store.DB, refs ...blockreport.Reference) store.ImportCounts {
	t.Helper()
	c, err := db.UpsertReferences(context.Background(), refs, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProvenance: each reference remembers the source and key it was last
// imported from; a new source alone is no change.
func TestProvenance(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			r := ref("t-1", "a:1", "29:1", "Megan")
			r.Source, r.SourceKey = "azblob://state", "proactive%2fconversations%2fa%3a1"
			if c := upsert(t, b.db, r); c.Added != 1 {
				t.Fatalf("counts %+v", c)
			}
			got := storedRefs(t, b)[r.Key()]
			if got.Source != "azblob://state" || got.SourceKey != "proactive%2fconversations%2fa%3a1" {
				t.Fatalf("stored source %q key %q", got.Source, got.SourceKey)
			}
			r.Source, r.SourceKey = "aztable://UserData", "UserData/7faf"
			if c := upsert(t, b.db, r); c.Unchanged != 1 {
				t.Fatalf("re-import from another source: %+v, want unchanged", c)
			}
			if got := storedRefs(t, b)[r.Key()]; got.Source != "aztable://UserData" || got.SourceKey != "UserData/7faf" {
				t.Fatalf("after re-import: source %q key %q", got.Source, got.SourceKey)
			}
		})
	}
}

// TestSameConversationAcrossSources: a Teams SDK record (the AAD object id
// standing in for the user) and an Agents SDK record (the 29: id) of one
// 1:1 chat are one reference, whichever comes first and whether they
// arrive in one import or two.
func TestSameConversationAcrossSources(t *testing.T) {
	const aad = "7faf8ab2-0000-4000-8000-000000000001"
	standIn := ref("t-1", "a:1", aad, "")
	standIn.AADObjectID = aad
	standIn.Source = "teams-sdk.jsonl"
	teams := ref("t-1", "a:1", "29:1", "Megan")
	teams.AADObjectID = aad
	teams.Source = "azblob://state"
	other := ref("t-1", "a:2", "29:2", "Alex") // another conversation stays apart
	for _, b := range openStores(t) {
		t.Run(b.name+"/stand-in first", func(t *testing.T) {
			upsert(t, b.db, standIn, other)
			c := upsert(t, b.db, teams)
			if c.Added != 0 || c.Updated != 1 {
				t.Fatalf("Teams id after the stand-in: %+v, want one updated", c)
			}
			got := storedRefs(t, b)
			if len(got) != 2 {
				t.Fatalf("stored %v, want 2 references", got)
			}
			if r, ok := got[teams.Key()]; !ok || r.Source != "azblob://state" {
				t.Fatalf("the stand-in row did not take the Teams id: %v", got)
			}
			// The stand-in again: still one row, with the Teams id.
			if c := upsert(t, b.db, standIn); c.Added != 0 {
				t.Fatalf("stand-in after the Teams id: %+v", c)
			}
			if got := storedRefs(t, b); len(got) != 2 || got[teams.Key()].Source != "teams-sdk.jsonl" {
				t.Fatalf("after the stand-in again: %v", got)
			}
		})
	}
	for _, b := range openStores(t) {
		t.Run(b.name+"/one import", func(t *testing.T) {
			c := upsert(t, b.db, standIn, teams, other)
			if c.Added != 2 {
				t.Fatalf("counts %+v, want 2 added", c)
			}
			if got := storedRefs(t, b); len(got) != 2 || got[teams.Key()].UserID != "29:1" {
				t.Fatalf("stored %v", got)
			}
		})
	}
}
