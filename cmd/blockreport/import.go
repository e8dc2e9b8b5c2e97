package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/blockreport/blockreport/ingest"
	"github.com/blockreport/blockreport/store"
)

type importConfig struct {
	common      commonConfig
	Format      string
	SkipInvalid bool
	DryRun      bool
	Files       []string
	stores      storeConfig // import_stores.go

	progressEvery time.Duration // log-line interval when stderr is not a terminal
}

// maxListed is how many rejected records import lists before a count.
const maxListed = 50

// runImport reads conversation references from files and upserts them into
// the store, all in one transaction. By default one bad record rejects the
// whole import (exit 2); with --skip-invalid the valid ones are imported.
// Either way the rejected records are listed as FILE:LINE: reason, and the
// last line on stdout counts added, updated, unchanged and rejected.
// Records stream from the files to the store in chunks: memory does not
// grow with the number of references.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg importConfig
	fs := newFlagSet("import", "import [flags] FILE|azblob://CONTAINER[/PREFIX]|aztable://TABLE... (- for standard input)", getenv, stderr)
	fs.common(&cfg.common)
	fs.stringVar(&cfg.Format, "format", "auto", "input format: "+storeFormatsHelp, "BLOCKREPORT_IMPORT_FORMAT")
	cfg.stores.register(fs)
	fs.boolVar(&cfg.SkipInvalid, "skip-invalid", false, "import the valid records and list the rejected ones, instead of rejecting the whole import", "BLOCKREPORT_IMPORT_SKIP_INVALID")
	fs.boolVar(&cfg.DryRun, "dry-run", false, "read and check the input and list its problems, but do not open the store or write anything", "BLOCKREPORT_IMPORT_DRY_RUN")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg.Files = fs.Args()
	cfg.progressEvery = 5 * time.Second
	if len(cfg.Files) == 0 {
		return usageErrorf("import: no FILE given")
	}
	if !ingest.Format(cfg.Format).Valid() && !ingest.IsStoreFormat(ingest.Format(cfg.Format)) {
		return usageErrorf("import: --format %q: want %s", cfg.Format, storeFormatsHelp)
	}
	if err := cfg.stores.check(); err != nil {
		return err
	}
	var files []string
	var azure []azureSource
	for _, arg := range cfg.Files {
		a, ok, err := parseAzure(arg)
		if err != nil {
			return err
		}
		if ok {
			azure = append(azure, a)
		} else {
			files = append(files, arg)
		}
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	if _, _, err := store.ParseURL(cfg.common.DB); err != nil {
		return usageErrorf("--db: %v", err)
	}
	sources, err := fileSources(files, ingest.Format(cfg.Format), cfg.stores.defaults(), os.Stdin)
	if err != nil {
		return err
	}
	if len(azure) > 0 {
		acct, err := cfg.stores.storageAccount(getenv, logger)
		if err != nil {
			return err
		}
		az, err := azureSources(ctx, azure, acct, ingest.Format(cfg.Format), cfg.stores.defaults())
		if err != nil {
			return err
		}
		sources = append(sources, az...)
	}
	if cfg.DryRun {
		return importSources(ctx, nil, sources, cfg, logger, stdout, stderr)
	}
	db, err := openStore(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	if err := importSources(ctx, db, sources, cfg, logger, stdout, stderr); err != nil {
		// A rejected or interrupted import that created the store leaves
		// none behind (the next command then says "no such file").
		if derr := db.Discard(context.WithoutCancel(ctx)); derr != nil {
			logger.Warn("import: could not remove the empty store it created", "error", derr)
		}
		return err
	}
	return db.Close()
}

// importSource is one input of an import. open returns its records (see
// ingest.Read and ingest.Documents) and a func that releases it. A new kind
// of source (an Azure blob container, an Azure table) is a func that
// returns importSources for importSources' loop: the records of every
// source go through one transaction, in order.
type importSource struct {
	name string
	size int64 // bytes, or -1 if unknown (for the progress ETA)
	open func(read *atomic.Int64) (iter.Seq2[ingest.Record, error], func(), error)
}

// fileSources are the sources of the FILE arguments ("-" is stdin). A
// missing file is a usage error, found before anything is read.
func fileSources(names []string, format ingest.Format, d ingest.Defaults, stdin io.Reader) ([]importSource, error) {
	var out []importSource
	for _, name := range names {
		if name == "-" {
			out = append(out, importSource{name: "-", size: -1,
				open: func(read *atomic.Int64) (iter.Seq2[ingest.Record, error], func(), error) {
					return storeFileRecords(countingReader{stdin, read}, "-", format, d), func() {}, nil
				}})
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, usageErrorf("import: %v", err)
			}
			return nil, fmt.Errorf("import: %w", err)
		}
		if fi.IsDir() {
			return nil, usageErrorf("import: %s is a directory", name)
		}
		out = append(out, importSource{name: name, size: fi.Size(),
			open: func(read *atomic.Int64) (iter.Seq2[ingest.Record, error], func(), error) {
				f, err := os.Open(name)
				if err != nil {
					return nil, nil, fmt.Errorf("import: %w", err)
				}
				return storeFileRecords(countingReader{f, read}, name, format, d), func() { f.Close() }, nil
			}})
	}
	return out, nil
}

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// importProgress is what the progress display reads while an import runs.
type importProgress struct {
	records, rejected, bytes atomic.Int64
	total                    int64 // bytes, or -1 if unknown
}

// errInterrupted is what an import stopped by a signal returns.
var errInterrupted = errors.New("import: interrupted: nothing imported, the store is as it was")

// importSources streams the records of sources into db in one import
// session: one goroutine reads and validates (readSources) while this one
// writes, a few chunks apart, so that parsing and the database overlap.
// Problems are listed on stderr as they come (the first maxListed).
// Without --skip-invalid the first problem rolls the session back and the
// rest of the input is only read, to list its problems. A signal (ctx)
// rolls back and returns at once, even while a read blocks (a slow pipe).
// With a nil db (--dry-run) it only reads and checks.
func importSources(ctx context.Context, db *store.DB, sources []importSource, cfg importConfig, logger *slog.Logger, stdout, stderr io.Writer) error {
	prog := &importProgress{}
	for _, s := range sources {
		if s.size < 0 || prog.total < 0 {
			prog.total = -1
		} else {
			prog.total += s.size
		}
	}
	var im *store.Import
	batch := 500
	if db != nil {
		var err error
		if im, err = db.BeginImport(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return fmt.Errorf("import: %w", err)
		}
		defer im.Rollback()
		batch = im.ChunkSize()
	}
	progress := showImportProgress(prog, cfg.progressEvery, logger, stderr)
	defer progress.Stop()

	readCtx, stopReading := context.WithCancel(ctx)
	r := &sourceReader{sources: sources, prog: prog, progress: progress, logger: logger,
		batch: batch, skipInvalid: cfg.SkipInvalid,
		batches: make(chan []ingest.Record, 2), done: make(chan error, 1)}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		r.run(readCtx)
	}()
	defer func() {
		stopReading()
		if ctx.Err() == nil {
			<-exited // it stops at its next record; after a signal, it may be stuck in a read
		}
	}()

	writing := true
	chunks := 0
	for writing || r.batches != nil {
		select {
		case <-ctx.Done():
			return errInterrupted
		case batch, ok := <-r.batches:
			if !ok {
				r.batches = nil
				writing = false
				continue
			}
			if im == nil {
				continue
			}
			if r.rejecting.Load() {
				im.Rollback() // release the store now; the reader lists the rest
				continue
			}
			for _, rec := range batch {
				if err := im.Add(ctx, rec.Ref); err != nil {
					if ctx.Err() != nil {
						return errInterrupted
					}
					return err
				}
			}
			chunks++
			logger.Debug("import chunk", "chunk", chunks, "records", prog.records.Load())
		}
	}
	select {
	case <-ctx.Done():
		return errInterrupted
	case err := <-r.done:
		if err != nil {
			return err
		}
	}
	progress.Stop()
	rejected := int(prog.rejected.Load())
	if rejected > maxListed {
		fmt.Fprintf(stderr, "... and %d more\n", rejected-maxListed)
	}
	if im == nil {
		fmt.Fprintf(stdout, "dry run: %d valid, rejected %d, nothing written\n", prog.records.Load(), rejected)
		if rejected > 0 && !cfg.SkipInvalid {
			return withCode(2, fmt.Errorf("import: %d invalid record(s)", rejected))
		}
		return nil
	}
	if rejected > 0 && !cfg.SkipInvalid {
		fmt.Fprintf(stdout, "added 0, updated 0, unchanged 0, rejected %d\n", rejected)
		return withCode(2, fmt.Errorf("import: %d invalid record(s), nothing imported (--skip-invalid imports the valid ones)", rejected))
	}
	counts, err := im.Commit(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	_, err = fmt.Fprintf(stdout, "added %d, updated %d, unchanged %d, rejected %d\n",
		counts.Added, counts.Updated, counts.Unchanged, rejected)
	return err
}

// sourceReader reads the sources in order and sends their valid records in
// batches; it lists and counts the problems.
type sourceReader struct {
	sources     []importSource
	prog        *importProgress
	progress    *progressDisplay
	logger      *slog.Logger
	batch       int
	skipInvalid bool

	batches   chan []ingest.Record // closed at the end
	done      chan error           // then the read error, or nil
	rejecting atomic.Bool          // a problem rejects the import: stop writing
}

func (r *sourceReader) run(ctx context.Context) {
	defer close(r.batches)
	r.done <- r.read(ctx)
}

func (r *sourceReader) read(ctx context.Context) error {
	listed := 0
	batch := make([]ingest.Record, 0, r.batch)
	send := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case r.batches <- batch:
			batch = make([]ingest.Record, 0, r.batch)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, s := range r.sources {
		recs, closeSource, err := s.open(&r.prog.bytes)
		if err != nil {
			return err
		}
		n := 0
		for rec, err := range recs {
			if ctx.Err() != nil {
				closeSource()
				return ctx.Err()
			}
			var p ingest.Problem
			switch {
			case errors.As(err, &p):
				r.prog.rejected.Add(1)
				if listed < maxListed {
					r.progress.Println(p)
					listed++
				}
				if !r.skipInvalid && !r.rejecting.Load() {
					r.rejecting.Store(true)
					batch = batch[:0]
				}
			case err != nil:
				closeSource()
				return fmt.Errorf("import: %w", err)
			default:
				n++
				r.prog.records.Add(1)
				if r.rejecting.Load() {
					continue
				}
				batch = append(batch, rec)
				if len(batch) == r.batch && !send() {
					closeSource()
					return ctx.Err()
				}
			}
		}
		closeSource()
		r.logger.Debug("read", "source", s.name, "records", n)
	}
	if !send() {
		return ctx.Err()
	}
	return nil
}
