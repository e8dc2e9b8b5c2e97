// Package memtest measures the peak memory of the running process for
// benchmarks and soak tests: the kernel's peak resident set size (Linux
// VmHWM, reset through /proc/self/clear_refs when a Sampler starts) and the
// Go runtime's peak mapped memory, sampled on a ticker.
package memtest

import (
	"bufio"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sampler samples the Go runtime's memory until Stop.
type Sampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak uint64 // written by the sampling goroutine, read after wg.Wait
}

// Start runs a GC, resets the kernel's peak RSS counter where the platform
// allows it, and samples the runtime's memory every interval.
func Start(interval time.Duration) *Sampler {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM on Linux; not fatal elsewhere
	s := &Sampler{done: make(chan struct{})}
	s.wg.Go(func() {
		sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64() - sample[1].Value.Uint64(); v > s.peak {
				s.peak = v
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

// Stop ends sampling and returns the peak RSS since Start (0 where the
// platform does not report it) and the peak Go memory, both in MiB.
func (s *Sampler) Stop() (rssMiB, goMiB float64) {
	close(s.done)
	s.wg.Wait()
	return float64(PeakRSS()) / (1 << 20), float64(s.peak) / (1 << 20)
}

// PeakRSS is the process's peak resident set size in bytes (0 if unknown).
func PeakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
