package report

import (
	"fmt"
	"io"
	"strconv"

	blockreport "github.com/blockreport/blockreport"
)

// WriteMetrics writes run in the Prometheus text exposition format that
// node_exporter's textfile collector reads: one blockreport_conversations
// gauge per status (every status, zeros included, so that series do not
// come and go), the run's id, state and mode, its duration, its finish time
// as a Unix timestamp (0 while it is not finished) and the share of its
// conversations that could not be checked (forbidden, throttled or failed:
// what --max-unchecked limits).
func WriteMetrics(w io.Writer, run blockreport.Run) error {
	total, unchecked := run.Total(), 0
	for s, n := range run.Totals {
		if s.Unchecked() {
			unchecked += n
		}
	}
	ratio := 0.0
	if total > 0 {
		ratio = float64(unchecked) / float64(total)
	}
	finished, duration := 0.0, 0.0
	if !run.FinishedAt.IsZero() {
		finished = float64(run.FinishedAt.UnixMilli()) / 1000
		duration = run.FinishedAt.Sub(run.StartedAt).Seconds()
	}
	b := make([]byte, 0, 2048)
	gauge := func(name, help string) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	gauge("blockreport_conversations", "Conversations of the run, by status.")
	for _, s := range blockreport.Statuses {
		b = fmt.Appendf(b, "blockreport_conversations{status=%q} %d\n", string(s), run.Totals[s])
	}
	gauge("blockreport_run_id", "ID of the run these metrics describe.")
	b = fmt.Appendf(b, "blockreport_run_id %d\n", run.ID)
	gauge("blockreport_run_info", "The run's state and probe mode (value always 1).")
	b = fmt.Appendf(b, "blockreport_run_info{state=%q,mode=%q} 1\n", string(run.State), run.Mode)
	gauge("blockreport_run_duration_seconds", "Time from the run's start to its finish (0 while it is not finished).")
	b = fmt.Appendf(b, "blockreport_run_duration_seconds %s\n", float(duration))
	gauge("blockreport_run_finish_timestamp_seconds", "Unix time the run finished (0 while it is not finished).")
	b = fmt.Appendf(b, "blockreport_run_finish_timestamp_seconds %s\n", float(finished))
	gauge("blockreport_unchecked_ratio", "Share (0..1) of the run's conversations that could not be checked: forbidden, throttled or failed.")
	b = fmt.Appendf(b, "blockreport_unchecked_ratio %s\n", float(ratio))
	_, err := w.Write(b)
	return err
}

func float(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
