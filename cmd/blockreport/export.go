package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/report"
)

// exportConfig is the configuration of the export command.
type exportConfig struct {
	common   commonConfig
	Run      string
	Statuses string
	Format   string
	Out      string
}

const exportSynopsis = "export [--db URL] [--run ID|latest] [--status LIST] [--format csv|jsonl] [--out FILE|-]"

// defaultExportStatuses are the statuses of the report's lists: every
// conversation the bot could not reach or could not check.
var defaultExportStatuses = []blockreport.Status{
	blockreport.StatusBlocked, blockreport.StatusUninstalled, blockreport.StatusAdminDisabled,
	blockreport.StatusNotFound, blockreport.StatusForbidden, blockreport.StatusThrottled,
	blockreport.StatusFailed, blockreport.StatusInvalid,
}

// runExport writes every row of one run with the chosen statuses, with all
// the list-sheet columns, as CSV or JSON Lines: for the bot's developers to
// clean up dead references. A file is written through a temporary file and
// renamed, so it is never half-written.
func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg exportConfig
	fs := newFlagSet("export", exportSynopsis, getenv, stderr)
	fs.common(&cfg.common)
	fs.stringVar(&cfg.Run, "run", "latest", "run to export: a run ID, or latest (the latest finished run)", "BLOCKREPORT_RUN")
	fs.stringVar(&cfg.Statuses, "status", "", "comma list of statuses to export, or all (default: every status of the report's lists: "+statusNames(defaultExportStatuses)+")", "BLOCKREPORT_EXPORT_STATUS")
	fs.stringVar(&cfg.Format, "format", "csv", "csv or jsonl (one JSON object a line)", "BLOCKREPORT_EXPORT_FORMAT")
	fs.stringVar(&cfg.Out, "out", "-", "file to write, or - for standard output", "BLOCKREPORT_EXPORT_OUT")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("export: unexpected argument %q", fs.Arg(0))
	}
	want, err := parseStatuses(cfg.Statuses)
	if err != nil {
		return err
	}
	format := report.ExportFormat(cfg.Format)
	if format != report.ExportCSV && format != report.ExportJSONL {
		return usageErrorf("export: --format %q: want csv or jsonl", cfg.Format)
	}
	runID, err := parseRunID("export", cfg.Run)
	if err != nil {
		return err
	}
	if cfg.Out == "" {
		return usageErrorf("export: --out: want a file name, or - for standard output")
	}
	if cfg.Out != "-" {
		if fi, err := os.Stat(cfg.Out); err == nil && fi.IsDir() {
			return usageErrorf("export: --out %s is a directory: want a file name", cfg.Out)
		}
		if err := checkWritableDir("export: --out", filepath.Dir(cfg.Out)); err != nil {
			return err
		}
	}
	logger, err := cfg.common.logger(stderr)
	if err != nil {
		return err
	}
	db, err := openExisting(ctx, cfg.common.DB, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := findRun(ctx, db, runID)
	if err != nil {
		return err
	}
	var rows int
	write := func(w io.Writer) error {
		e, err := report.NewExporter(w, format)
		if err != nil {
			return err
		}
		err = db.Rows(ctx, run.ID, func(r blockreport.Row) error {
			if !want[r.Status] {
				return nil
			}
			return e.Write(r)
		})
		if cerr := e.Close(); err == nil {
			err = cerr
		}
		rows = e.Rows()
		return err
	}
	if cfg.Out == "-" {
		if err := write(stdout); err != nil {
			return fmt.Errorf("export run %d: %w", run.ID, err)
		}
	} else if err := writeFileAtomic(cfg.Out, write); err != nil {
		return fmt.Errorf("export run %d: %w", run.ID, err)
	}
	where := cfg.Out
	if where == "-" {
		where = "standard output"
	}
	var listed []blockreport.Status
	for _, s := range blockreport.Statuses {
		if want[s] {
			listed = append(listed, s)
		}
	}
	logger.Info("exported", "run_id", run.ID, "rows", rows, "statuses", statusNames(listed), "to", where)
	return nil
}

// parseStatuses parses --status: a comma list of status names (as stored:
// not_found, admin_disabled, ...), or all; empty means the report's lists.
func parseStatuses(list string) (map[blockreport.Status]bool, error) {
	want := map[blockreport.Status]bool{}
	if strings.TrimSpace(list) == "" {
		for _, s := range defaultExportStatuses {
			want[s] = true
		}
		return want, nil
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case name == "":
			continue
		case name == "all":
			for _, s := range blockreport.Statuses {
				want[s] = true
			}
		case blockreport.Status(name).Valid():
			want[blockreport.Status(name)] = true
		default:
			return nil, usageErrorf("export: --status: unknown status %q: want a comma list of %s, or all", name, statusNames(blockreport.Statuses))
		}
	}
	if len(want) == 0 {
		return nil, usageErrorf("export: --status %q: no status given", list)
	}
	return want, nil
}

func statusNames(ss []blockreport.Status) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ",")
}

// parseRunID maps a --run flag to a run ID, 0 meaning the latest finished
// run; cmd names the command in the usage error.
func parseRunID(cmd, s string) (int64, error) {
	if s == "latest" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("%s: --run %q: want a run ID (a positive number) or latest", cmd, s)
	}
	return id, nil
}

// checkWritableDir proves a file can be created in dir (which must exist):
// what names a bad output path before any work is done.
func checkWritableDir(what, dir string) error {
	f, err := os.CreateTemp(dir, ".blockreport-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return usageErrorf("%s: cannot write into %s: %v", what, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
