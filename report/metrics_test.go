package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	blockreport "github.com/blockreport/blockreport"
)

func TestWriteMetrics(t *testing.T) {
	start := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	run := blockreport.Run{ID: 7, StartedAt: start, FinishedAt: start.Add(90*time.Second + 500*time.Millisecond), Mode: "typing",
		State: blockreport.RunFinished, Totals: map[blockreport.Status]int{"reachable": 90, "blocked": 5, "throttled": 3, "failed": 1, "invalid": 1}}
	var b bytes.Buffer
	if err := WriteMetrics(&b, run); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"# TYPE blockreport_conversations gauge\n",
		"blockreport_conversations{status=\"reachable\"} 90\n",
		"blockreport_conversations{status=\"blocked\"} 5\n",
		"blockreport_conversations{status=\"not_found\"} 0\n",
		"blockreport_run_id 7\n",
		"blockreport_run_info{state=\"finished\",mode=\"typing\"} 1\n",
		"blockreport_run_duration_seconds 90.5\n",
		fmt.Sprintf("blockreport_run_finish_timestamp_seconds %d.5\n", start.Unix()+90),
		"blockreport_unchecked_ratio 0.04\n", // invalid is not "could not check"
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "blockreport_conversations{"); n != len(blockreport.Statuses) {
		t.Errorf("%d status samples, want one per status (%d)", n, len(blockreport.Statuses))
	}
	// Every sample line is "name[{labels}] value" under a TYPE line.
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if strings.HasPrefix(line, "# ") {
			continue
		}
		if f := strings.Fields(line); len(f) != 2 || !strings.HasPrefix(f[0], "blockreport_") {
			t.Errorf("bad sample line %q", line)
		}
	}

	b.Reset()
	run.FinishedAt, run.State = time.Time{}, blockreport.RunInterrupted
	_ = WriteMetrics(&b, run)
	if !strings.Contains(b.String(), "blockreport_run_finish_timestamp_seconds 0\n") || !strings.Contains(b.String(), `state="interrupted"`) {
		t.Errorf("unfinished run:\n%s", b.String())
	}
}
