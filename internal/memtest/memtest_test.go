package memtest

import (
	"testing"
	"time"
)

var sink [][]byte

func TestSamplerSeesAnAllocation(t *testing.T) {
	s := Start(time.Millisecond)
	for range 64 {
		b := make([]byte, 1<<20) // 64 MiB kept live
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page so it is resident
		}
		sink = append(sink, b)
		time.Sleep(time.Millisecond)
	}
	rss, goMem := s.Stop()
	if goMem < 64 {
		t.Errorf("peak Go memory %.1f MiB, want at least the 64 MiB kept live", goMem)
	}
	if rss != 0 && rss < 32 {
		t.Errorf("peak RSS %.1f MiB after touching 64 MiB", rss)
	}
	sink = nil
}
