package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/blockreport/blockreport/runs"
)

// runRunsDelete is "blockreport runs delete ID": it removes one run and
// its results in one transaction, and refuses the run being probed.
func runRunsDelete(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg commonConfig
	fs := newFlagSet("runs delete", "runs delete [--db URL] ID", getenv, stderr)
	fs.common(&cfg)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("runs delete: give exactly one run ID")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return usageErrorf("runs delete: %q is not a run ID (a positive number)", fs.Arg(0))
	}
	db, err := cfg.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := runs.Delete(ctx, db, id)
	switch {
	case errors.Is(err, runs.ErrNoRun):
		return usageErrorf("runs delete: no run %d", id)
	case errors.Is(err, runs.ErrInProgress):
		return fmt.Errorf("runs delete: run %d is being probed by another blockreport process; stop it or wait for it to finish", id)
	case err != nil:
		return err
	}
	_, err = fmt.Fprintf(stdout, "deleted run %d and its %d results\n", id, n)
	return err
}
