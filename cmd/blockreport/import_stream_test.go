package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blockreport/blockreport/internal/memtest"
	"github.com/blockreport/blockreport/internal/pgtest"
)

// writeRefsFile writes n ConversationReference lines over 10 tenants (the
// shape of faketeams' references), then tail, and returns the path.
func writeRefsFile(tb testing.TB, n int, tail string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "refs.jsonl")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"activityId":"%d","user":{"id":"29:1%031d","name":"User %d","aadObjectId":"%08d-aaaa-4000-8000-000000000000"},`+
			`"bot":{"id":"28:c9e8c047-0000-4000-8000-000000000000","name":"Bot"},`+
			`"conversation":{"conversationType":"personal","id":"a:1%063d","tenantId":"%08d-0000-4000-8000-000000000000"},`+
			`"channelId":"msteams","locale":"en-US","serviceUrl":"https://smba.trafficmanager.net/amer/"}`+"\n",
			1485983408511+i, i, i, i, i, i%10)
	}
	w.WriteString(tail)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestImportBadRecordAtTheEndRollsBack: the import streams in chunks, yet
// a bad record after 12,000 good ones (24 chunks on SQLite, 3 on
// PostgreSQL, all written) still leaves the store as it was; with
// --skip-invalid the good ones go in.
func TestImportBadRecordAtTheEndRollsBack(t *testing.T) {
	const n = 12_000
	bad := strings.Replace(goodRef2, `"personal"`, `"meeting"`, 1) + "\n"
	path := writeRefsFile(t, n, bad)
	for _, dbURL := range []string{"sqlite:" + filepath.Join(t.TempDir(), "br.db"), pgtest.URL(t)} {
		seed := writeFile(t, t.TempDir(), "seed.jsonl", goodRef)
		if _, _, code := runCommand(t, "import", "--db", dbURL, seed); code != 0 {
			t.Fatalf("seed import: exit %d", code)
		}
		stdout, stderr, code := runCommand(t, "import", "--db", dbURL, seed, path)
		if code != 2 || stdout != "added 0, updated 0, unchanged 0, rejected 1\n" ||
			!strings.Contains(stderr, fmt.Sprintf("%s:%d: unknown conversation type \"meeting\"", path, n+1)) {
			t.Errorf("%s: import = exit %d, stdout %q, stderr %q", dbURL, code, stdout, stderr)
		}
		if got := countRefs(t, dbURL); got != 1 {
			t.Errorf("%s: %d references after the rejected import, want the 1 stored before", dbURL, got)
		}
		stdout, _, code = runCommand(t, "import", "--db", dbURL, "--skip-invalid", path)
		if want := fmt.Sprintf("added %d, updated 0, unchanged 0, rejected 1\n", n); code != 0 || stdout != want {
			t.Errorf("%s: import --skip-invalid = exit %d, stdout %q, want %q", dbURL, code, stdout, want)
		}
		// Again, with every reference twice (in different chunks): each
		// counts once.
		stdout, _, code = runCommand(t, "import", "--db", dbURL, "--skip-invalid", path, path)
		if want := fmt.Sprintf("added 0, updated 0, unchanged %d, rejected 2\n", n); code != 0 || stdout != want {
			t.Errorf("%s: import of the file twice = exit %d, stdout %q, want %q", dbURL, code, stdout, want)
		}
		if got := countRefs(t, dbURL); got != n+1 {
			t.Errorf("%s: %d references, want %d", dbURL, got, n+1)
		}
	}
}

// TestSIGTERMDuringImport: a real import process (this test binary as the
// command) reads references from a pipe and has written chunks of them in
// its transaction when it gets SIGTERM; it exits at once (exit 1, saying
// nothing was imported), although its input is still open, and the store
// is as it was: the same references, the seed unchanged.
func TestSIGTERMDuringImport(t *testing.T) {
	for _, dbURL := range []string{"sqlite:" + filepath.Join(t.TempDir(), "br.db"), pgtest.URL(t)} {
		seed := writeFile(t, t.TempDir(), "seed.jsonl", goodRef)
		if _, _, code := runCommand(t, "import", "--db", dbURL, seed); code != 0 {
			t.Fatalf("seed import: exit %d", code)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestProbeHelperProcess$")
		cmd.Env = append(os.Environ(), "BLOCKREPORT_PROBE_HELPER=1",
			"BLOCKREPORT_HELPER_ARGS=import --db "+dbURL+" --log-level debug -")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		go func() {
			// The seed renamed first, then far more than a few chunks; the
			// pipe stays open, so the import cannot finish.
			w := bufio.NewWriter(stdin)
			fmt.Fprintln(w, strings.Replace(goodRef, `"Ann"`, `"Changed"`, 1))
			for i := range 200_000 {
				fmt.Fprintln(w, strings.Replace(goodRef, `"a:1"`, fmt.Sprintf(`"a:x%d"`, i), 1))
			}
			_ = w.Flush()
		}()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(out.String(), "chunk=3 ") {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no third chunk written after 2 minutes; output:\n%s", dbURL, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		code, took := terminate(t, cmd, 30*time.Second)
		if code != 1 || !strings.Contains(out.String(), "interrupted: nothing imported, the store is as it was") {
			t.Errorf("%s: exit %d after %s; output:\n%s", dbURL, code, took, out.String())
		}
		_ = stdin.Close()
		if n := countRefs(t, dbURL); n != 1 {
			t.Errorf("%s: %d references after the interrupted import, want the 1 stored before", dbURL, n)
		}
		if stdout, _, code := runCommand(t, "import", "--db", dbURL, seed); code != 0 || stdout != "added 0, updated 0, unchanged 1, rejected 0\n" {
			t.Errorf("%s: importing the seed again = exit %d, %q; want it unchanged (the renamed copy rolled back)", dbURL, code, stdout)
		}
	}
}

// TestImportDryRun: --dry-run reads and checks everything, lists the
// problems with the same exit code, and never opens (or creates) the store.
func TestImportDryRun(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "br.db")
	good := writeFile(t, dir, "good.jsonl", goodRef+"\n"+goodRef2+"\n")
	bad := writeFile(t, dir, "bad.jsonl", goodRef+"\n"+strings.Replace(goodRef2, `"personal"`, `"meeting"`, 1)+"\n")
	stdout, stderr, code := runCommand(t, "import", "--db", "sqlite:"+dbPath, "--dry-run", good)
	if code != 0 || stdout != "dry run: 2 valid, rejected 0, nothing written\n" {
		t.Errorf("dry run of a good file = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCommand(t, "import", "--db", "sqlite:"+dbPath, "--dry-run", good, bad)
	if code != 2 || stdout != "dry run: 3 valid, rejected 1, nothing written\n" || !strings.Contains(stderr, bad+`:2: unknown conversation type "meeting"`) {
		t.Errorf("dry run with a bad record = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
		t.Errorf("the dry runs created the store (stat: %v)", err)
	}
}

// TestImportMemoryFlat: the import holds a few chunks, not the input: four
// times the references take about the same peak Go memory. (The import
// once took ~3.5 KB per reference: 15,000 more would be ~50 MB more; even
// 600 bytes each would be 8.6 MB.) Memory only, never time.
func TestImportMemoryFlat(t *testing.T) {
	peak := func(n int) float64 {
		path := writeRefsFile(t, n, "")
		dbURL := "sqlite:" + filepath.Join(t.TempDir(), "br.db")
		s := memtest.Start(5 * time.Millisecond)
		stdout, stderr, code := runCommand(t, "import", "--db", dbURL, path)
		_, goMiB := s.Stop()
		if want := fmt.Sprintf("added %d, updated 0, unchanged 0, rejected 0\n", n); code != 0 || stdout != want {
			t.Fatalf("import = exit %d, %q (stderr %q)", code, stdout, stderr)
		}
		t.Logf("peak Go memory %.1f MiB importing %d references", goMiB, n)
		return goMiB
	}
	small, large := peak(5_000), peak(20_000)
	if large-small > 8 {
		t.Errorf("peak Go memory %.1f MiB for 20,000 references, %.1f MiB for 5,000: it grows with the input", large, small)
	}
}
