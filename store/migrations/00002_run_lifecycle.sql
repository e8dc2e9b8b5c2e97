-- Run lifecycle (issue 12): the durable record of message-mode sends.
-- Written for PostgreSQL; see 00001_init.sql for what SQLite rewrites.

-- +goose Up
-- In message mode a conversation is recorded here, in its own committed
-- transaction, before its message goes out. The primary key makes the
-- claim exclusive: whichever process inserts the row is the only one that
-- may send to that conversation in that run; every other process, a retry
-- and a resume see the row and send nothing. A row whose reference has no
-- result in probe_results is a send whose answer was never recorded (the
-- process died): it ends as failed with reason DeliveryUnknown, never as a
-- second message. The row stays after the result is saved, as the record
-- that a message may have been delivered; re-probing a result in place
-- (run --retry-unchecked) deletes it first.
CREATE TABLE probe_sends (
    run_id       BIGINT NOT NULL REFERENCES probe_runs (id) ON DELETE CASCADE,
    reference_id BIGINT NOT NULL REFERENCES conversation_references (id) ON DELETE CASCADE,
    claimed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, reference_id)
);
-- Deleting a reference cascades here; its lookup needs this index.
CREATE INDEX probe_sends_reference ON probe_sends (reference_id);

-- +goose Down
DROP TABLE probe_sends;
