package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/internal/pgtest"
)

// TestQueueNeedsPostgres: --queue and the worker on the embedded SQLite
// store are usage errors that name PostgreSQL, and nothing is created.
func TestQueueNeedsPostgres(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	for _, args := range [][]string{
		{"probe", "--queue"},
		{"run", "--queue", "--out", t.TempDir()},
		{"worker"},
	} {
		var out, errb bytes.Buffer
		code := exitCode(run(context.Background(), args, probeEnv(fake, u, nil), &out, &errb), &errb)
		if code != 2 || !strings.Contains(errb.String(), "PostgreSQL") {
			t.Errorf("%v: exit %d, %q; want 2 naming PostgreSQL", args, code, errb.String())
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(u, "sqlite:")); !os.IsNotExist(err) {
		t.Errorf("the store was created: %v", err)
	}
}

// TestWorkerUsage: bad worker flags are usage errors naming the flag.
func TestWorkerUsage(t *testing.T) {
	fake := startFake(t, faketeams.Config{})
	u := "postgres://127.0.0.1:1/none"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--jobs", "0"}, "--jobs"},
		{[]string{"--chunk-size", "0"}, "--chunk-size"},
		{[]string{"--chunk-time", "0s"}, "--chunk-time"},
		{[]string{"--rescue-after", "10s"}, "--rescue-after"},
		{[]string{"--schedule", "every tuesday"}, "--schedule"},
		{[]string{"--mode", "message", "--message-file", "m.txt"}, "--schedule"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
	} {
		var out, errb bytes.Buffer
		code := exitCode(run(context.Background(), append([]string{"worker"}, tc.args...), probeEnv(fake, u, nil), &out, &errb), &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 naming %s", tc.args, code, errb.String(), tc.want)
		}
	}
}

// TestMigrateCreatesQueueTables: on PostgreSQL, migrate creates River's
// tables beside goose's and says which version; a second migrate changes
// nothing.
func TestMigrateCreatesQueueTables(t *testing.T) {
	u := pgtest.URL(t)
	for i := range 2 {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "--db", u}, func(string) string { return "" }, &out, &errb); err != nil {
			t.Fatalf("migrate %d: %v: %s", i+1, err, errb.String())
		}
		if !strings.Contains(out.String(), "schema version") || !strings.Contains(out.String(), "queue tables version") {
			t.Fatalf("migrate %d printed %q", i+1, out.String())
		}
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"river_job", "river_migration", "river_leader", "goose_db_version", "probe_runs"} {
		var ok bool
		if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after migrate (%v)", table, err)
		}
	}
}
