package main

import (
	"context"
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
	_, err = fmt.Fprintf(stdout, "schema version %d (%s)\n", v, db.Driver())
	return err
}

// openStore opens (and migrates) the store at url; a malformed URL is a
// usage error (exit 2).
func openStore(ctx context.Context, url string, logger *slog.Logger) (*store.DB, error) {
	if _, _, err := store.ParseURL(url); err != nil {
		return nil, usageErrorf("--db: %v", err)
	}
	return store.Open(ctx, url, logger)
}
