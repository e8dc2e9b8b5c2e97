package main

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/blockreport/blockreport/internal/pgtest"
)

// writeBenchRefs writes n ConversationReference lines over 10 tenants.
func writeBenchRefs(b *testing.B, n int) string {
	b.Helper()
	return writeRefsFile(b, n, "")
}

// BenchmarkImportCommand100k runs "blockreport import" on a JSON Lines file
// of 100,000 references (parse, validate, upsert) into an empty store, then
// once more, which must report 100,000 unchanged.
func BenchmarkImportCommand100k(b *testing.B) {
	file := writeBenchRefs(b, 100_000)
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, pass := range []string{"new", "again"} {
			b.Run(backend+"/"+pass, func(b *testing.B) {
				want := "added 100000, updated 0, unchanged 0, rejected 0\n"
				if pass == "again" {
					want = "added 0, updated 0, unchanged 100000, rejected 0\n"
				}
				for b.Loop() {
					b.StopTimer()
					db := "sqlite:" + filepath.Join(b.TempDir(), "br.db")
					if backend == "postgres" {
						db = pgtest.URL(b)
					}
					if pass == "again" {
						importFile(b, db, file)
					}
					b.StartTimer()
					if got := importFile(b, db, file); got != want {
						b.Fatalf("import printed %q, want %q", got, want)
					}
				}
			})
		}
	}
}

func importFile(b *testing.B, db, file string) string {
	b.Helper()
	var out bodyBuffer
	err := run(context.Background(), []string{"import", "--db", db, file}, func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

type bodyBuffer []byte

func (w *bodyBuffer) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
