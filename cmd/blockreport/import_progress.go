package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// showImportProgress shows an import's progress: on a terminal a bar of
// bytes read (with the ETA when the size is known) described by the
// references read, their rate and the rejected count; otherwise a log line
// every interval saying the same.
func showImportProgress(p *importProgress, every time.Duration, logger *slog.Logger, stderr io.Writer) *progressDisplay {
	start := time.Now()
	rate := func() float64 {
		if s := time.Since(start).Seconds(); s > 0 {
			return float64(p.records.Load()) / s
		}
		return 0
	}
	return showProgress(progressView{
		desc: "importing",
		describe: func() string {
			return fmt.Sprintf("importing: %d refs (%.0f/s), %d rejected", p.records.Load(), rate(), p.rejected.Load())
		},
		total: p.total,
		bytes: true,
		done:  p.bytes.Load,
		msg:   "import progress",
		fields: func() []any {
			args := []any{"refs", p.records.Load(), "rejected", p.rejected.Load(), "refs_per_s", int(rate()), "bytes", p.bytes.Load()}
			if p.total >= 0 {
				args = append(args, "of_bytes", p.total)
				if b := p.bytes.Load(); b > 0 {
					eta := time.Duration(float64(time.Since(start)) * float64(p.total-b) / float64(b))
					args = append(args, "eta", eta.Round(time.Second).String())
				}
			}
			return args
		},
	}, every, logger, stderr)
}
