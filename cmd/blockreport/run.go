package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// runConfig is the configuration of the run command: the probe's and the
// report's, plus the share of unchecked conversations it tolerates.
type runConfig struct {
	probe        probeConfig
	report       reportConfig
	MaxUnchecked float64 // percent
}

const runSynopsis = "run --out DIR [--db URL] [--app-id ID] [--auth KIND] [--app-password-file FILE] [--mode typing|message|members] [--max-unchecked PCT] [--retry-unchecked [--run RUN]] [flags]" + credentialsHelp

// exitUnchecked is the exit code of a run that finished with more
// forbidden, throttled or failed conversations than --max-unchecked allows.
const exitUnchecked = 3

// runRun probes every stored conversation (resuming an unfinished run) and
// writes the run's reports: the cron entry point. With --retry-unchecked it
// re-probes the unchecked results of the latest finished run in place and
// writes that run's reports again. It prints the report paths on stdout.
// Exit codes: 0 done; 1 the run failed or was interrupted; 2 usage error;
// 3 finished, but too many conversations could not be checked.
func runRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.probe.common.logger(stderr)
	if err != nil {
		return err
	}
	// Fail before probing, not after an hour of it.
	if err := checkOutDir(cfg.report.Out); err != nil {
		return err
	}
	limitMemory(getenv)

	db, err := openExisting(ctx, cfg.probe.common.DB, logger)
	var ee *exitError
	if errors.As(err, &ee) {
		return err // already names the flag
	}
	if err != nil {
		return fmt.Errorf("%w (check --db or BLOCKREPORT_DB, and that the database is up)", err)
	}
	defer db.Close()
	n, err := db.CountReferences(ctx)
	if err != nil {
		return fmt.Errorf("count references: %w", err)
	}
	if n == 0 {
		return errors.New("the store holds no conversation references: import them with \"blockreport import\" or point --db at the bot's database")
	}

	if err := cfg.report.notify.preflight(ctx, db, cfg.probe); err != nil {
		return err
	}
	run, err := probeRun(ctx, cfg.probe, db, logger, stderr)
	if merr := cfg.probe.metrics.write(run); err == nil {
		err = merr
	}
	if err != nil {
		return err
	}
	paths, r, err := buildReports(ctx, cfg.report, db, run, logger)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if _, err := fmt.Fprintln(stdout, p); err != nil {
			return err
		}
	}
	if err := cfg.report.notify.send(ctx, db, cfg.probe, r, paths, logger, stderr); err != nil {
		return err
	}
	return checkUnchecked(run, cfg.MaxUnchecked)
}

func parseRunFlags(args []string, getenv func(string) string, stderr io.Writer) (runConfig, error) {
	var cfg runConfig
	fs := newFlagSet("run", runSynopsis, getenv, stderr)
	fs.common(&cfg.probe.common)
	cfg.probe.register(fs, getenv)
	cfg.report.register(fs)
	cfg.report.notify.register(fs)
	fs.floatVar(&cfg.MaxUnchecked, "max-unchecked", 5, "percent of conversations that may end forbidden, throttled or failed; above it the run exits 3", "BLOCKREPORT_MAX_UNCHECKED")
	if err := fs.parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageErrorf("run: unexpected argument %q", fs.Arg(0))
	}
	if cfg.report.Out == "" {
		return cfg, usageErrorf("run: --out DIR is required (or set BLOCKREPORT_OUT)")
	}
	if _, err := cfg.report.formats(); err != nil {
		return cfg, fmt.Errorf("run: %w", err)
	}
	if err := cfg.report.notify.check("run", getenv); err != nil {
		return cfg, err
	}
	if cfg.MaxUnchecked < 0 || cfg.MaxUnchecked > 100 {
		return cfg, usageErrorf("run: --max-unchecked must be a percentage between 0 and 100")
	}
	if err := cfg.probe.check("run", getenv); err != nil {
		return cfg, err
	}
	cfg.report.common = cfg.probe.common
	return cfg, nil
}

// checkOutDir creates dir if needed and proves a file can be created in it.
func checkOutDir(dir string) error {
	err := os.MkdirAll(dir, 0o750)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".blockreport-check-*"); err == nil {
			f.Close()
			err = os.Remove(f.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("%w (set --out or BLOCKREPORT_OUT to a writable directory)", outDirError(dir, err))
	}
	return nil
}

// checkUnchecked returns an exit-3 error when the share of run's
// conversations that could not be checked is above maxPct percent.
func checkUnchecked(run blockreport.Run, maxPct float64) error {
	total, unchecked := run.Total(), 0
	var parts []string
	for _, s := range blockreport.Statuses {
		if s.Unchecked() {
			unchecked += run.Totals[s]
			parts = append(parts, string(s)+" "+strconv.Itoa(run.Totals[s]))
		}
	}
	if total == 0 {
		return nil
	}
	pct := 100 * float64(unchecked) / float64(total)
	if pct <= maxPct {
		return nil
	}
	retry := `re-probe just those later with "blockreport run --retry-unchecked"`
	if run.Mode == "message" {
		retry += ` (results with reason DeliveryUnknown may have had the message already: they are re-sent only with --include-unknown)`
	}
	return withCode(exitUnchecked, fmt.Errorf(
		"run %d finished, but %d of %d conversations (%.1f %%) could not be checked (%s), above --max-unchecked %g %%: see their reasons in the report; %s",
		run.ID, unchecked, total, pct, strings.Join(parts, ", "), maxPct, retry))
}
