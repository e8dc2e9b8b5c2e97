package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Import is one import session: references added one at a time are
// upserted in bounded chunks inside one transaction, so that an import of
// any size holds one chunk in memory and either all of it is stored
// (Commit) or none of it (Rollback, or any error).
//
// It keeps the rules of UpsertReferences: a reference is Added, Updated or
// Unchanged against what was stored before the import; references with the
// same key (tenant, conversation, user) collapse to the last one and count
// once, also when they are in different chunks. The store recognises such a
// later duplicate without holding the keys: a row added by the import has
// an id above the largest at its start, and a stored row it wrote is one
// its transaction wrote (PostgreSQL: xmin; SQLite: a temporary table of
// those row ids). The one thing held in memory per reference is a 16-byte
// entry for each reference the import Updated, so that a later duplicate
// that undoes the change still counts right; new and unchanged references
// cost no memory.
//
// An Import is not safe for concurrent use. Its methods return errors that
// name the operation; after any error the transaction is rolled back and
// the session is done.
type Import struct {
	db      *DB
	tx      *sqlx.Tx
	now     time.Time
	ts      any
	size    int
	pending []blockreport.Reference
	counts  ImportCounts
	added   int // references passed to Add
	seed    maphash.Seed
	updated map[uint64]uint64    // key hash → fields hash before the import, for references Updated
	maxID   int64                // the largest reference id before the import
	touched []int64              // SQLite: ids of stored rows this chunk writes over, for import_touched
	stmts   map[string]*sql.Stmt // SQLite: prepared statements by text (one per chunk length)
	done    bool
}

// stmt returns the prepared statement of query, preparing it on first use
// (SQLite: the statements of a full chunk are prepared once per import).
func (im *Import) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := im.stmts[query]; ok {
		return st, nil
	}
	st, err := im.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if im.stmts == nil {
		im.stmts = map[string]*sql.Stmt{}
	}
	if len(im.stmts) > 8 {
		for q, old := range im.stmts { // odd lengths: keep few
			old.Close()
			delete(im.stmts, q)
		}
	}
	im.stmts[query] = st
	return st, nil
}

// exec and query run a statement through stmt.
func (im *Import) exec(ctx context.Context, query string, args ...any) error {
	st, err := im.stmt(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

func (im *Import) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := im.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// BeginImport starts an import session at time now (see Import).
func (db *DB) BeginImport(ctx context.Context, now time.Time) (*Import, error) {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	im := &Import{db: db, tx: tx, now: now, ts: db.ts(now), size: db.chunkSize(),
		seed: maphash.MakeSeed(), updated: map[uint64]uint64{}}
	if err := im.begin(ctx); err != nil {
		im.Rollback()
		return nil, fmt.Errorf("begin import: %w", err)
	}
	return im, nil
}

func (im *Import) begin(ctx context.Context) error {
	if err := im.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM conversation_references`).Scan(&im.maxID); err != nil {
		return err
	}
	if im.db.driver == Postgres {
		_, err := im.tx.ExecContext(ctx, `CREATE TEMP TABLE import_chunk (
			tenant_id text, user_id text, aad_object_id text, user_name text, email text, conversation_id text,
			conversation_type text, team_id text, service_url text, bot_id text, channel_id text, locale text,
			opted_out boolean, raw text, source text, source_key text) ON COMMIT DROP`)
		return err
	}
	// Per connection; created inside the transaction, so a rollback
	// removes it, and dropped before commit.
	if _, err := im.tx.ExecContext(ctx, `DROP TABLE IF EXISTS temp.import_touched`); err != nil {
		return err
	}
	_, err := im.tx.ExecContext(ctx, `CREATE TEMP TABLE import_touched (id INTEGER PRIMARY KEY)`)
	return err
}

// ChunkSize is the number of references an Import writes at a time.
func (im *Import) ChunkSize() int { return im.size }

// Add queues ref (already validated) and writes the queue when it holds a
// chunk.
func (im *Import) Add(ctx context.Context, ref blockreport.Reference) error {
	if im.done {
		return errors.New("import: session already ended")
	}
	im.pending = append(im.pending, ref)
	im.added++
	if len(im.pending) >= im.size {
		return im.flush(ctx)
	}
	return nil
}

// Counts returns what the chunks written so far did.
func (im *Import) Counts() ImportCounts { return im.counts }

// Commit writes what is queued and commits the transaction.
func (im *Import) Commit(ctx context.Context) (ImportCounts, error) {
	if im.done {
		return ImportCounts{}, errors.New("import: session already ended")
	}
	if err := im.flush(ctx); err != nil {
		return ImportCounts{}, err
	}
	im.done = true
	if im.db.driver != Postgres {
		if _, err := im.tx.ExecContext(ctx, `DROP TABLE temp.import_touched`); err != nil {
			_ = im.tx.Rollback()
			return ImportCounts{}, fmt.Errorf("import: %w", err)
		}
	}
	if err := im.tx.Commit(); err != nil {
		return ImportCounts{}, fmt.Errorf("import: commit: %w", err)
	}
	return im.counts, nil
}

// Rollback discards everything the session wrote. It is safe to call after
// Commit or an error (it then does nothing), so it can be deferred.
func (im *Import) Rollback() {
	if !im.done {
		im.done = true
		_ = im.tx.Rollback()
	}
	im.pending = nil
}

// flush writes the queued references as one chunk.
func (im *Import) flush(ctx context.Context) error {
	if len(im.pending) == 0 {
		return nil
	}
	if err := im.writeChunk(ctx, im.pending); err != nil {
		im.Rollback()
		return fmt.Errorf("import: %w", err)
	}
	clear(im.pending) // drop the references' memory
	im.pending = im.pending[:0]
	return nil
}

// stored is a stored reference as an import finds it.
type stored struct {
	id  int64
	ref blockreport.Reference
	// mine: written by this import (an earlier chunk); new: added by it.
	mine, new bool
}

func (im *Import) writeChunk(ctx context.Context, refs []blockreport.Reference) error {
	db := im.db
	refs, err := db.knownConversations(ctx, im.tx, refs, im.maxID)
	if err != nil {
		return err
	}
	refs, promoted, err := db.sameConversations(ctx, im.tx, refs)
	if err != nil {
		return err
	}
	refs = lastByKey(refs)
	var existing map[string]stored
	if db.driver == Postgres {
		// Copy, then look up and write in one statement: it classifies
		// afterwards, from the rows as they were before it.
		if err := im.copyChunk(ctx, refs); err != nil {
			return err
		}
		if existing, err = im.mergeCopied(ctx, len(refs)); err != nil {
			return err
		}
		// Giving a stored row its Teams id wrote it (xmin), but it still
		// counts against what was stored before the import.
		for k, s := range existing {
			if promoted[s.id] && !s.new {
				s.mine = false
				existing[k] = s
			}
		}
		for _, r := range refs {
			im.classify(r, existing)
		}
		return nil
	}
	if existing, err = im.lookup(ctx, refs); err != nil {
		return err
	}
	im.touched = im.touched[:0]
	for _, r := range refs {
		im.classify(r, existing)
	}
	if err := im.write(ctx, refs); err != nil {
		return err
	}
	return im.touch(ctx)
}

// touch notes the stored rows the chunk wrote over (SQLite).
func (im *Import) touch(ctx context.Context) error {
	if len(im.touched) == 0 {
		return nil
	}
	args := make([]any, len(im.touched))
	for i, id := range im.touched {
		args[i] = id
	}
	if err := im.exec(ctx, `INSERT INTO temp.import_touched (id) VALUES `+placeholders(len(args), 1), args...); err != nil {
		return fmt.Errorf("note written references: %w", err)
	}
	return nil
}

// classify counts r, to be written over old (if any).
func (im *Import) classify(r blockreport.Reference, existing map[string]stored) {
	old, ok := existing[r.Key()]
	switch {
	case !ok:
		im.counts.Added++
	case !old.mine:
		im.touched = append(im.touched, old.id)
		if sameFields(old.ref, r) {
			im.counts.Unchanged++
		} else {
			im.counts.Updated++
			im.updated[im.keyHash(r)] = im.fieldsHash(old.ref)
		}
	case old.new:
		// Added by an earlier chunk and counted there; the last one wins.
	default:
		// Stored before the import and written by an earlier chunk: count
		// it against what was stored before the import.
		kh := im.keyHash(r)
		before, wasUpdated := im.updated[kh]
		if !wasUpdated {
			before = im.fieldsHash(old.ref) // it was unchanged, so the row is as before
		}
		after := r
		after.OptedOut = old.ref.OptedOut || r.OptedOut
		wasSame := im.fieldsHash(old.ref) == before
		isSame := im.fieldsHash(after) == before
		switch {
		case wasSame && !isSame:
			im.counts.Unchanged--
			im.counts.Updated++
		case !wasSame && isSame:
			im.counts.Updated--
			im.counts.Unchanged++
		}
		if !wasUpdated && !isSame {
			im.updated[kh] = before
		}
	}
}

func (im *Import) keyHash(r blockreport.Reference) uint64 {
	var h maphash.Hash
	h.SetSeed(im.seed)
	for _, s := range []string{r.TenantID, r.ConversationID, r.UserID} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// fieldsHash hashes the fields sameFields compares.
func (im *Import) fieldsHash(r blockreport.Reference) uint64 {
	var h maphash.Hash
	h.SetSeed(im.seed)
	for _, s := range []string{r.AADObjectID, r.UserName, r.Email, string(r.ConversationType), r.TeamID,
		r.ServiceURL, r.BotID, r.ChannelID, r.Locale} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	if r.OptedOut {
		h.WriteByte(1)
	}
	return h.Sum64()
}

const storedCols = `r.id, r.tenant_id, r.conversation_id, r.user_id, r.aad_object_id, r.user_name, r.email, r.conversation_type,
	r.team_id, r.service_url, r.bot_id, r.channel_id, r.locale, r.opted_out`

func scanStored(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}, n int) (map[string]stored, error) {
	m := make(map[string]stored, n)
	for rows.Next() {
		var s stored
		r := &s.ref
		if err := rows.Scan(&s.id, &r.TenantID, &r.ConversationID, &r.UserID, &r.AADObjectID, &r.UserName, &r.Email,
			&r.ConversationType, &r.TeamID, &r.ServiceURL, &r.BotID, &r.ChannelID, &r.Locale, &r.OptedOut,
			&s.mine, &s.new); err != nil {
			return nil, fmt.Errorf("look up existing references: %w", err)
		}
		m[r.Key()] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	return m, nil
}

// lookup returns the stored references with the keys of refs (SQLite).
func (im *Import) lookup(ctx context.Context, refs []blockreport.Reference) (map[string]stored, error) {
	args := make([]any, 0, 2+3*len(refs))
	args = append(args, im.maxID, im.maxID)
	for _, r := range refs {
		args = append(args, r.TenantID, r.ConversationID, r.UserID)
	}
	rows, err := im.query(ctx, `SELECT `+storedCols+`,
			r.id > ? OR r.id IN (SELECT id FROM temp.import_touched), r.id > ?
		FROM conversation_references r
		WHERE (r.tenant_id, r.conversation_id, r.user_id) IN (VALUES `+placeholders(len(refs), 3)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("look up existing references: %w", err)
	}
	defer rows.Close()
	return scanStored(rows, len(refs))
}

// write upserts refs (distinct keys) in one multi-row statement (SQLite).
func (im *Import) write(ctx context.Context, refs []blockreport.Reference) error {
	args := make([]any, 0, 18*len(refs))
	for _, r := range refs {
		args = append(args, r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID,
			string(r.ConversationType), r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, r.OptedOut,
			im.ts, im.ts, nullText(r.Raw), r.Source, r.SourceKey)
	}
	if err := im.exec(ctx, insertRefCols+` VALUES `+placeholders(len(refs), 18)+` `+onConflict, args...); err != nil {
		return fmt.Errorf("write %d references: %w", len(refs), err)
	}
	return nil
}

// copyChunk copies refs into the temporary table import_chunk with COPY
// (PostgreSQL): lib/pq's CopyIn streams the rows in COPY's text format,
// which the server parses faster than 14 text arrays (see BENCHMARKS.md,
// Import); lookupCopied and writeCopied then work set-based on the chunk.
func (im *Import) copyChunk(ctx context.Context, refs []blockreport.Reference) error {
	st, err := im.tx.PrepareContext(ctx, pq.CopyIn("import_chunk", "tenant_id", "user_id", "aad_object_id", "user_name",
		"email", "conversation_id", "conversation_type", "team_id", "service_url", "bot_id", "channel_id", "locale",
		"opted_out", "raw", "source", "source_key"))
	if err != nil {
		return fmt.Errorf("copy %d references: %w", len(refs), err)
	}
	defer st.Close()
	for _, r := range refs {
		if _, err := st.ExecContext(ctx, r.TenantID, r.UserID, r.AADObjectID, r.UserName, r.Email, r.ConversationID,
			string(r.ConversationType), r.TeamID, r.ServiceURL, r.BotID, r.ChannelID, r.Locale, r.OptedOut, nullText(r.Raw),
			r.Source, r.SourceKey); err != nil {
			return fmt.Errorf("copy %d references: %w", len(refs), err)
		}
	}
	if _, err := st.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy %d references: %w", len(refs), err)
	}
	return nil
}

// mergeCopied upserts the chunk in import_chunk and returns the stored
// rows with its keys as they were before (PostgreSQL), in one statement:
// all parts of a WITH statement see the table as it was before the INSERT.
// A row version this transaction wrote has its transaction id as xmin.
// The chunk table is emptied for the next chunk.
func (im *Import) mergeCopied(ctx context.Context, n int) (map[string]stored, error) {
	rows, err := im.tx.QueryContext(ctx, `WITH old AS (
			SELECT `+storedCols+`, r.xmin = pg_current_xact_id()::xid AS mine, r.id > $2 AS new
			FROM import_chunk k JOIN conversation_references r USING (tenant_id, conversation_id, user_id)
		), up AS (
			`+insertRefCols+`
			SELECT tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, team_id,
				service_url, bot_id, channel_id, locale, opted_out, $1, $1, raw, source, source_key
			FROM import_chunk
			`+onConflict+`
		)
		SELECT * FROM old`, im.ts, im.maxID)
	if err != nil {
		return nil, fmt.Errorf("write %d references: %w", n, err)
	}
	existing, err := scanStored(rows, n)
	rows.Close()
	if err != nil {
		return nil, err
	}
	if _, err := im.tx.ExecContext(ctx, `TRUNCATE import_chunk`); err != nil {
		return nil, fmt.Errorf("write %d references: %w", n, err)
	}
	return existing, nil
}
