package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/blockreport/blockreport/internal/pgtest"
)

// writeBenchRefs writes n ConversationReference lines over 10 tenants.
func writeBenchRefs(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "refs.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"activityId":"%d","user":{"id":"29:1%031d","name":"User %d","aadObjectId":"%08d-aaaa-4000-8000-000000000000"},`+
			`"bot":{"id":"28:c9e8c047-0000-4000-8000-000000000000","name":"Bot"},`+
			`"conversation":{"conversationType":"personal","id":"a:1%063d","tenantId":"%08d-0000-4000-8000-000000000000"},`+
			`"channelId":"msteams","locale":"en-US","serviceUrl":"https://smba.trafficmanager.net/amer/"}`+"\n",
			1485983408511+i, i, i, i, i, i%10)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
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
