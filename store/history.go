package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// HistoryEntry is one result of a user's history: the row as the reports
// list it, with the run it belongs to.
type HistoryEntry struct {
	blockreport.Row
	RunStartedAt time.Time
	RunState     blockreport.RunState
}

// History returns every result, in every run, of the references that match
// user: an email or UPN (compared case-insensitively), an AAD object id
// (case-insensitive, as GUIDs are), a Teams user id ("29:...") or a
// conversation id. Oldest run first, then by reference id. A user with a
// personal chat and a team installation has one entry per run for each.
func (db *DB) History(ctx context.Context, user string) ([]HistoryEntry, error) {
	user = strings.TrimSpace(user)
	lower := strings.ToLower(user)
	var rows []struct {
		resultRow
		RunStartedAt dbTime               `db:"run_started_at"`
		RunState     blockreport.RunState `db:"run_state"`
	}
	err := db.x.SelectContext(ctx, &rows, db.rebind(`SELECT r.id, r.tenant_id, r.user_id, r.aad_object_id, r.user_name,
		r.email, r.conversation_id, r.conversation_type, r.team_id, r.service_url, r.bot_id, r.channel_id, r.locale,
		r.opted_out, r.first_seen, r.last_seen, r.source, r.source_key,
		p.run_id, p.status, p.reason, p.http_status, p.detail, p.attempts, p.latency_ms, p.probed_at,
		p.previous_status, p.status_since, u.started_at AS run_started_at, u.state AS run_state
		FROM probe_results p
		JOIN conversation_references r ON r.id = p.reference_id
		JOIN probe_runs u ON u.id = p.run_id
		WHERE LOWER(r.email) = ? OR LOWER(r.aad_object_id) = ? OR r.user_id = ? OR r.conversation_id = ?
		ORDER BY p.run_id, r.id`), lower, lower, user, user)
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", user, err)
	}
	out := make([]HistoryEntry, len(rows))
	for i, r := range rows {
		out[i] = HistoryEntry{Row: r.row(), RunStartedAt: r.RunStartedAt.Time, RunState: r.RunState}
	}
	return out, nil
}

// ReferenceByConversation returns a stored reference of conversation id
// convID (a channel, group chat or personal chat the bot is in), preferring
// a team channel or group chat over a personal one; ErrNotFound if none.
func (db *DB) ReferenceByConversation(ctx context.Context, convID string) (blockreport.Reference, error) {
	var rows []refRow
	err := db.x.SelectContext(ctx, &rows, db.rebind(`SELECT `+refCols+` FROM conversation_references
		WHERE conversation_id = ? ORDER BY CASE WHEN conversation_type = 'personal' THEN 1 ELSE 0 END, id LIMIT 1`), convID)
	if err != nil {
		return blockreport.Reference{}, fmt.Errorf("reference of conversation %q: %w", convID, err)
	}
	if len(rows) == 0 {
		return blockreport.Reference{}, fmt.Errorf("reference of conversation %q: %w", convID, ErrNotFound)
	}
	return rows[0].reference(), nil
}
