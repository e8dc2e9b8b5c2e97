package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

type runsConfig struct {
	common commonConfig
	Limit  int
	JSON   bool
}

// runsColumns are the statuses the runs table counts in columns of their
// own; "unchecked" sums forbidden, throttled and failed.
var runsColumns = []blockreport.Status{
	blockreport.StatusReachable, blockreport.StatusBlocked, blockreport.StatusUninstalled,
	blockreport.StatusAdminDisabled, blockreport.StatusNotFound,
}

// runsJSON is one run in the --json output.
type runsJSON struct {
	ID         int64                      `json:"id"`
	StartedAt  time.Time                  `json:"startedAt"`
	FinishedAt *time.Time                 `json:"finishedAt"`
	Mode       string                     `json:"mode"`
	State      blockreport.RunState       `json:"state"`
	Total      int                        `json:"total"`
	Totals     map[blockreport.Status]int `json:"totals"`
	Params     json.RawMessage            `json:"params,omitempty"`
}

// runRuns lists the runs of the store, newest first; "runs delete ID"
// deletes one (runs_delete.go).
func runRuns(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "delete" {
		return runRunsDelete(ctx, args[1:], getenv, stdout, stderr)
	}
	var cfg runsConfig
	fs := newFlagSet("runs", "runs [--db URL] [--limit N] [--json]\n       blockreport runs delete [--db URL] ID", getenv, stderr)
	fs.common(&cfg.common)
	fs.intVar(&cfg.Limit, "limit", 20, "list at most this many runs, newest first (0: all)", "BLOCKREPORT_RUNS_LIMIT")
	fs.boolVar(&cfg.JSON, "json", false, "print JSON instead of a table", "BLOCKREPORT_RUNS_JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("runs: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Limit < 0 {
		return usageErrorf("runs: --limit must not be negative")
	}
	db, err := cfg.common.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	runs, err := db.Runs(ctx, 0, cfg.Limit)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	if cfg.JSON {
		return writeRunsJSON(stdout, runs)
	}
	if len(runs) == 0 {
		_, err := fmt.Fprintln(stdout, "no runs yet")
		return err
	}
	return writeRunsTable(stdout, runs)
}

func writeRunsJSON(w io.Writer, runs []blockreport.Run) error {
	out := make([]runsJSON, 0, len(runs))
	for _, r := range runs {
		j := runsJSON{ID: r.ID, StartedAt: r.StartedAt.UTC(), Mode: r.Mode, State: r.State, Total: r.Total(), Totals: r.Totals}
		if !r.FinishedAt.IsZero() {
			f := r.FinishedAt.UTC()
			j.FinishedAt = &f
		}
		if j.Totals == nil {
			j.Totals = map[blockreport.Status]int{}
		}
		if len(r.Params) > 0 && json.Valid(r.Params) {
			j.Params = r.Params
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeRunsTable writes runs as an aligned table, times in UTC.
func writeRunsTable(w io.Writer, runs []blockreport.Run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"ID", "STARTED (UTC)", "FINISHED (UTC)", "MODE", "STATE", "TOTAL"}
	for _, s := range runsColumns {
		head = append(head, strings.ToUpper(string(s)))
	}
	head = append(head, "UNCHECKED", "OTHER")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	const layout = "2006-01-02 15:04"
	for _, r := range runs {
		finished := "-"
		if !r.FinishedAt.IsZero() {
			finished = r.FinishedAt.UTC().Format(layout)
		}
		cells := []string{strconv.FormatInt(r.ID, 10), r.StartedAt.UTC().Format(layout), finished, r.Mode, string(r.State), strconv.Itoa(r.Total())}
		listed := 0
		for _, s := range runsColumns {
			cells = append(cells, strconv.Itoa(r.Totals[s]))
			listed += r.Totals[s]
		}
		unchecked := 0
		for s, n := range r.Totals {
			if s.Unchecked() {
				unchecked += n
			}
		}
		cells = append(cells, strconv.Itoa(unchecked), strconv.Itoa(r.Total()-listed-unchecked))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}
