// Package store keeps conversation references, probe runs and probe results
// in PostgreSQL or in an embedded SQLite file.
//
// One package serves both databases through sqlx: queries are written with
// "?" placeholders and rebound for PostgreSQL, and the SQL is kept portable.
// The few places that must differ per database are marked "per driver".
// The schema is a set of goose migrations embedded from migrations/*.sql; the
// same files and versions serve both databases (see migrate.go for the two
// type names rewritten for SQLite). Open applies pending migrations.
//
// Timestamps are stored in UTC with microsecond precision: TIMESTAMPTZ on
// PostgreSQL, fixed-width RFC 3339 text on SQLite (so text order is time
// order). Latencies are stored in milliseconds.
package store
