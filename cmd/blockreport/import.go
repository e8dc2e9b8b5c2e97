package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/ingest"
	"github.com/blockreport/blockreport/store"
)

type importConfig struct {
	common      commonConfig
	Format      string
	SkipInvalid bool
	Files       []string
}

// maxListed is how many rejected records import lists before a count.
const maxListed = 50

// runImport reads conversation references from files and upserts them into
// the store, all in one transaction. By default one bad record rejects the
// whole import (exit 2); with --skip-invalid the valid ones are imported.
// Either way the rejected records are listed as FILE:LINE: reason, and the
// last line on stdout counts added, updated, unchanged and rejected.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg importConfig
	fs := newFlagSet("import", "import [flags] FILE... (- for standard input)", getenv, stderr)
	fs.common(&cfg.common)
	fs.stringVar(&cfg.Format, "format", "auto", "input format: auto, conversationreference, teamsfx or csv", "BLOCKREPORT_IMPORT_FORMAT")
	fs.boolVar(&cfg.SkipInvalid, "skip-invalid", false, "import the valid records and list the rejected ones, instead of rejecting the whole import", "BLOCKREPORT_IMPORT_SKIP_INVALID")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg.Files = fs.Args()
	if len(cfg.Files) == 0 {
		return usageErrorf("import: no FILE given")
	}
	if !ingest.Format(cfg.Format).Valid() {
		return usageErrorf("import: --format %q: want auto, conversationreference, teamsfx or csv", cfg.Format)
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	// Check the URL before reading files, but open the store (which
	// migrates it) only when there is something to write.
	if _, _, err := store.ParseURL(cfg.common.DB); err != nil {
		return usageErrorf("--db: %v", err)
	}

	var refs []blockreport.Reference
	var problems []ingest.Problem
	for _, name := range cfg.Files {
		recs, probs, err := parseFile(name, ingest.Format(cfg.Format), os.Stdin)
		if err != nil {
			return err
		}
		for _, r := range recs {
			refs = append(refs, r.Ref)
		}
		problems = append(problems, probs...)
		logger.Debug("parsed", "file", name, "records", len(recs), "rejected", len(probs))
	}
	listProblems(stderr, problems)
	if len(problems) > 0 && !cfg.SkipInvalid {
		fmt.Fprintf(stdout, "added 0, updated 0, unchanged 0, rejected %d\n", len(problems))
		return withCode(2, fmt.Errorf("import: %d invalid record(s), nothing imported (--skip-invalid imports the valid ones)", len(problems)))
	}

	db, err := openStore(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	counts, err := db.UpsertReferences(ctx, refs, time.Now())
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "added %d, updated %d, unchanged %d, rejected %d\n",
		counts.Added, counts.Updated, counts.Unchanged, len(problems))
	return err
}

// parseFile parses one file ("-" is stdin).
func parseFile(name string, format ingest.Format, stdin io.Reader) ([]ingest.Record, []ingest.Problem, error) {
	if name == "-" {
		return ingest.Parse(stdin, "-", format)
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, usageErrorf("import: %v", err)
		}
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	return ingest.Parse(f, name, format)
}

// listProblems prints the first maxListed problems, then how many more.
func listProblems(w io.Writer, problems []ingest.Problem) {
	for i, p := range problems {
		if i == maxListed {
			fmt.Fprintf(w, "... and %d more\n", len(problems)-maxListed)
			break
		}
		fmt.Fprintln(w, p)
	}
}
