package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/internal/pgtest"
	"github.com/blockreport/blockreport/store"
)

// runCommand runs blockreport with args and no environment.
func runCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func countRefs(t *testing.T, dbURL string) int {
	t.Helper()
	db, err := store.Open(context.Background(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountReferences(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const (
	goodRef  = `{"user":{"id":"29:1","name":"Ann"},"bot":{"id":"28:b"},"conversation":{"conversationType":"personal","id":"a:1","tenantId":"t1"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/"}`
	goodRef2 = `{"user":{"id":"29:2","name":"Bob"},"bot":{"id":"28:b"},"conversation":{"conversationType":"personal","id":"a:2","tenantId":"t1"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/"}`
)

// badInputs are the bad inputs of the issue, each with the problem the
// import must list.
var badInputs = []struct {
	name, content, want string
}{
	{"malformed.jsonl", goodRef + "\n{\"user\":\n", "malformed.jsonl:2: malformed JSON"},
	{"malformed.json", "[\n" + goodRef + ",\n" + goodRef2 + "\n" + goodRef + "]", "malformed.json:4: malformed JSON"},
	{"no-tenant.jsonl", goodRef2 + "\n" + strings.Replace(goodRef, `,"tenantId":"t1"`, "", 1), "no-tenant.jsonl:2: missing tenant id"},
	{"no-service-url.jsonl", strings.Replace(goodRef, `"serviceUrl":"https://smba.trafficmanager.net/amer/"`, `"locale":"en"`, 1), "no-service-url.jsonl:1: missing service URL"},
	{"no-user.jsonl", strings.Replace(goodRef, `"id":"29:1",`, "", 1), "no-user.jsonl:1: personal conversation without a user"},
	{"http.jsonl", strings.Replace(goodRef, "https://smba", "http://smba", 1), `http.jsonl:1: service URL "http://smba.trafficmanager.net/amer/" is plain http`},
	{"relative.jsonl", strings.Replace(goodRef, "https://smba.trafficmanager.net/amer/", "/amer/", 1), `relative.jsonl:1: service URL "/amer/" is not an absolute https URL`},
	{"type.jsonl", strings.Replace(goodRef, `"personal"`, `"meeting"`, 1), `type.jsonl:1: unknown conversation type "meeting"`},
	{"empty.json", "", "empty.json: empty file"},
	{"latin1.csv", "tenant_id,user_id,user_name,service_url\nt1,29:1,Ren\xe9,https://a/\n", "latin1.csv:2: not valid UTF-8"},
	{"columns.csv", "tenant_id,user,service_url\nt1,29:1,https://a/\n", `columns.csv:1: CSV header has unknown column(s) "user"`},
	{"teamsfx.json", "{\n\"_t1_a:1\": " + strings.Replace(goodRef, "https://smba", "ftp://smba", 1) + "\n}", "teamsfx.json:2: service URL"},
}

func TestImportRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "br.db")
	seed := writeFile(t, dir, "seed.jsonl", goodRef)
	if _, _, code := runCommand(t, "import", "--db", dbURL, seed); code != 0 {
		t.Fatalf("seed import: exit %d", code)
	}
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, c.name, c.content)
			stdout, stderr, code := runCommand(t, "import", "--db", dbURL, path)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if want := dir + string(filepath.Separator) + c.want; !strings.Contains(stderr, want) {
				t.Errorf("stderr = %q, want it to list %q", stderr, want)
			}
			if !strings.Contains(stderr, "nothing imported") {
				t.Errorf("stderr = %q, want the error saying nothing was imported", stderr)
			}
			if want := "added 0, updated 0, unchanged 0, rejected 1\n"; stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}
			if n := countRefs(t, dbURL); n != 1 {
				t.Errorf("store has %d references after a rejected import, want 1", n)
			}
		})
	}
}

func TestImportRejectsBadInputPostgres(t *testing.T) {
	dir := t.TempDir()
	dbURL := pgtest.URL(t)
	seed := writeFile(t, dir, "seed.jsonl", goodRef)
	if _, _, code := runCommand(t, "import", "--db", dbURL, seed); code != 0 {
		t.Fatalf("seed import: exit %d", code)
	}
	// The good record in the file must not be written either.
	bad := writeFile(t, dir, "bad.jsonl", goodRef2+"\n"+strings.Replace(goodRef, `"personal"`, `"meeting"`, 1))
	stdout, stderr, code := runCommand(t, "import", "--db", dbURL, bad)
	if code != 2 || !strings.Contains(stderr, bad+`:2: unknown conversation type "meeting"`) || stdout != "added 0, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := countRefs(t, dbURL); n != 1 {
		t.Errorf("store has %d references after a rejected import, want 1", n)
	}
	// With --skip-invalid the good one goes in.
	stdout, _, code = runCommand(t, "import", "--db", dbURL, "--skip-invalid", bad)
	if code != 0 || stdout != "added 1, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import --skip-invalid = exit %d, stdout %q", code, stdout)
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "br.db")
	jsonl := writeFile(t, dir, "refs.jsonl", goodRef+"\n"+goodRef2+"\n"+goodRef+"\n") // a duplicate collapses
	csv := writeFile(t, dir, "refs.csv", "tenant_id,user_id,conversation_id,conversation_type,service_url\nt2,29:9,a:9,personal,https://a/\n")
	for _, c := range []struct {
		name   string
		args   []string
		stdout string
	}{
		{"first", []string{jsonl, csv}, "added 3, updated 0, unchanged 0, rejected 0\n"},
		{"again", []string{jsonl, csv}, "added 0, updated 0, unchanged 3, rejected 0\n"},
		{"changed service URL", []string{writeFile(t, dir, "moved.jsonl", strings.Replace(goodRef, "/amer/", "/emea/", 1))},
			"added 0, updated 1, unchanged 0, rejected 0\n"},
		{"skip invalid", []string{"--skip-invalid", writeFile(t, dir, "mixed.json", "[\n"+strings.Replace(goodRef2, "29:2", "29:3", 1)+",\n"+strings.Replace(goodRef, `"t1"`, `""`, 1)+"\n]")},
			"added 1, updated 0, unchanged 0, rejected 1\n"},
		{"explicit format", []string{"--format", "csv", csv}, "added 0, updated 0, unchanged 1, rejected 0\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runCommand(t, append([]string{"import", "--db", dbURL}, c.args...)...)
			if code != 0 || stdout != c.stdout {
				t.Errorf("import %v = exit %d, stdout %q, want %q (stderr %q)", c.args, code, stdout, c.stdout, stderr)
			}
		})
	}
	if n := countRefs(t, dbURL); n != 4 {
		t.Errorf("store has %d references, want 4", n)
	}
}

func TestImportListsFirst50(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for range 60 {
		fmt.Fprintln(&b, strings.Replace(goodRef, `"t1"`, `""`, 1))
	}
	path := writeFile(t, dir, "bad.jsonl", b.String())
	stdout, stderr, code := runCommand(t, "import", "--db", "sqlite:"+filepath.Join(dir, "br.db"), path)
	if code != 2 || stdout != "added 0, updated 0, unchanged 0, rejected 60\n" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, path+":50: missing tenant id") || strings.Contains(stderr, path+":51:") || !strings.Contains(stderr, "... and 10 more\n") {
		t.Errorf("stderr = %q; want 50 problems then a count", stderr)
	}
}

func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "br.db")
	file := writeFile(t, dir, "refs.jsonl", goodRef)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"import", "--db", db}, "no FILE given"},
		{"bad format", []string{"import", "--db", db, "--format", "xml", file}, `--format "xml"`},
		{"bad db URL", []string{"import", "--db", "mysql://u:hunter2@h/db", file}, "want postgres://"},
		{"missing file", []string{"import", "--db", db, filepath.Join(dir, "nope.json")}, "no such file"},
		{"unknown flag", []string{"import", "--nope", file}, "flag provided but not defined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runCommand(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, c.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr shows the password: %q", stderr)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	// The newest migration's number: every file in store/migrations.
	files, _ := filepath.Glob(filepath.Join("..", "..", "store", "migrations", "*.sql"))
	want := fmt.Sprintf("schema version %d ", len(files))
	for _, dbURL := range []string{"sqlite:" + filepath.Join(t.TempDir(), "br.db"), pgtest.URL(t)} {
		for range 2 { // idempotent
			stdout, stderr, code := runCommand(t, "migrate", "--db", dbURL)
			if code != 0 || !strings.HasPrefix(stdout, want) {
				t.Errorf("migrate %s = exit %d, stdout %q, stderr %q", dbURL, code, stdout, stderr)
			}
		}
	}
	if _, _, code := runCommand(t, "migrate", "extra"); code != 2 {
		t.Errorf("migrate extra: exit %d, want 2", code)
	}
}
