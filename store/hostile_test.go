package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
)

// sqlMeta is text that breaks naively built SQL in both dialects: quotes,
// comments, statement separators, LIKE wildcards, backslashes, PostgreSQL
// placeholders and dollar quoting, SQLite parameters, and non-ASCII
// (right-to-left override, line separator, astral plane, replacement char).
var sqlMeta = []string{
	`Robert'); DROP TABLE conversation_references;--`,
	`" OR ""="`,
	`' OR '1'='1`,
	`/* open comment`,
	`%_\%\_[a-z]^`,
	`\'; \\ \x00 \n`,
	`$1 $2 ? ?1 :name @p`,
	`$$; SELECT pg_sleep(10); $$`,
	`$tag$ x $tag$`,
	"tab\tnew\nline\r\u2028\u202ertl \U0001F600 \uFFFD",
	`E'\\x41'`,
}

// TestHostileTextRoundTrips stores SQL metacharacters in every text field
// of a reference and a result, and a 1 MB user name, and reads them back
// byte for byte, on SQLite and PostgreSQL. Long names are stored as given:
// only the reports cut text to what a spreadsheet cell holds.
func TestHostileTextRoundTrips(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("Ωx", 1<<19) // 1.5 MB, 1 Mi runes
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			var refs []blockreport.Reference
			for i, s := range sqlMeta {
				raw, _ := json.Marshal(map[string]string{"name": s})
				refs = append(refs, blockreport.Reference{
					TenantID: "t" + s, UserID: "29:" + s, AADObjectID: s, UserName: s, Email: s + "@x",
					ConversationID: "a:" + s + string(rune('A'+i)), ConversationType: blockreport.ConversationPersonal,
					TeamID: s, ServiceURL: "https://smba.trafficmanager.net/" + s, BotID: "28:" + s, ChannelID: s, Locale: s,
					Raw: raw,
				})
			}
			// A huge name (not an id: ids are index keys, which ingest
			// caps) is stored whole.
			huge := ref("t-huge", "a:huge", "29:huge", long)
			huge.Email = long
			huge.Raw, _ = json.Marshal(map[string]string{"name": long})
			refs = append(refs, huge)
			counts, err := b.db.UpsertReferences(ctx, refs, t0)
			if err != nil || counts.Added != len(refs) {
				t.Fatalf("UpsertReferences = %+v, %v", counts, err)
			}
			// The same again: nothing changed, so nothing is updated.
			if counts, err := b.db.UpsertReferences(ctx, refs, t0); err != nil || counts.Unchanged != len(refs) {
				t.Fatalf("second UpsertReferences = %+v, %v; want all unchanged", counts, err)
			}
			run := createRun(t, b.db)
			byKey := map[string]blockreport.Reference{}
			var results []blockreport.Result
			for _, r := range refs {
				byKey[r.Key()] = r
				got := pending(t, b.db, run.ID, r.TenantID)
				if len(got) != 1 {
					t.Fatalf("Pending(tenant %.40q) = %d references, want 1", r.TenantID, len(got))
				}
				if string(got[0].Raw) != string(r.Raw) {
					t.Errorf("raw = %.80q (%d bytes), want %.80q (%d bytes)", got[0].Raw, len(got[0].Raw), r.Raw, len(r.Raw))
				}
				res := result(run.ID, got[0].ID, blockreport.StatusForbidden)
				res.Reason, res.Detail = r.UserName, r.UserName
				results = append(results, res)
			}
			save(t, b.db, results...)
			rows := allRows(t, b.db, run.ID)
			if len(rows) != len(refs) {
				t.Fatalf("Rows = %d, want %d", len(rows), len(refs))
			}
			tables, err := b.db.CountReferences(ctx)
			if err != nil || tables != len(refs) {
				t.Fatalf("CountReferences = %d, %v: a statement was injected?", tables, err)
			}
			for _, row := range rows {
				want, ok := byKey[row.Reference.Key()]
				if !ok {
					t.Fatalf("row with key %.80q was never stored", row.Reference.Key())
				}
				got := row.Reference
				for _, f := range []struct{ name, got, want string }{
					{"tenant_id", got.TenantID, want.TenantID}, {"user_id", got.UserID, want.UserID},
					{"aad_object_id", got.AADObjectID, want.AADObjectID}, {"user_name", got.UserName, want.UserName},
					{"email", got.Email, want.Email}, {"conversation_id", got.ConversationID, want.ConversationID},
					{"team_id", got.TeamID, want.TeamID}, {"service_url", got.ServiceURL, want.ServiceURL},
					{"bot_id", got.BotID, want.BotID}, {"channel_id", got.ChannelID, want.ChannelID},
					{"locale", got.Locale, want.Locale},
					{"reason", row.Result.Reason, want.UserName}, {"detail", row.Result.Detail, want.UserName},
				} {
					if f.got != f.want {
						t.Errorf("%s = %.80q (%d bytes), want %.80q (%d bytes)", f.name, f.got, len(f.got), f.want, len(f.want))
					}
				}
			}
		})
	}
}
