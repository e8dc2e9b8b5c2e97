package store_test

import (
	"github.com/blockreport/blockreport/graph"
	"github.com/blockreport/blockreport/report"
	"github.com/blockreport/blockreport/store"
)

// The store is the Graph cross-check's Store and the report's GraphSource.
var (
	_ graph.Store         = (*store.DB)(nil)
	_ graph.CoverageStore = (*store.DB)(nil)
	_ report.GraphSource  = (*store.DB)(nil)
)
