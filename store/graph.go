package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	blockreport "github.com/blockreport/blockreport"
)

// graphUnchecked selects the results of run ? (alias p, reference r) that
// Graph has not cross-checked: personal references with an AAD object id.
const graphUnchecked = `p.run_id = ? AND r.conversation_type = 'personal' AND r.aad_object_id <> ''
	AND NOT EXISTS (SELECT 1 FROM graph_checks g WHERE g.run_id = p.run_id AND g.reference_id = p.reference_id)`

// graphCols and graphJoins add blockreport.Graph's columns to a query of
// results p joined with references r.
const (
	graphCols = `COALESCE(g.installed, '') AS graph_installed, COALESCE(g.graph_answer, '') AS graph_answer,
		COALESCE(g.outcome, '') AS graph_outcome, COALESCE(g.connector_status, '') AS connector_status,
		COALESCE(g.note, '') AS graph_note, COALESCE(g.old_conversation_id, '') AS old_conversation_id,
		COALESCE(d.display_name, '') AS dir_display_name, COALESCE(d.upn, '') AS dir_upn,
		COALESCE(d.department, '') AS dir_department, COALESCE(d.job_title, '') AS dir_job_title,
		COALESCE(d.office_location, '') AS dir_office_location, COALESCE(d.country, '') AS dir_country,
		CASE WHEN d.tenant_id IS NULL THEN '' WHEN NOT d.in_directory THEN 'not in directory'
			WHEN NOT d.account_enabled THEN 'disabled' ELSE 'enabled' END AS dir_account,
		COALESCE(tn.display_name, '') AS tenant_name`
	graphJoins = `LEFT JOIN graph_checks g ON g.run_id = p.run_id AND g.reference_id = p.reference_id
		LEFT JOIN directory_users d ON d.tenant_id = r.tenant_id AND d.aad_object_id = r.aad_object_id AND r.aad_object_id <> ''
		LEFT JOIN tenants tn ON tn.tenant_id = r.tenant_id`
)

// GraphTenants lists the tenants with results of run runID that Graph has
// not cross-checked yet.
func (db *DB) GraphTenants(ctx context.Context, runID int64) ([]string, error) {
	var out []string
	err := db.x.SelectContext(ctx, &out, db.rebind(`SELECT DISTINCT r.tenant_id FROM probe_results p
		JOIN conversation_references r ON r.id = p.reference_id WHERE `+graphUnchecked+` ORDER BY r.tenant_id`), runID)
	if err != nil {
		return nil, fmt.Errorf("tenants to cross-check in run %d: %w", runID, err)
	}
	return out, nil
}

// GraphPending returns up to limit results of tenantID in run runID that
// Graph has not cross-checked, with their references, in reference id
// order after the id after.
func (db *DB) GraphPending(ctx context.Context, runID int64, tenantID string, after int64, limit int) ([]blockreport.Row, error) {
	rows, err := db.x.QueryxContext(ctx, db.rebind(`SELECT r.id, r.tenant_id, r.user_id, r.aad_object_id, r.user_name,
		r.email, r.conversation_id, r.conversation_type, r.team_id, r.service_url, r.bot_id, r.channel_id, r.locale,
		r.opted_out, r.first_seen, r.last_seen,
		p.run_id, p.status, p.reason, p.http_status, p.detail, p.attempts, p.latency_ms, p.probed_at,
		p.previous_status, p.status_since, `+graphCols+`
		FROM probe_results p JOIN conversation_references r ON r.id = p.reference_id `+graphJoins+`
		WHERE `+graphUnchecked+` AND r.tenant_id = ? AND r.id > ?
		ORDER BY r.id LIMIT ?`), runID, tenantID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("results to cross-check of tenant %q in run %d: %w", tenantID, runID, err)
	}
	defer rows.Close()
	var out []blockreport.Row
	for rows.Next() {
		var r resultRow
		if err := rows.StructScan(&r); err != nil {
			return nil, fmt.Errorf("results to cross-check of run %d: %w", runID, err)
		}
		out = append(out, r.row())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results to cross-check of run %d: %w", runID, err)
	}
	return out, nil
}

// SaveGraphChecks records cross-checks in one transaction: a check row per
// result (an existing one is kept), the revised result of a changed
// verdict (previous status and status-since computed again), and, for a
// re-linked reference, its new conversation id (the installation's chat;
// skipped when another reference of the user already has it) with its
// result of this run removed, so that the run probes it again.
func (db *DB) SaveGraphChecks(ctx context.Context, checks []blockreport.GraphCheck) error {
	if len(checks) == 0 {
		return nil
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save graph checks: %w", err)
	}
	defer rollback(tx)
	runID := checks[0].RunID
	var started dbTime
	if err := tx.GetContext(ctx, &started, db.rebind(`SELECT started_at FROM probe_runs WHERE id = ?`), runID); err != nil {
		if isNoRows(err) {
			return fmt.Errorf("save graph checks of run %d: %w", runID, ErrNotFound)
		}
		return fmt.Errorf("save graph checks of run %d: %w", runID, err)
	}
	var revised []blockreport.Result
	for _, c := range checks {
		old := c.OldConversationID
		if c.Outcome == blockreport.GraphRelinked && c.ChatID != "" {
			res, err := tx.ExecContext(ctx, db.rebind(`UPDATE conversation_references SET conversation_id = ?
				WHERE id = ? AND NOT EXISTS (SELECT 1 FROM conversation_references o
					WHERE o.tenant_id = conversation_references.tenant_id AND o.user_id = conversation_references.user_id
					AND o.conversation_id = ?)`), c.ChatID, c.ReferenceID, c.ChatID)
			if err != nil {
				return fmt.Errorf("re-link reference %d: %w", c.ReferenceID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM probe_results WHERE run_id = ? AND reference_id = ?`), c.RunID, c.ReferenceID); err != nil {
					return fmt.Errorf("re-link reference %d: %w", c.ReferenceID, err)
				}
			} else {
				c.Outcome, old = blockreport.GraphNoted, ""
				c.Note += "; another reference of the user already has the installation's chat"
			}
		}
		if c.Outcome == blockreport.GraphChanged || c.Outcome == blockreport.GraphNoted {
			r := c.Result
			r.RunID, r.ReferenceID = c.RunID, c.ReferenceID
			revised = append(revised, r)
		}
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO graph_checks
			(run_id, reference_id, installed, graph_answer, outcome, connector_status, note, old_conversation_id, checked_at)
			SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM conversation_references WHERE id = ?)
			ON CONFLICT (run_id, reference_id) DO NOTHING`),
			c.RunID, c.ReferenceID, string(c.Installed), c.Answer, string(c.Outcome), string(c.ConnectorStatus),
			c.Note, old, db.ts(c.CheckedAt), c.ReferenceID)
		if err != nil {
			return fmt.Errorf("save graph check of reference %d: %w", c.ReferenceID, err)
		}
	}
	for start := 0; start < len(revised); start += saveChunk {
		chunk := revised[start:min(start+saveChunk, len(revised))]
		ids := make([]int64, len(chunk))
		for i, r := range chunk {
			ids[i] = r.ReferenceID
		}
		q, args, err := sqlx.In(`DELETE FROM probe_results WHERE run_id = ? AND reference_id IN (?)`, runID, ids)
		if err != nil {
			return fmt.Errorf("revise results: %w", err)
		}
		if _, err := tx.ExecContext(ctx, db.rebind(q), args...); err != nil {
			return fmt.Errorf("revise results of run %d: %w", runID, err)
		}
		if err := db.saveChunk(ctx, tx, chunk, map[int64]time.Time{runID: started.Time}); err != nil {
			return fmt.Errorf("revise results of run %d: %w", runID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save graph checks of run %d: commit: %w", runID, err)
	}
	return nil
}

// SaveDirectoryUsers records the directory's view of users (the latest
// one wins).
func (db *DB) SaveDirectoryUsers(ctx context.Context, users []blockreport.DirectoryUser, now time.Time) error {
	if len(users) == 0 {
		return nil
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save directory users: %w", err)
	}
	defer rollback(tx)
	for _, u := range users {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO directory_users
			(tenant_id, aad_object_id, in_directory, display_name, upn, mail, department, job_title, office_location,
			 country, account_enabled, user_type, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, aad_object_id) DO UPDATE SET in_directory = excluded.in_directory,
			 display_name = excluded.display_name, upn = excluded.upn, mail = excluded.mail,
			 department = excluded.department, job_title = excluded.job_title,
			 office_location = excluded.office_location, country = excluded.country,
			 account_enabled = excluded.account_enabled, user_type = excluded.user_type, updated_at = excluded.updated_at`),
			u.TenantID, u.AADObjectID, u.InDirectory, u.DisplayName, u.UPN, u.Mail, u.Department, u.JobTitle,
			u.OfficeLocation, u.Country, u.AccountEnabled, u.UserType, db.ts(now))
		if err != nil {
			return fmt.Errorf("save directory user %s of tenant %s: %w", u.AADObjectID, u.TenantID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save directory users: commit: %w", err)
	}
	return nil
}

// SaveTenantGraph records a tenant's Graph state in run runID and its
// name (a known name is kept when t has none).
func (db *DB) SaveTenantGraph(ctx context.Context, runID int64, t blockreport.TenantGraph, now time.Time) error {
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save tenant %s: %w", t.TenantID, err)
	}
	defer rollback(tx)
	if t.Name != "" {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO tenants (tenant_id, display_name, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET display_name = excluded.display_name, updated_at = excluded.updated_at`),
			t.TenantID, t.Name, db.ts(now)); err != nil {
			return fmt.Errorf("save name of tenant %s: %w", t.TenantID, err)
		}
	}
	state := "available"
	if !t.Available {
		state = "unavailable"
	}
	if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO run_tenants (run_id, tenant_id, graph, reason, enabled_users)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, tenant_id) DO UPDATE SET graph = excluded.graph,
		reason = excluded.reason, enabled_users = excluded.enabled_users`),
		runID, t.TenantID, state, t.Reason, t.EnabledUsers); err != nil {
		return fmt.Errorf("save Graph state of tenant %s in run %d: %w", t.TenantID, runID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save tenant %s: commit: %w", t.TenantID, err)
	}
	return nil
}

// TenantGraphs returns the Graph state of every tenant recorded for run
// runID, with the tenant names, by tenant id.
func (db *DB) TenantGraphs(ctx context.Context, runID int64) ([]blockreport.TenantGraph, error) {
	var rows []struct {
		TenantID     string `db:"tenant_id"`
		Name         string `db:"display_name"`
		Graph        string `db:"graph"`
		Reason       string `db:"reason"`
		EnabledUsers int    `db:"enabled_users"`
	}
	err := db.x.SelectContext(ctx, &rows, db.rebind(`SELECT t.tenant_id, COALESCE(n.display_name, '') AS display_name,
		t.graph, t.reason, t.enabled_users FROM run_tenants t LEFT JOIN tenants n ON n.tenant_id = t.tenant_id
		WHERE t.run_id = ? ORDER BY t.tenant_id`), runID)
	if err != nil {
		return nil, fmt.Errorf("tenants of run %d: %w", runID, err)
	}
	out := make([]blockreport.TenantGraph, len(rows))
	for i, r := range rows {
		out[i] = blockreport.TenantGraph{TenantID: r.TenantID, Name: r.Name, Available: r.Graph == "available", Reason: r.Reason, EnabledUsers: r.EnabledUsers}
	}
	return out, nil
}

// TenantNames returns every known tenant name by tenant id.
func (db *DB) TenantNames(ctx context.Context) (map[string]string, error) {
	var rows []struct {
		ID   string `db:"tenant_id"`
		Name string `db:"display_name"`
	}
	if err := db.x.SelectContext(ctx, &rows, `SELECT tenant_id, display_name FROM tenants`); err != nil {
		return nil, fmt.Errorf("tenant names: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// GraphCounts counts the cross-checks of run runID by outcome.
func (db *DB) GraphCounts(ctx context.Context, runID int64) (map[blockreport.GraphOutcome]int, error) {
	var rows []struct {
		Outcome string `db:"outcome"`
		N       int    `db:"n"`
	}
	if err := db.x.SelectContext(ctx, &rows, db.rebind(`SELECT outcome, COUNT(*) AS n FROM graph_checks WHERE run_id = ? GROUP BY outcome`), runID); err != nil {
		return nil, fmt.Errorf("graph checks of run %d: %w", runID, err)
	}
	out := map[blockreport.GraphOutcome]int{}
	for _, r := range rows {
		out[blockreport.GraphOutcome(r.Outcome)] = r.N
	}
	return out, nil
}

// Coverage calls fn, in tenant and name order, for every coverage user of
// run runID (enabled directory users without a reference when the run
// started), with the directory's view of them. It streams from one query:
// fn must not use the store.
func (db *DB) Coverage(ctx context.Context, runID int64, fn func(blockreport.CoverageUser, blockreport.DirectoryUser) error) error {
	rows, err := db.x.QueryxContext(ctx, db.rebind(`SELECT c.tenant_id, c.aad_object_id, c.installed, COALESCE(c.reference_id, 0) AS reference_id,
		COALESCE(d.display_name, '') AS display_name, COALESCE(d.upn, '') AS upn, COALESCE(d.mail, '') AS mail,
		COALESCE(d.department, '') AS department, COALESCE(d.job_title, '') AS job_title,
		COALESCE(d.office_location, '') AS office_location, COALESCE(d.country, '') AS country
		FROM coverage_users c LEFT JOIN directory_users d ON d.tenant_id = c.tenant_id AND d.aad_object_id = c.aad_object_id
		WHERE c.run_id = ? ORDER BY c.tenant_id, display_name, c.aad_object_id`), runID)
	if err != nil {
		return fmt.Errorf("coverage of run %d: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r struct {
			TenantID       string `db:"tenant_id"`
			AADObjectID    string `db:"aad_object_id"`
			Installed      bool   `db:"installed"`
			ReferenceID    int64  `db:"reference_id"`
			DisplayName    string `db:"display_name"`
			UPN            string `db:"upn"`
			Mail           string `db:"mail"`
			Department     string `db:"department"`
			JobTitle       string `db:"job_title"`
			OfficeLocation string `db:"office_location"`
			Country        string `db:"country"`
		}
		if err := rows.StructScan(&r); err != nil {
			return fmt.Errorf("coverage of run %d: %w", runID, err)
		}
		c := blockreport.CoverageUser{TenantID: r.TenantID, AADObjectID: r.AADObjectID, Installed: r.Installed, ReferenceID: r.ReferenceID}
		u := blockreport.DirectoryUser{TenantID: r.TenantID, AADObjectID: r.AADObjectID, InDirectory: true, AccountEnabled: true,
			DisplayName: r.DisplayName, UPN: r.UPN, Mail: r.Mail, Department: r.Department, JobTitle: r.JobTitle,
			OfficeLocation: r.OfficeLocation, Country: r.Country}
		if err := fn(c, u); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("coverage of run %d: %w", runID, err)
	}
	return nil
}

// CoverageDone tells whether coverage already ran for tenantID in run
// runID (its enabled-user count is recorded).
func (db *DB) CoverageDone(ctx context.Context, runID int64, tenantID string) (bool, error) {
	var n int
	err := db.x.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM run_tenants WHERE run_id = ? AND tenant_id = ? AND enabled_users >= 0`), runID, tenantID)
	if err != nil {
		return false, fmt.Errorf("coverage of tenant %s in run %d: %w", tenantID, runID, err)
	}
	return n > 0, nil
}

// ReferenceTenants lists the tenants of the stored references.
func (db *DB) ReferenceTenants(ctx context.Context) ([]string, error) {
	var out []string
	if err := db.x.SelectContext(ctx, &out, `SELECT DISTINCT tenant_id FROM conversation_references ORDER BY tenant_id`); err != nil {
		return nil, fmt.Errorf("tenants of the references: %w", err)
	}
	return out, nil
}

// UsersWithReferences returns which of the AAD object ids of tenantID
// have a personal reference.
func (db *DB) UsersWithReferences(ctx context.Context, tenantID string, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	for start := 0; start < len(ids); start += saveChunk {
		chunk := ids[start:min(start+saveChunk, len(ids))]
		q, args, err := sqlx.In(`SELECT DISTINCT aad_object_id FROM conversation_references
			WHERE tenant_id = ? AND conversation_type = 'personal' AND aad_object_id IN (?)`, tenantID, chunk)
		if err != nil {
			return nil, fmt.Errorf("references of users of tenant %s: %w", tenantID, err)
		}
		var found []string
		if err := db.x.SelectContext(ctx, &found, db.rebind(q), args...); err != nil {
			return nil, fmt.Errorf("references of users of tenant %s: %w", tenantID, err)
		}
		for _, id := range found {
			out[id] = true
		}
	}
	return out, nil
}

// TenantServiceURL is the most common service URL among tenantID's
// references ("" when it has none).
func (db *DB) TenantServiceURL(ctx context.Context, tenantID string) (string, error) {
	var out []string
	err := db.x.SelectContext(ctx, &out, db.rebind(`SELECT service_url FROM conversation_references WHERE tenant_id = ?
		GROUP BY service_url ORDER BY COUNT(*) DESC, service_url LIMIT 1`), tenantID)
	if err != nil {
		return "", fmt.Errorf("service URL of tenant %s: %w", tenantID, err)
	}
	if len(out) == 0 {
		return "", nil
	}
	return out[0], nil
}

// SaveCoverage records coverage users of tenantID in run runID and creates
// the references of those who installed the app without one (refs, by
// AAD object id: the installation's chat), in one transaction. A
// reference that already exists (same tenant, conversation and user) is
// kept as it is.
func (db *DB) SaveCoverage(ctx context.Context, runID int64, users []blockreport.CoverageUser, refs map[string]blockreport.Reference, now time.Time) error {
	if len(users) == 0 {
		return nil
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save coverage of run %d: %w", runID, err)
	}
	defer rollback(tx)
	for _, u := range users {
		var refID any
		if ref, ok := refs[u.AADObjectID]; ok {
			_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO conversation_references
				(tenant_id, user_id, aad_object_id, user_name, email, conversation_id, conversation_type, service_url,
				 bot_id, channel_id, locale, first_seen, last_seen)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (tenant_id, conversation_id, user_id) DO NOTHING`),
				ref.TenantID, ref.UserID, ref.AADObjectID, ref.UserName, ref.Email, ref.ConversationID,
				string(ref.ConversationType), ref.ServiceURL, ref.BotID, ref.ChannelID, ref.Locale, db.ts(now), db.ts(now))
			if err != nil {
				return fmt.Errorf("create the reference of user %s of tenant %s: %w", u.AADObjectID, u.TenantID, err)
			}
			var id int64
			if err := tx.GetContext(ctx, &id, db.rebind(`SELECT id FROM conversation_references
				WHERE tenant_id = ? AND conversation_id = ? AND user_id = ?`), ref.TenantID, ref.ConversationID, ref.UserID); err != nil {
				return fmt.Errorf("read the reference of user %s of tenant %s: %w", u.AADObjectID, u.TenantID, err)
			}
			refID = id
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO coverage_users (run_id, tenant_id, aad_object_id, installed, reference_id)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, tenant_id, aad_object_id) DO NOTHING`),
			runID, u.TenantID, u.AADObjectID, u.Installed, refID); err != nil {
			return fmt.Errorf("save coverage of user %s of tenant %s: %w", u.AADObjectID, u.TenantID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save coverage of run %d: commit: %w", runID, err)
	}
	return nil
}
