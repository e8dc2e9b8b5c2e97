package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

// reportConfig is the configuration of the report command.
type reportConfig struct {
	common commonConfig
	Run    string // "latest" or a run ID
	Out    string // directory the reports are written into
	Redact bool
	Format string // comma list of xlsx, html, json ("": xlsx,html)

	metrics metricsConfig // report command only (run has the probe's)
	notify  notifyConfig
}

const reportSynopsis = "report [--db URL] [--run ID|latest] --out DIR [--redact] [--format xlsx,html,json] [--metrics-file PATH] [--notify-conversation ID [--report-url URL] [--app-id ID] [--auth KIND] ...]"

func runReport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg reportConfig
	fs := newFlagSet("report", reportSynopsis, getenv, stderr)
	fs.common(&cfg.common)
	fs.stringVar(&cfg.Run, "run", "latest", "run to report on: a run ID, or latest (the latest finished run)", "BLOCKREPORT_RUN")
	cfg.register(fs)
	cfg.metrics.register(fs)
	cfg.notify.register(fs)
	cfg.notify.registerConnector(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("report: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.metrics.check("report"); err != nil {
		return err
	}
	if _, err := cfg.formats(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := cfg.notify.check("report", getenv); err != nil {
		return err
	}
	if cfg.Out == "" {
		return usageErrorf("report: --out DIR is required")
	}
	runID, err := parseRunFlag(cfg.Run)
	if err != nil {
		return err
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	limitMemory(getenv)

	db, err := openExisting(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := findRun(ctx, db, runID)
	if err != nil {
		return err
	}
	if cfg.notify.Conversation != "" {
		if err := cfg.notify.preflight(ctx, db, *cfg.notify.connector); err != nil {
			return err
		}
	}
	paths, r, err := buildReports(ctx, cfg, db, run, logger)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if _, err := fmt.Fprintln(stdout, p); err != nil {
			return err
		}
	}
	if err := cfg.metrics.write(run); err != nil {
		return err
	}
	if cfg.notify.Conversation != "" {
		return cfg.notify.send(ctx, db, *cfg.notify.connector, r, paths, logger, stderr)
	}
	return nil
}

// register defines the output flags (--out, --redact) on fs; the report and
// run commands share them.
func (cfg *reportConfig) register(fs *flagSet) {
	fs.stringVar(&cfg.Out, "out", "", "directory to write the .xlsx and .html into (required; created if missing)", "BLOCKREPORT_OUT")
	fs.boolVar(&cfg.Redact, "redact", false, "leadership copy: counts, tenants and trend, no names, emails or user IDs", "BLOCKREPORT_REDACT")
	fs.stringVar(&cfg.Format, "format", "xlsx,html", "files to write: a comma list of xlsx, html and json (the summary for scripts: run, totals, changes, per tenant, per department)", "BLOCKREPORT_FORMAT")
}

// limitMemory sets the soft memory limit large workbooks need to stay small,
// unless the user chose one with GOMEMLIMIT. A process setting, so it lives
// in the command, not in package report.
func limitMemory(getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(report.SuggestedMemoryLimit)
	}
}

// parseRunFlag maps --run to a run ID, 0 meaning the latest finished run.
func parseRunFlag(s string) (int64, error) {
	if s == "latest" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("report: --run %q: want a run ID (a positive number) or latest", s)
	}
	return id, nil
}

// findRun loads run id, or the latest finished run when id is 0: an
// unfinished run is reported on only when asked for by id (its report says
// it is incomplete).
func findRun(ctx context.Context, db *store.DB, id int64) (blockreport.Run, error) {
	if id == 0 {
		run, err := db.LatestFinishedRun(ctx)
		if !errors.Is(err, store.ErrNotFound) {
			return run, err
		}
		latest, err := db.LatestRun(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return run, errors.New("no runs yet: run \"blockreport probe\" first, then report on it")
		}
		if err != nil {
			return run, err
		}
		return run, fmt.Errorf("no finished run yet: run %d is %s (finish it with \"blockreport probe\", or report on it as it is with --run %d)",
			latest.ID, latest.State, latest.ID)
	}
	run, err := db.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return run, fmt.Errorf("no run %d", id)
	}
	return run, err
}

// reportFileBase is the file name, without extension, of run's reports:
// blockreport-<YYYY-MM-DD of the run's start, UTC>-run<ID>[-redacted].
func reportFileBase(run blockreport.Run, redact bool) string {
	base := fmt.Sprintf("blockreport-%s-run%d", run.StartedAt.UTC().Format("2006-01-02"), run.ID)
	if redact {
		base += "-redacted"
	}
	return base
}

// writeReports builds the report of run and writes its files (the
// workbook and HTML page unless --format says otherwise) into cfg.Out, each
// atomically, and returns their paths. The run command calls it after
// probing.
func writeReports(ctx context.Context, cfg reportConfig, db *store.DB, run blockreport.Run, logger *slog.Logger) ([]string, error) {
	paths, _, err := buildReports(ctx, cfg, db, run, logger)
	return paths, err
}

// buildReports is writeReports that also returns the report it wrote.
func buildReports(ctx context.Context, cfg reportConfig, db *store.DB, run blockreport.Run, logger *slog.Logger) ([]string, *report.Report, error) {
	formats, err := cfg.formats()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o750); err != nil {
		return nil, nil, outDirError(cfg.Out, err)
	}
	opts := report.Options{Redact: cfg.Redact, TempDir: cfg.Out}
	r, err := report.Build(ctx, db, run.ID, opts)
	if errors.Is(err, report.ErrNoRows) {
		return nil, nil, fmt.Errorf("run %d has no results yet: nothing to report", run.ID)
	}
	if err != nil {
		return nil, nil, err
	}
	logger.Info("report built", "run_id", run.ID, "conversations", r.Total, "redacted", cfg.Redact)
	base := filepath.Join(cfg.Out, reportFileBase(run, cfg.Redact))
	var paths []string
	for _, f := range formats {
		path := base + "." + f
		var write func(io.Writer) error
		switch f {
		case "xlsx":
			write = func(w io.Writer) error { return report.WriteExcel(ctx, w, r, db, opts) }
		case "html":
			write = func(w io.Writer) error { return report.WriteHTML(w, r) }
		case "json":
			write = func(w io.Writer) error { return report.WriteJSON(w, r) }
		}
		if err := writeFileAtomic(path, write); err != nil {
			return nil, nil, err
		}
		logger.Info("wrote report", "format", f, "path", path)
		paths = append(paths, path)
	}
	return paths, r, nil
}

// reportFormats are the formats --format accepts, in the order written.
var reportFormats = []string{"xlsx", "html", "json"}

// formats parses --format: a comma list of xlsx, html and json ("":
// xlsx,html), in the order of reportFormats.
func (cfg reportConfig) formats() ([]string, error) {
	list := cfg.Format
	if strings.TrimSpace(list) == "" {
		list = "xlsx,html"
	}
	want := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(reportFormats, f) {
			return nil, usageErrorf("--format: unknown format %q: want a comma list of xlsx, html and json", f)
		}
		want[f] = true
	}
	var out []string
	for _, f := range reportFormats {
		if want[f] {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, usageErrorf("--format %q: no format given: want a comma list of xlsx, html and json", cfg.Format)
	}
	return out, nil
}

// reportFileMode keeps the reports, which hold personal data, from other
// users of the machine.
const reportFileMode = 0o640

// writeFileAtomic writes path through a temporary file in the same
// directory that is synced and renamed over path only once write succeeded,
// so path is never a half-written file; on any error the temporary file is
// removed.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	return writeFileAtomicMode(path, reportFileMode, write)
}

// writeFileAtomicMode is writeFileAtomic with the file's mode.
func writeFileAtomicMode(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return outDirError(dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	// Make the rename itself durable; not every file system can sync a
	// directory, and the file is complete either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// outDirError is the one-line error for an output directory the command
// cannot write into.
func outDirError(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("--out %s: cannot write reports there: %v", dir, err)
}
