-- Initial schema. Written for PostgreSQL; for SQLite the store rewrites
-- "BIGSERIAL PRIMARY KEY" to "INTEGER PRIMARY KEY" and "TIMESTAMPTZ" to
-- "TEXT" (see store/migrate.go). Keep everything else portable.

-- +goose Up
CREATE TABLE conversation_references (
    id                BIGSERIAL PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL DEFAULT '',
    aad_object_id     TEXT NOT NULL DEFAULT '',
    user_name         TEXT NOT NULL DEFAULT '',
    email             TEXT NOT NULL DEFAULT '',
    conversation_id   TEXT NOT NULL DEFAULT '',
    conversation_type TEXT NOT NULL,
    team_id           TEXT NOT NULL DEFAULT '',
    service_url       TEXT NOT NULL,
    bot_id            TEXT NOT NULL DEFAULT '',
    channel_id        TEXT NOT NULL DEFAULT '',
    locale            TEXT NOT NULL DEFAULT '',
    opted_out         BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen        TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    raw               TEXT,
    UNIQUE (tenant_id, conversation_id, user_id),
    CHECK (tenant_id <> ''),
    CHECK (service_url <> ''),
    CHECK (conversation_type IN ('personal', 'groupChat', 'channel'))
);
-- Pending lookup: the references of one tenant in id order.
CREATE INDEX conversation_references_tenant ON conversation_references (tenant_id, id);

CREATE TABLE probe_runs (
    id          BIGSERIAL PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    mode        TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,
    params      TEXT,
    totals      TEXT
);
CREATE INDEX probe_runs_state ON probe_runs (state, id);

CREATE TABLE probe_results (
    run_id          BIGINT NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    reference_id    BIGINT NOT NULL REFERENCES conversation_references (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    http_status     INTEGER NOT NULL DEFAULT 0,
    detail          TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    latency_ms      BIGINT NOT NULL DEFAULT 0,
    probed_at       TIMESTAMPTZ NOT NULL,
    previous_status TEXT NOT NULL DEFAULT '',
    status_since    TIMESTAMPTZ NOT NULL,
    -- One row per reference per run: a resumed run never double-counts, and
    -- the key also serves the pending lookup and per-run listing.
    PRIMARY KEY (run_id, reference_id)
);
-- Latest result per reference, previous run, history per reference.
CREATE INDEX probe_results_reference ON probe_results (reference_id, run_id);
-- Totals per run.
CREATE INDEX probe_results_run_status ON probe_results (run_id, status);

-- +goose Down
DROP TABLE probe_results;
DROP TABLE probe_runs;
DROP TABLE conversation_references;
