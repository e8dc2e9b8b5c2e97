-- Import provenance (issue 15): where each reference was last imported
-- from, so that a report row can be traced back to its record. source is
-- the file as named on the command line, azblob://CONTAINER or
-- aztable://TABLE (with the storage account); source_key the record's key
-- there: the blob name as stored, PartitionKey/RowKey, a Cosmos realId, a
-- store dump's key, or "line N" of a file without keys. Like raw, they
-- follow the newest import and never count as a change. Written for
-- PostgreSQL; see 00001_init.sql for what SQLite rewrites.

-- +goose Up
ALTER TABLE conversation_references ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE conversation_references ADD COLUMN source_key TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE conversation_references DROP COLUMN source_key;
ALTER TABLE conversation_references DROP COLUMN source;
