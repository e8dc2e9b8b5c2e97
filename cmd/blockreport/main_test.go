package main

import (
	"os"
	"testing"

	"github.com/blockreport/blockreport/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
