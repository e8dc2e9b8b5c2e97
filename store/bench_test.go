package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/store"
)

// benchRefs returns n realistic references over 10 tenants.
func benchRefs(n int) []blockreport.Reference {
	refs := make([]blockreport.Reference, n)
	for i := range refs {
		tenant := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i%10)
		user := fmt.Sprintf("29:1%031d", i)
		conv := fmt.Sprintf("a:1%063d", i)
		refs[i] = blockreport.Reference{
			TenantID: tenant, UserID: user, AADObjectID: fmt.Sprintf("%08d-aaaa-4000-8000-000000000000", i),
			UserName: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("user%d@contoso.com", i),
			ConversationID: conv, ConversationType: blockreport.ConversationPersonal,
			ServiceURL: "https://smba.trafficmanager.net/amer/", BotID: "28:c9e8c047-0000-4000-8000-000000000000",
			ChannelID: "msteams", Locale: "en-US",
		}
		refs[i].Raw, _ = json.Marshal(map[string]any{
			"activityId": fmt.Sprint(1485983408511 + i), "user": map[string]string{"id": user, "name": refs[i].UserName},
			"bot":          map[string]string{"id": refs[i].BotID},
			"conversation": map[string]string{"conversationType": "personal", "id": conv, "tenantId": tenant},
			"channelId":    "msteams", "locale": "en-US", "serviceUrl": refs[i].ServiceURL,
		})
	}
	return refs
}

// BenchmarkUpsertReferences100k imports 100,000 new references into an
// empty store, one transaction.
func BenchmarkUpsertReferences100k(b *testing.B) {
	refs := benchRefs(100_000)
	for _, be := range []string{"sqlite", "postgres"} {
		b.Run(be, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := openBench(b, be)
				b.StartTimer()
				counts, err := db.UpsertReferences(context.Background(), refs, time.Now())
				if err != nil || counts.Added != len(refs) {
					b.Fatalf("UpsertReferences = %+v, %v", counts, err)
				}
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkReimportReferences100k imports the same 100,000 references
// again: all unchanged, last_seen moves.
func BenchmarkReimportReferences100k(b *testing.B) {
	refs := benchRefs(100_000)
	for _, be := range []string{"sqlite", "postgres"} {
		b.Run(be, func(b *testing.B) {
			db := openBench(b, be)
			defer db.Close()
			if _, err := db.UpsertReferences(context.Background(), refs, time.Now()); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				counts, err := db.UpsertReferences(context.Background(), refs, time.Now())
				if err != nil || counts.Unchanged != len(refs) {
					b.Fatalf("UpsertReferences = %+v, %v", counts, err)
				}
			}
		})
	}
}

func openBench(b *testing.B, backend string) *store.DB {
	b.Helper()
	url := "sqlite:" + filepath.Join(b.TempDir(), "bench.db")
	if backend == "postgres" {
		url = pgtest.URL(b)
	}
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		b.Fatal(err)
	}
	return db
}
