# blockreport: see README.md. Every target mirrors what CI runs.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
OUT     ?= demo

.PHONY: bench-report all build test test-short cross fuzz bench bench-engine soak demo golden vet fmt-check tidy-check clean

all: fmt-check vet test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

test: fmt-check vet cross
	$(GO) test -race -count=1 -timeout=30m ./...
	$(GO) test -run='^$$' -fuzz='^FuzzClassify$$' -fuzztime=5s ./probe
	$(GO) test -run='^$$' -fuzz='^FuzzAllowList$$' -fuzztime=5s ./probe
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=5s ./ingest

# Every package builds for Windows and macOS too (the SQLite store's lock is
# LockFileEx there, flock on Unix). The tests themselves are Unix-only: they
# send real signals, mount file systems and run PostgreSQL as a subprocess.
cross:
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./...

# Longer fuzzing: make fuzz FUZZTIME=10m. New failing inputs land in the
# package's testdata/fuzz/<Target>/: commit them as regression seeds.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzClassify$$' -fuzztime=$(FUZZTIME) ./probe
	$(GO) test -run='^$$' -fuzz='^FuzzAllowList$$' -fuzztime=$(FUZZTIME) ./probe
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./ingest

test-short:
	$(GO) test -short ./...

demo: build
	./bin/blockreport demo --out $(OUT)

golden:
	$(GO) test ./report -run HTML -update

# The 200,000-reference fault-injection soak (short version runs in make test).
soak:
	BLOCKREPORT_SOAK=1 $(GO) test -count=1 -run '^TestSoak$$' -timeout=60m -v ./cmd/blockreport

# The report command as users run it (the built binary under /usr/bin/time)
# on seeded stores of 100,000 and 1,000,000 references, SQLite and
# PostgreSQL, and LibreOffice loading each workbook (BENCHMARKS.md, "Report
# command"). BLOCKREPORT_BENCH_DIR=DIR keeps the SQLite stores for reruns.
bench-report:
	BLOCKREPORT_BENCH_1M=1 BLOCKREPORT_BENCH_SOFFICE=1 $(GO) test -run='^$$' -bench='^BenchmarkReportCommand$$' -benchtime=1x -timeout=180m ./cmd/blockreport

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout=60m ./...

# The engine at Teams' limit (BENCHMARKS.md, "Engine at Teams' limit"):
# throughput with default flags, 1 and 20 tenants at 100 and 300 ms
# (about 4 minutes), the engine against a plain HTTP client in one run, and
# memory at 100k and 1M references.
bench-engine:
	$(GO) test -run='^$$' -bench='^BenchmarkThroughput$$' -benchtime=1x -timeout=30m ./probe
	$(GO) test -run='^$$' -bench='^BenchmarkEngineOverhead$$' -benchtime=1x -timeout=30m ./cmd/blockreport
	$(GO) test -run='^$$' -bench='^BenchmarkMemory$$' -benchtime=1x -timeout=30m ./probe

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf bin $(OUT)
