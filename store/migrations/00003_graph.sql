-- Microsoft Graph (issue 10): the installation cross-check of each
-- result, the directory's view of each user and tenant, and the coverage
-- of each tenant's enabled users. Written for PostgreSQL; see
-- 00001_init.sql for what SQLite rewrites.

-- +goose Up
-- One Graph check per result: what installedApps answered, and what it did
-- to the connector's verdict. A result Graph changed keeps the connector's
-- raw answer (reason, http_status) in probe_results; the status the
-- connector alone meant is connector_status here.
CREATE TABLE graph_checks (
    run_id              BIGINT NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    reference_id        BIGINT NOT NULL REFERENCES conversation_references (id) ON DELETE CASCADE,
    installed           TEXT NOT NULL,               -- yes, no, unknown
    graph_answer        TEXT NOT NULL DEFAULT '',    -- e.g. "HTTP 200 installed", "HTTP 404 NotFound"
    outcome             TEXT NOT NULL DEFAULT '',    -- confirmed, changed, relinked, noted, unavailable
    connector_status    TEXT NOT NULL DEFAULT '',    -- the status before Graph changed it
    note                TEXT NOT NULL DEFAULT '',
    old_conversation_id TEXT NOT NULL DEFAULT '',    -- the stale conversation a relink replaced
    checked_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, reference_id),
    CHECK (installed IN ('yes', 'no', 'unknown'))
);
CREATE INDEX graph_checks_reference ON graph_checks (reference_id);

-- The directory's latest view of a user (by tenant and AAD object id).
CREATE TABLE directory_users (
    tenant_id       TEXT NOT NULL,
    aad_object_id   TEXT NOT NULL,
    in_directory    BOOLEAN NOT NULL,
    display_name    TEXT NOT NULL DEFAULT '',
    upn             TEXT NOT NULL DEFAULT '',
    mail            TEXT NOT NULL DEFAULT '',
    department      TEXT NOT NULL DEFAULT '',
    job_title       TEXT NOT NULL DEFAULT '',
    office_location TEXT NOT NULL DEFAULT '',
    country         TEXT NOT NULL DEFAULT '',
    account_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    user_type       TEXT NOT NULL DEFAULT '',
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, aad_object_id)
);

-- Tenant display names (organization).
CREATE TABLE tenants (
    tenant_id    TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Graph per tenant per run: available or why not, and the coverage counts.
CREATE TABLE run_tenants (
    run_id        BIGINT NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL,
    graph         TEXT NOT NULL DEFAULT '',   -- available, unavailable
    reason        TEXT NOT NULL DEFAULT '',
    enabled_users INTEGER NOT NULL DEFAULT -1, -- -1: coverage not run
    PRIMARY KEY (run_id, tenant_id)
);

-- Coverage: enabled directory users the bot has no reference for.
CREATE TABLE coverage_users (
    run_id        BIGINT NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL,
    aad_object_id TEXT NOT NULL,
    installed     BOOLEAN NOT NULL,
    reference_id  BIGINT,  -- the reference created for an installed user
    PRIMARY KEY (run_id, tenant_id, aad_object_id)
);

-- +goose Down
DROP TABLE coverage_users;
DROP TABLE run_tenants;
DROP TABLE tenants;
DROP TABLE directory_users;
DROP INDEX graph_checks_reference;
DROP TABLE graph_checks;
