package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// progressBuffer is a bytes.Buffer safe for the logger's goroutine and the test.
type progressBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *progressBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *progressBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Off a terminal, the display logs its fields every interval and nothing
// after it is stopped.
func TestProgressLogLines(t *testing.T) {
	var logs, stderr progressBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var n atomic.Int64
	progress := showProgress(progressView{
		desc:   "probing",
		total:  10,
		done:   n.Load,
		fields: func() []any { return []any{"done", n.Load(), "total", 10} },
	}, 5*time.Millisecond, logger, &stderr)
	for i := 1; i <= 3; i++ {
		n.Store(int64(i))
		time.Sleep(20 * time.Millisecond)
	}
	progress.Stop()
	lines := strings.Count(logs.String(), "msg=progress")
	if lines == 0 || !strings.Contains(logs.String(), "done=3 total=10") {
		t.Fatalf("want progress lines with done=3 total=10, got:\n%s", logs.String())
	}
	if stderr.String() != "" {
		t.Errorf("no bar off a terminal, stderr got %q", stderr.String())
	}
	time.Sleep(30 * time.Millisecond)
	if after := strings.Count(logs.String(), "msg=progress"); after != lines {
		t.Errorf("logged %d more progress lines after stop", after-lines)
	}
}
