package store

import (
	"context"
	"fmt"

	blockreport "github.com/blockreport/blockreport"
)

// standIn reports whether r names its user by the Entra object id only:
// stores that keep no Teams user id (Teams SDK apps, Company
// Communicator's Graph-synced rows) have ingest put the AAD object id in
// its place, as the Bot Connector accepts it as a member id.
func standIn(r blockreport.Reference) bool {
	return r.UserID == "" || (r.AADObjectID != "" && r.UserID == r.AADObjectID)
}

// sameConversations collapses personal references to one 1:1 chat that
// name its user differently: one store of a bot has the Teams user id
// (29:…), another only the AAD object id standing in for it. Keyed on
// tenant + conversation, they are one user: the Teams id wins. In the chunk,
// stand-ins take the Teams id of a reference to the same conversation; a
// stand-in whose conversation is stored with a Teams id takes that id; and
// a stored stand-in row whose conversation arrives with a Teams id takes
// the id in place, keeping its history (its results are on its row id).
// refs is not modified; promoted holds the ids of the rows given a Teams
// id in place.
func (db *DB) sameConversations(ctx context.Context, q queryer, refs []blockreport.Reference) (out []blockreport.Reference, promoted map[int64]bool, err error) {
	type conv struct{ tenant, id string }
	teamsID := map[conv]string{} // the chunk's Teams user id per conversation
	var keys []any
	seen := map[conv]bool{}
	for _, r := range refs {
		if r.ConversationType != blockreport.ConversationPersonal || r.ConversationID == "" {
			continue
		}
		c := conv{r.TenantID, r.ConversationID}
		if !standIn(r) {
			teamsID[c] = r.UserID
		}
		if !seen[c] {
			seen[c] = true
			keys = append(keys, c.tenant, c.id)
		}
	}
	if len(keys) == 0 {
		return refs, nil, nil
	}
	type row struct {
		id               int64
		user, aad        string
		standIn, present bool
	}
	storedRows := map[conv][]row{}
	for start := 0; start < len(keys); start += 1000 {
		part := keys[start:min(start+1000, len(keys))]
		rows, err := q.QueryContext(ctx, db.rebind(`SELECT id, tenant_id, conversation_id, user_id, aad_object_id
			FROM conversation_references WHERE conversation_type = 'personal'
			AND (tenant_id, conversation_id) IN (VALUES `+placeholders(len(part)/2, 2)+`)`), part...)
		if err != nil {
			return nil, nil, fmt.Errorf("look up conversations: %w", err)
		}
		for rows.Next() {
			var c conv
			var r row
			if err := rows.Scan(&r.id, &c.tenant, &c.id, &r.user, &r.aad); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("look up conversations: %w", err)
			}
			r.standIn = standIn(blockreport.Reference{UserID: r.user, AADObjectID: r.aad})
			storedRows[c] = append(storedRows[c], r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("look up conversations: %w", err)
		}
	}
	out = make([]blockreport.Reference, len(refs))
	copy(out, refs)
	for i, r := range out {
		if r.ConversationType != blockreport.ConversationPersonal || r.ConversationID == "" {
			continue
		}
		c := conv{r.TenantID, r.ConversationID}
		if standIn(r) {
			if id, ok := teamsID[c]; ok {
				out[i].UserID = id
				continue
			}
			for _, s := range storedRows[c] {
				if !s.standIn {
					out[i].UserID = s.user
					break
				}
			}
			continue
		}
		// A Teams id: a stored stand-in row for the conversation takes it,
		// unless a row with the Teams id is stored too.
		var promote *row
		for j, s := range storedRows[c] {
			if s.user == r.UserID {
				promote = nil
				break
			}
			if s.standIn && promote == nil {
				promote = &storedRows[c][j]
			}
		}
		if promote != nil {
			if _, err := q.ExecContext(ctx, db.rebind(`UPDATE conversation_references SET user_id = ? WHERE id = ?`), r.UserID, promote.id); err != nil {
				return nil, nil, fmt.Errorf("give reference %d its Teams user id: %w", promote.id, err)
			}
			promote.user, promote.standIn = r.UserID, false
			if promoted == nil {
				promoted = map[int64]bool{}
			}
			promoted[promote.id] = true
		}
	}
	return out, promoted, nil
}
