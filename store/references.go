package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// ImportCounts says what UpsertReferences did with each reference.
type ImportCounts struct{ Added, Updated, Unchanged int }

// upsertChunk is the number of references per statement: 16 parameters
// each stays well under both drivers' limits.
const upsertChunk = 500

// UpsertReferences inserts or updates refs in one transaction, keyed by
// (tenant_id, conversation_id, user_id). A new reference is Added
// (first_seen = last_seen = now); one whose fields changed is Updated; an
// identical one is Unchanged, though its last_seen still moves to now. The
// raw JSON is always replaced by the newest but does not count as a change
// (it holds fields such as activityId that change on every message).
// References with the same key collapse to the last one. On any error
// nothing is written.
func (db *DB) UpsertReferences(ctx context.Context, refs []blockreport.Reference, now time.Time) (ImportCounts, error) {
	var counts ImportCounts
	refs = lastByKey(refs)
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return counts, fmt.Errorf("upsert references: %w", err)
	}
	defer rollback(tx)
	for start := 0; start < len(refs); start += upsertChunk {
		chunk := refs[start:min(start+upsertChunk, len(refs))]
		existing, err := db.existingRefs(ctx, tx, chunk)
		if err != nil {
			return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
		}
		for _, r := range chunk {
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
		if err := db.upsertChunk(ctx, tx, chunk, now); err != nil {
			return ImportCounts{}, fmt.Errorf("upsert references: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return ImportCounts{}, fmt.Errorf("upsert references: commit: %w", err)
	}
	return counts, nil
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

// sameFields reports whether a and b agree on every stored field that an
// import can change (raw aside).
func sameFields(a, b blockreport.Reference) bool {
	return a.AADObjectID == b.AADObjectID && a.UserName == b.UserName && a.Email == b.Email &&
		a.ConversationType == b.ConversationType && a.TeamID == b.TeamID && a.ServiceURL == b.ServiceURL &&
		a.BotID == b.BotID && a.ChannelID == b.ChannelID && a.Locale == b.Locale && a.OptedOut == b.OptedOut
}

// existingRefs returns the stored references with the keys of refs, by key.
func (db *DB) existingRefs(ctx context.Context, q queryer, refs []blockreport.Reference) (map[string]blockreport.Reference, error) {
	args := make([]any, 0, 3*len(refs))
	for _, r := range refs {
		args = append(args, r.TenantID, r.ConversationID, r.UserID)
	}
	rows, err := q.QueryContext(ctx, db.rebind(`SELECT `+refCols+` FROM conversation_references
		WHERE (tenant_id, conversation_id, user_id) IN (VALUES `+placeholders(len(refs), 3)+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	defer rows.Close()
	m := make(map[string]blockreport.Reference, len(refs))
	for rows.Next() {
		r, err := scanRef(rows)
		if err != nil {
			return nil, err
		}
		m[r.Key()] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	return m, nil
}

func (db *DB) upsertChunk(ctx context.Context, q queryer, refs []blockreport.Reference, now time.Time) error {
	args := make([]any, 0, 16*len(refs))
	ts := db.ts(now)
	for _, r := range refs {
		args = append(args, r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID,
			string(r.ConversationType), r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, r.OptedOut,
			ts, ts, nullText(r.Raw))
	}
	_, err := q.ExecContext(ctx, db.rebind(`INSERT INTO conversation_references
		(tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
		 service_url, bot_id, channel_id, locale, opted_out, first_seen, last_seen, raw)
		VALUES `+placeholders(len(refs), 16)+`
		ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET
		aad_object_id = excluded.aad_object_id, user_name = excluded.user_name, email = excluded.email,
		conversation_type = excluded.conversation_type, team_id = excluded.team_id,
		service_url = excluded.service_url, bot_id = excluded.bot_id, channel_id = excluded.channel_id,
		locale = excluded.locale, opted_out = excluded.opted_out, last_seen = excluded.last_seen,
		raw = excluded.raw`), args...)
	if err != nil {
		return fmt.Errorf("write %d references: %w", len(refs), err)
	}
	return nil
}

// CountReferences returns the number of stored references.
func (db *DB) CountReferences(ctx context.Context) (int, error) {
	var n int
	if err := db.x.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversation_references`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count references: %w", err)
	}
	return n, nil
}

// refCols are the columns scanRef reads, in order.
const refCols = `id, tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type,
	team_id, service_url, bot_id, channel_id, locale, opted_out, first_seen, last_seen, raw`

// scanner is *sql.Rows or *sql.Row.
type scanner interface{ Scan(dest ...any) error }

func scanRef(s scanner, extra ...any) (blockreport.Reference, error) {
	var r blockreport.Reference
	var raw sql.NullString
	dest := append([]any{&r.ID, &r.TenantID, &r.UserID, &r.AADObjectID, &r.UserName, &r.Email,
		&r.ConversationID, &r.ConversationType, &r.TeamID, &r.ServiceURL, &r.BotID, &r.ChannelID,
		&r.Locale, &r.OptedOut, timeCol{&r.FirstSeen}, timeCol{&r.LastSeen}, &raw}, extra...)
	if err := s.Scan(dest...); err != nil {
		return r, fmt.Errorf("read reference: %w", err)
	}
	if raw.Valid {
		r.Raw = []byte(raw.String)
	}
	return r, nil
}
