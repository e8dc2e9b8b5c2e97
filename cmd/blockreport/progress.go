package main

import (
	"fmt"
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
	desc     string
	describe func() string // if set, the bar's description at each tick
	total    int64         // -1 if unknown
	bytes    bool          // done() and total count bytes, not references
	done     func() int64
	msg      string // the log line's message; "progress" if empty
	fields   func() []any
	// clear removes the bar at the end instead of filling it to done().
	clear bool
}

// progressDisplay is a running progress bar or log line.
type progressDisplay struct {
	mu   sync.Mutex // serializes the bar, the log line and Println on stderr
	bar  *progressbar.ProgressBar
	w    io.Writer
	stop func()
}

// Println prints a line on stderr, clearing the bar first (it is redrawn
// on its next tick).
func (d *progressDisplay) Println(a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bar != nil {
		_ = d.bar.Clear()
	}
	fmt.Fprintln(d.w, a...)
}

// Stop ends the display (idempotent).
func (d *progressDisplay) Stop() { d.stop() }

// showProgress shows v as a progress bar with rate and ETA when stderr is a
// terminal, else logs a progress line every interval, until Stop.
func showProgress(v progressView, every time.Duration, logger *slog.Logger, stderr io.Writer) *progressDisplay {
	d := &progressDisplay{w: stderr}
	done := make(chan struct{})
	var wg sync.WaitGroup
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(v.desc),
			progressbar.OptionSetPredictTime(v.total >= 0),
			progressbar.OptionThrottle(200 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
		}
		if v.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetRenderBlankState(true))
		} else {
			opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("refs"))
		}
		d.bar = progressbar.NewOptions64(v.total, opts...)
		update := func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if v.describe != nil {
				d.bar.Describe(v.describe())
			}
			_ = d.bar.Set64(v.done())
		}
		wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					if !v.clear {
						update()
					}
					d.mu.Lock()
					if v.clear {
						_ = d.bar.Clear()
					}
					_ = d.bar.Exit()
					d.mu.Unlock()
					return
				case <-t.C:
					update()
				}
			}
		})
	} else {
		msg := v.msg
		if msg == "" {
			msg = "progress"
		}
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					fields := v.fields()
					d.mu.Lock()
					logger.Info(msg, fields...)
					d.mu.Unlock()
				}
			}
		})
	}
	var once sync.Once
	d.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	return d
}
