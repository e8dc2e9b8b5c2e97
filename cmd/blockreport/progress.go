package main

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressView is what a progress display shows of a long step: a bar of
// done() out of total on a terminal, else a log line of fields() every
// interval.
type progressView struct {
	desc   string
	total  int
	done   func() int
	fields func() []any
	// clear removes the bar at the end instead of filling it to done().
	clear bool
}

// showProgress shows v as a progress bar with rate and ETA when stderr is a
// terminal, else logs a progress line every interval. The returned func
// stops it.
func showProgress(v progressView, every time.Duration, logger *slog.Logger, stderr io.Writer) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(v.total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(v.desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("refs"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					if v.clear {
						_ = bar.Clear()
					} else {
						_ = bar.Set(v.done())
					}
					_ = bar.Exit()
					return
				case <-t.C:
					_ = bar.Set(v.done())
				}
			}
		})
	} else {
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					logger.Info("progress", v.fields()...)
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}
