package store_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/internal/pgtest"
)

// TestREADMEUpsert runs the upsert statement the README gives bot
// developers against a migrated PostgreSQL store, so the README cannot
// drift from the schema: a first call adds a reference the probe will see,
// a second call with a new service URL and name updates it in place.
func TestREADMEUpsert(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "```sql\nINSERT INTO conversation_references")
	if start < 0 {
		t.Fatal("README.md has no ```sql block with the conversation_references upsert")
	}
	stmt := string(readme[start+len("```sql\n"):])
	stmt = stmt[:strings.Index(stmt, "```")]

	ctx := context.Background()
	url := pgtest.URL(t)
	db := openURL(t, url) // migrates
	raw, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	upsert := func(serviceURL, name string) {
		t.Helper()
		_, err := raw.ExecContext(ctx, stmt, "tenant-1", "29:user", "aad-1", name, "a@example.com", "a:conv",
			"personal", "", serviceURL, "28:bot", "en-US", `{"raw":true}`)
		if err != nil {
			t.Fatalf("README upsert: %v", err)
		}
	}
	upsert("https://smba.trafficmanager.net/amer/", "Ann")
	upsert("https://smba.trafficmanager.net/emea/", "Ann B.")

	if n, err := db.CountReferences(ctx); err != nil || n != 1 {
		t.Fatalf("%d references (err %v) after two upserts of one conversation, want 1", n, err)
	}
	run, err := db.CreateRun(ctx, "typing", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []blockreport.Reference
	if err := db.Pending(ctx, run.ID, "tenant-1", func(r blockreport.Reference) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ServiceURL != "https://smba.trafficmanager.net/emea/" || got[0].UserName != "Ann B." ||
		got[0].ChannelID != "msteams" || got[0].ConversationType != blockreport.ConversationPersonal {
		t.Fatalf("pending after the README upserts: %+v", got)
	}
}
