package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/report"
)

// metricsConfig is --metrics-file, shared by run, probe and report.
type metricsConfig struct {
	Path string
}

func (m *metricsConfig) register(fs *flagSet) {
	fs.stringVar(&m.Path, "metrics-file", "", "also write the run's metrics here in node_exporter's textfile format (e.g. /var/lib/node_exporter/textfile/blockreport.prom), atomically", "BLOCKREPORT_METRICS_FILE")
}

// check makes sure the metrics file can be written, before any work.
func (m metricsConfig) check(cmd string) error {
	if m.Path == "" {
		return nil
	}
	if fi, err := os.Stat(m.Path); err == nil && fi.IsDir() {
		return usageErrorf("%s: --metrics-file %s is a directory: want a file name", cmd, m.Path)
	}
	return checkWritableDir(cmd+": --metrics-file", filepath.Dir(m.Path))
}

// metricsFileMode lets the node_exporter user read the file: it holds
// counts only.
const metricsFileMode = 0o644

// write writes run's metrics, atomically; nothing without --metrics-file.
func (m metricsConfig) write(run blockreport.Run) error {
	if m.Path == "" || run.ID == 0 {
		return nil
	}
	err := writeFileAtomicMode(m.Path, metricsFileMode, func(w io.Writer) error { return report.WriteMetrics(w, run) })
	if err != nil {
		return fmt.Errorf("--metrics-file: %w", err)
	}
	return nil
}
