// Command blockreport reports which users and teams a Microsoft Teams bot can
// still reach.
//
// It reads the conversation references a bot stored, probes each conversation
// through the Bot Connector API, classifies every answer (reachable, blocked,
// uninstalled, admin disabled, not found, ...), keeps the history of runs and
// writes an Excel workbook and a self-contained HTML report.
//
// Usage:
//
//	blockreport <command> [flags]
//
// Run "blockreport help" for the list of commands and "blockreport <command>
// -h" for the flags of one; every flag can also be set by an environment
// variable, shown in the help text.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// signalContext returns a context that the first SIGINT or SIGTERM
// cancels (a probe run stops dispatching and gives in-flight probes the
// grace period); the second closes its abort channel (see abortOf: the
// probes in flight are cut off at once and the run is saved as
// interrupted); a third exits on the spot, as kill would.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	abort := make(chan struct{})
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for n := 1; ; n++ {
			<-sigs
			switch n {
			case 1:
				cancel()
			case 2:
				close(abort)
			default:
				os.Exit(130)
			}
		}
	}()
	ctx = context.WithValue(ctx, abortKey{}, (<-chan struct{})(abort))
	return ctx, func() { signal.Stop(sigs); cancel() }
}

type abortKey struct{}

// abortOf is the channel a second signal closes (nil, never closed, when
// ctx does not come from signalContext).
func abortOf(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(abortKey{}).(<-chan struct{})
	return ch
}

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

// commands is the table of subcommands; each lives in a file of its own.
var commands = map[string]command{
	"version": {"print the version", runVersion},
	"import":  {"import conversation references from files, Azure blobs (azblob://) or an Azure table (aztable://)", runImport},
	"migrate": {"apply the store's schema migrations", runMigrate},
	"report":  {"write the Excel workbook and HTML report of a run", runReport},
	"probe":   {"probe every stored conversation and record a run", runProbe},
	"run":     {"probe, then write the reports: the cron entry point", runRun},
	"runs":    {"list the recorded runs; runs delete ID removes one", runRuns},
	"prune":   {"delete the runs older than the --keep N newest finished ones", runPrune},
	"check":   {"check the setup without probing anyone: store, credentials, allow-list, files", runCheck},
	"history": {"one user's status in every run, oldest first (email, AAD id, 29: id or conversation id)", runHistory},
	"export":  {"write the rows of chosen statuses as CSV or JSON Lines (cleanup of dead references)", runExport},
	"demo":    {"try everything against a simulated Teams, nothing to configure", runDemo},
	"worker":  {"take probe work from the PostgreSQL store's queue until SIGTERM (several machines share a run)", runWorker},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return usageErrorf("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return usageErrorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], getenv, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "blockreport reports which users and teams a Teams bot can still reach.\n\nUsage: blockreport <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintf(w, "\nRun \"blockreport <command> -h\" for the flags of a command.\n")
}

func runVersion(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintf(stdout, "blockreport %s\n", version)
	return err
}

// exitError carries the process exit code for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error that exits with code 2.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// withCode wraps err so that the process exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// errHelp is returned when -h was asked for: the usage was printed, exit 0.
var errHelp = errors.New("help requested")

// exitCode prints err (one line) and maps it to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "blockreport: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
