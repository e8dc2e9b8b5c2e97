package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/blockreport/blockreport/runs"
)

type pruneConfig struct {
	common commonConfig
	Keep   int
	DryRun bool
}

// runPrune deletes the runs older than the --keep newest finished runs,
// with their results, in one transaction: the retention of the history.
func runPrune(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg pruneConfig
	fs := newFlagSet("prune", "prune --keep N [--db URL] [--dry-run]", getenv, stderr)
	fs.common(&cfg.common)
	fs.intVar(&cfg.Keep, "keep", 0, "keep the N newest finished runs (and any unfinished run newer than the oldest of them); delete every older run (required)", "BLOCKREPORT_PRUNE_KEEP")
	fs.boolVar(&cfg.DryRun, "dry-run", false, "list the runs that would be deleted, delete nothing", "BLOCKREPORT_PRUNE_DRY_RUN")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("prune: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Keep < 1 {
		return usageErrorf("prune: --keep N is required, N at least 1")
	}
	db, err := cfg.common.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	deleted, results, err := runs.Prune(ctx, db, cfg.Keep, cfg.DryRun)
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		_, err := fmt.Fprintf(stdout, "nothing to prune: at most %d finished runs and nothing older\n", cfg.Keep)
		return err
	}
	ids := make([]string, len(deleted))
	for i, r := range deleted {
		ids[len(deleted)-1-i] = strconv.FormatInt(r.ID, 10) // oldest first
	}
	verb, kept := "deleted", "kept"
	if cfg.DryRun {
		verb, kept = "would delete", "would keep"
	}
	_, err = fmt.Fprintf(stdout, "%s %s (%s) and their %s; %s the %s\n",
		verb, plural(len(deleted), "run", "runs"), strings.Join(ids, ", "), plural(results, "result", "results"),
		kept, plural(cfg.Keep, "newest finished run", "newest finished runs"))
	return err
}

// plural is "1 run" or "2 runs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
