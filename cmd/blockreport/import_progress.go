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

// progressDisplay is the progress bar or log line of an import.
type progressDisplay struct {
	mu   sync.Mutex // serializes the bar and other lines on stderr
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

// showImportProgress shows a progress bar on a terminal (records read,
// rate, and the ETA by bytes read when the size is known), else logs a
// progress line every interval, as the probe does. The returned func stops
// it.
func showImportProgress(p *importProgress, every time.Duration, logger *slog.Logger, stderr io.Writer) *progressDisplay {
	d := &progressDisplay{w: stderr}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	rate := func() float64 {
		if s := time.Since(start).Seconds(); s > 0 {
			return float64(p.records.Load()) / s
		}
		return 0
	}
	f, isFile := stderr.(*os.File)
	if isFile && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(p.total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(p.total >= 0),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		)
		d.bar = bar
		update := func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			bar.Describe(fmt.Sprintf("importing: %d refs (%.0f/s), %d rejected", p.records.Load(), rate(), p.rejected.Load()))
			_ = bar.Set64(p.bytes.Load())
		}
		wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					update()
					d.mu.Lock()
					_ = bar.Exit()
					d.mu.Unlock()
					return
				case <-t.C:
					update()
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
					args := []any{"refs", p.records.Load(), "rejected", p.rejected.Load(), "refs_per_s", int(rate()), "bytes", p.bytes.Load()}
					if p.total >= 0 {
						args = append(args, "of_bytes", p.total)
						if b := p.bytes.Load(); b > 0 {
							eta := time.Duration(float64(time.Since(start)) * float64(p.total-b) / float64(b))
							args = append(args, "eta", eta.Round(time.Second).String())
						}
					}
					d.mu.Lock() // the log and Println share stderr
					logger.Info("import progress", args...)
					d.mu.Unlock()
				}
			}
		})
	}
	var once sync.Once
	d.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	return d
}
