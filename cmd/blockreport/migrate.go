package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/blockreport/blockreport/store"
)

type migrateConfig struct {
	common commonConfig
}

// runMigrate applies the store's pending migrations and prints the schema
// version.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg migrateConfig
	fs := newFlagSet("migrate", "migrate [flags]", getenv, stderr)
	fs.common(&cfg.common)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("migrate: unexpected argument %q", fs.Arg(0))
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "schema version %d (%s)\n", v, db.Driver()); err != nil {
		return err
	}
	return migrateQueue(ctx, db, stdout)
}

// openStore opens (and migrates) the store at url, creating a SQLite file
// that does not exist yet: for the commands that set a store up (import,
// migrate). A malformed URL is a usage error (exit 2).
func openStore(ctx context.Context, url string, logger *slog.Logger) (*store.DB, error) {
	if _, _, err := store.ParseURL(url); err != nil {
		return nil, usageErrorf("--db: %v", err)
	}
	return store.Open(ctx, url, logger)
}

// openExisting builds the logger the flags ask for and opens the existing
// store they name (see openExisting): the start of a command that reads.
func (c commonConfig) openExisting(ctx context.Context, stderr io.Writer) (*store.DB, error) {
	logger, err := c.logger(stderr)
	if err != nil {
		return nil, err
	}
	return openExisting(ctx, c.DB, logger)
}

// openExisting opens the store at url for every command that works on an
// existing store (runs, report, probe, run, check; export and history
// too): a sqlite: path that does not exist is a usage error, one line
// naming the path, and nothing is created.
func openExisting(ctx context.Context, url string, logger *slog.Logger) (*store.DB, error) {
	if _, _, err := store.ParseURL(url); err != nil {
		return nil, usageErrorf("--db: %v", err)
	}
	db, err := store.OpenExisting(ctx, url, logger)
	if errors.Is(err, store.ErrNoStore) {
		return nil, usageErrorf("--db %s: no such file; check the path (a store is created by \"blockreport import\")", url)
	}
	return db, err
}
