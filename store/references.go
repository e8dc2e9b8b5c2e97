package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// ImportCounts says what UpsertReferences did with each reference.
type ImportCounts struct{ Added, Updated, Unchanged int }

// chunkSize is the number of references an import writes at a time. SQLite
// takes 18 parameters per reference in one prepared multi-row statement, so
// 500 stay well under its limit (250 and 1,000 measured no faster);
// PostgreSQL takes a chunk by COPY, so it can be larger (per driver).
func (db *DB) chunkSize() int {
	if db.driver == Postgres {
		return 5000
	}
	return 500
}

// UpsertReferences inserts or updates refs in one transaction, keyed by
// (tenant_id, conversation_id, user_id). A new reference is Added
// (first_seen = last_seen = now); one whose fields changed is Updated; an
// identical one is Unchanged, though its last_seen still moves to now. The
// raw JSON is always replaced by the newest but does not count as a change
// (it holds fields such as activityId that change on every message).
// An import can mark a reference opted out but never clears the mark:
// ConversationReference JSON has no opt-out field, so its false means
// "not said", and re-importing the bot's references must not undo an
// opt-out imported from CSV. References with the same key collapse to the
// last one. On any error nothing is written. It holds refs: an import of
// any size goes through BeginImport instead.
func (db *DB) UpsertReferences(ctx context.Context, refs []blockreport.Reference, now time.Time) (ImportCounts, error) {
	im, err := db.BeginImport(ctx, now)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
	}
	defer im.Rollback()
	for _, r := range refs {
		if err := im.Add(ctx, r); err != nil {
			return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
		}
	}
	counts, err := im.Commit(ctx)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
	}
	return counts, nil
}

// knownConversations gives each personal reference without a conversation
// id the id already stored for its tenant and user, if any. Such a
// reference names a 1:1 chat the probe creates; once it has, the stored row
// carries the new id, and re-importing the same file must update that row
// rather than add a second one for the same user. Only rows with ids up to
// maxID count: those stored before the import. refs is not modified.
func (db *DB) knownConversations(ctx context.Context, q queryer, refs []blockreport.Reference, maxID int64) ([]blockreport.Reference, error) {
	var users []any
	for _, r := range refs {
		if r.ConversationID == "" && r.UserID != "" {
			users = append(users, r.UserID)
		}
	}
	if len(users) == 0 {
		return refs, nil
	}
	known := map[[2]string]string{} // tenant, user → conversation id
	for start := 0; start < len(users); start += 500 {
		chunk := users[start:min(start+500, len(users))]
		rows, err := q.QueryContext(ctx, db.rebind(`SELECT tenant_id, user_id, conversation_id FROM conversation_references
			WHERE conversation_type = 'personal' AND conversation_id <> '' AND id <= ?
			AND user_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) ORDER BY id`), append([]any{maxID}, chunk...)...)
		if err != nil {
			return nil, fmt.Errorf("look up created conversations: %w", err)
		}
		for rows.Next() {
			var tenant, user, conv string
			if err := rows.Scan(&tenant, &user, &conv); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up created conversations: %w", err)
			}
			if _, ok := known[[2]string{tenant, user}]; !ok {
				known[[2]string{tenant, user}] = conv
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up created conversations: %w", err)
		}
	}
	if len(known) == 0 {
		return refs, nil
	}
	out := make([]blockreport.Reference, len(refs))
	copy(out, refs)
	for i, r := range out {
		if conv, ok := known[[2]string{r.TenantID, r.UserID}]; ok && r.ConversationID == "" {
			out[i].ConversationID = conv
		}
	}
	return out, nil
}

// lastByKey drops every reference whose key occurs again later in refs.
func lastByKey(refs []blockreport.Reference) []blockreport.Reference {
	at := make(map[string]int, len(refs))
	out := make([]blockreport.Reference, 0, len(refs))
	for _, r := range refs {
		if i, ok := at[r.Key()]; ok {
			out[i] = r
			continue
		}
		at[r.Key()] = len(out)
		out = append(out, r)
	}
	return out
}

// sameFields reports whether importing b over the stored a changes nothing
// (raw aside). The opt-out flag only ever goes on: see UpsertReferences.
func sameFields(a, b blockreport.Reference) bool {
	return a.AADObjectID == b.AADObjectID && a.UserName == b.UserName && a.Email == b.Email &&
		a.ConversationType == b.ConversationType && a.TeamID == b.TeamID && a.ServiceURL == b.ServiceURL &&
		a.BotID == b.BotID && a.ChannelID == b.ChannelID && a.Locale == b.Locale && a.OptedOut == (a.OptedOut || b.OptedOut)
}

// onConflict is the update part of the upsert: every field an import can
// change, and last_seen; first_seen is kept.
const onConflict = `ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET
	aad_object_id = excluded.aad_object_id, user_name = excluded.user_name, email = excluded.email,
	conversation_type = excluded.conversation_type, team_id = excluded.team_id,
	service_url = excluded.service_url, bot_id = excluded.bot_id, channel_id = excluded.channel_id,
	locale = excluded.locale, opted_out = (conversation_references.opted_out OR excluded.opted_out),
	last_seen = excluded.last_seen,
	raw = excluded.raw, source = excluded.source, source_key = excluded.source_key`

const insertRefCols = `INSERT INTO conversation_references
	(tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
	 service_url, bot_id, channel_id, locale, opted_out, first_seen, last_seen, raw, source, source_key)`

// CountReferences returns the number of stored references.
func (db *DB) CountReferences(ctx context.Context) (int, error) {
	var n int
	if err := db.x.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversation_references`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count references: %w", err)
	}
	return n, nil
}
