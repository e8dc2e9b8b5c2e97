package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/lib/pq"
)

// ImportCounts says what UpsertReferences did with each reference.
type ImportCounts struct{ Added, Updated, Unchanged int }

// chunkSize is the number of references per statement. SQLite takes 16
// parameters per reference, so 500 stay well under its limit; PostgreSQL
// takes one array per column, so the chunk can be larger (per driver).
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
// last one. On any error nothing is written.
func (db *DB) UpsertReferences(ctx context.Context, refs []blockreport.Reference, now time.Time) (ImportCounts, error) {
	var counts ImportCounts
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return counts, fmt.Errorf("upsert references: %w", err)
	}
	defer rollback(tx)
	if refs, err = db.knownConversations(ctx, tx, refs); err != nil {
		return counts, fmt.Errorf("upsert references: %w", err)
	}
	refs = lastByKey(refs)
	size := db.chunkSize()
	for start := 0; start < len(refs); start += size {
		chunk := refs[start:min(start+size, len(refs))]
		var c ImportCounts
		if db.driver == Postgres {
			c, err = db.upsertChunkPostgres(ctx, tx, chunk, now)
		} else {
			c, err = db.upsertChunk(ctx, tx, chunk, now)
		}
		if err != nil {
			return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
		}
		counts.Added += c.Added
		counts.Updated += c.Updated
		counts.Unchanged += c.Unchanged
	}
	if err := tx.Commit(); err != nil {
		return ImportCounts{}, fmt.Errorf("upsert references: commit: %w", err)
	}
	return counts, nil
}

// knownConversations gives each personal reference without a conversation
// id the id already stored for its tenant and user, if any. Such a
// reference names a 1:1 chat the probe creates; once it has, the stored row
// carries the new id, and re-importing the same file must update that row
// rather than add a second one for the same user. refs is not modified.
func (db *DB) knownConversations(ctx context.Context, q queryer, refs []blockreport.Reference) ([]blockreport.Reference, error) {
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
			WHERE conversation_type = 'personal' AND conversation_id <> ''
			AND user_id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) ORDER BY id`), chunk...)
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

// existingRefs returns the stored references with the keys of refs, by key,
// with the fields sameFields compares.
func (db *DB) existingRefs(ctx context.Context, q queryer, refs []blockreport.Reference) (map[string]blockreport.Reference, error) {
	args := make([]any, 0, 3*len(refs))
	for _, r := range refs {
		args = append(args, r.TenantID, r.ConversationID, r.UserID)
	}
	query := `SELECT tenant_id, conversation_id, user_id, aad_object_id, user_name, email, conversation_type,
		team_id, service_url, bot_id, channel_id, locale, opted_out FROM conversation_references
		WHERE (tenant_id, conversation_id, user_id) IN (VALUES ` + placeholders(len(refs), 3) + `)`
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	defer rows.Close()
	m := make(map[string]blockreport.Reference, len(refs))
	for rows.Next() {
		var r blockreport.Reference
		if err := rows.Scan(&r.TenantID, &r.ConversationID, &r.UserID, &r.AADObjectID, &r.UserName, &r.Email,
			&r.ConversationType, &r.TeamID, &r.ServiceURL, &r.BotID, &r.ChannelID, &r.Locale, &r.OptedOut); err != nil {
			return nil, fmt.Errorf("look up existing references: %w", err)
		}
		m[r.Key()] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	return m, nil
}

// onConflict is the update part of the upsert: every field an import can
// change, and last_seen; first_seen is kept.
const onConflict = `ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET
	aad_object_id = excluded.aad_object_id, user_name = excluded.user_name, email = excluded.email,
	conversation_type = excluded.conversation_type, team_id = excluded.team_id,
	service_url = excluded.service_url, bot_id = excluded.bot_id, channel_id = excluded.channel_id,
	locale = excluded.locale, opted_out = (conversation_references.opted_out OR excluded.opted_out),
	last_seen = excluded.last_seen,
	raw = excluded.raw`

const insertRefCols = `INSERT INTO conversation_references
	(tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
	 service_url, bot_id, channel_id, locale, opted_out, first_seen, last_seen, raw)`

// upsertChunk writes refs (with distinct keys) and says what it did: it
// looks the keys up first, then writes them all in one statement.
func (db *DB) upsertChunk(ctx context.Context, q queryer, refs []blockreport.Reference, now time.Time) (ImportCounts, error) {
	var counts ImportCounts
	existing, err := db.existingRefs(ctx, q, refs)
	if err != nil {
		return counts, err
	}
	for _, r := range refs {
		old, ok := existing[r.Key()]
		switch {
		case !ok:
			counts.Added++
		case sameFields(old, r):
			counts.Unchanged++
		default:
			counts.Updated++
		}
	}
	args := make([]any, 0, 16*len(refs))
	ts := db.ts(now)
	for _, r := range refs {
		args = append(args, r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID,
			string(r.ConversationType), r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, r.OptedOut,
			ts, ts, nullText(r.Raw))
	}
	_, err = q.ExecContext(ctx, insertRefCols+` VALUES `+placeholders(len(refs), 16)+` `+onConflict, args...)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("write %d references: %w", len(refs), err)
	}
	return counts, nil
}

// upsertChunkPostgres is upsertChunk for PostgreSQL (per driver): one
// statement with one array per column instead of 16×N parameters, which
// classifies and writes in a single round trip. All parts of a WITH
// statement see the table as it was before the INSERT, so "old" holds the
// references that existed.
func (db *DB) upsertChunkPostgres(ctx context.Context, q queryer, refs []blockreport.Reference, now time.Time) (ImportCounts, error) {
	cols := columns(refs, 13, func(r blockreport.Reference) []string {
		return []string{r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID,
			string(r.ConversationType), r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, string(r.Raw)}
	})
	optedOut := make([]bool, len(refs))
	for i, r := range refs {
		optedOut[i] = r.OptedOut
	}
	args := make([]any, 0, 15)
	for _, c := range cols {
		args = append(args, pq.Array(c))
	}
	args = append(args, pq.Array(optedOut), db.ts(now))
	var written, same, changed int
	err := q.QueryRowContext(ctx, `WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::boolean[])
			AS x (tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
				service_url, bot_id, channel_id, locale, raw, opted_out)
		), old AS (
			SELECT (r.aad_object_id = i.aad_object_id AND r.user_name = i.user_name AND r.email = i.email
				AND r.conversation_type = i.conversation_type AND r.team_id = i.team_id
				AND r.service_url = i.service_url AND r.bot_id = i.bot_id AND r.channel_id = i.channel_id
				AND r.locale = i.locale AND r.opted_out = (r.opted_out OR i.opted_out)) AS same
			FROM conversation_references r JOIN input i USING (tenant_id, conversation_id, user_id)
		), up AS (
			`+insertRefCols+`
			SELECT tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
				service_url, bot_id, channel_id, locale, opted_out, $15, $15, NULLIF(raw, '')
			FROM input
			`+onConflict+`
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM up), count(*) FILTER (WHERE same), count(*) FILTER (WHERE NOT same) FROM old`,
		args...).Scan(&written, &same, &changed)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("write %d references: %w", len(refs), err)
	}
	return ImportCounts{Added: written - same - changed, Updated: changed, Unchanged: same}, nil
}

// columns turns refs into n column slices of the values fields returns.
func columns(refs []blockreport.Reference, n int, fields func(blockreport.Reference) []string) [][]string {
	cols := make([][]string, n)
	for i := range cols {
		cols[i] = make([]string, len(refs))
	}
	for i, r := range refs {
		for j, v := range fields(r) {
			cols[j][i] = v
		}
	}
	return cols
}

// CountReferences returns the number of stored references.
func (db *DB) CountReferences(ctx context.Context) (int, error) {
	var n int
	if err := db.x.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversation_references`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count references: %w", err)
	}
	return n, nil
}
