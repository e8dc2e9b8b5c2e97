package store

import (
	"database/sql"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

// dbTime is a timestamp column of either driver, scanned into UTC (see
// timeCol); NULL scans as the zero time. Struct scanning uses it where a
// domain type has a time.Time, which SQLite's text timestamps cannot fill.
type dbTime struct{ time.Time }

func (t *dbTime) Scan(src any) error { return timeCol{&t.Time}.Scan(src) }

// refCols are the columns of a reference row, in table order.
const refCols = `id, tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type,
	team_id, service_url, bot_id, channel_id, locale, opted_out, first_seen, last_seen, raw, source, source_key`

// refRow is one conversation_references row as sqlx scans it: the
// reference's own db tags, with the columns whose stored form differs
// (timestamps, a nullable raw text) shadowed by fields that can scan them.
type refRow struct {
	blockreport.Reference
	FirstSeen dbTime         `db:"first_seen"`
	LastSeen  dbTime         `db:"last_seen"`
	Raw       sql.NullString `db:"raw"`
}

func (r refRow) reference() blockreport.Reference {
	ref := r.Reference
	ref.FirstSeen, ref.LastSeen = r.FirstSeen.Time, r.LastSeen.Time
	if r.Raw.Valid {
		ref.Raw = []byte(r.Raw.String)
	}
	return ref
}

// resultRow is one probe_results row joined with its reference, as Rows
// scans it; like refRow it shadows what the domain types cannot scan.
type resultRow struct {
	blockreport.Row
	FirstSeen   dbTime `db:"first_seen"`
	LastSeen    dbTime `db:"last_seen"`
	ProbedAt    dbTime `db:"probed_at"`
	StatusSince dbTime `db:"status_since"`
	LatencyMS   int64  `db:"latency_ms"`
}

func (r resultRow) row() blockreport.Row {
	row := r.Row
	row.FirstSeen, row.LastSeen = r.FirstSeen.Time, r.LastSeen.Time
	row.ProbedAt, row.StatusSince = r.ProbedAt.Time, r.StatusSince.Time
	row.Latency = time.Duration(r.LatencyMS) * time.Millisecond
	row.ReferenceID = row.Reference.ID
	row.Raw = nil
	return row
}
