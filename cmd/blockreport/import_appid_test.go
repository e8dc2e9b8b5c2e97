package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImportAppIDPlainFiles: with --app-id (or MicrosoftAppId), plain
// ConversationReference files reject another bot's references as the store
// formats do: exit 2 and nothing stored, or with --skip-invalid the others
// are kept.
func TestImportAppIDPlainFiles(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "br.db")
	other := strings.Replace(goodRef2, `"28:b"`, `"28:other"`, 1)
	jsonl := writeFile(t, dir, "refs.jsonl", goodRef+"\n"+other+"\n")
	array := writeFile(t, dir, "refs.json", "[\n"+other+",\n"+goodRef+"\n]")
	const reason = `bound to bot "28:other", not --app-id "b": the Bot Connector would answer "Failed to decrypt conversation ID"`

	stdout, stderr, code := runCommand(t, "import", "--db", dbURL, "--app-id", "b", jsonl)
	if code != 2 || !strings.Contains(stderr, jsonl+":2: "+reason) || stdout != "added 0, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import --app-id = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runEnv(t, map[string]string{"MicrosoftAppId": "28:b"}, "import", "--db", dbURL, array)
	if code != 2 || !strings.Contains(stderr, array+`:2: bound to bot "28:other", not --app-id "28:b"`) || stdout != "added 0, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import with MicrosoftAppId = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := countRefs(t, dbURL); n != 0 {
		t.Errorf("store has %d references after rejected imports, want 0", n)
	}
	stdout, _, code = runCommand(t, "import", "--db", dbURL, "--app-id", "b", "--skip-invalid", jsonl)
	if code != 0 || stdout != "added 1, updated 0, unchanged 0, rejected 1\n" {
		t.Errorf("import --skip-invalid = exit %d, stdout %q", code, stdout)
	}
	// Without an app id every bot's references are imported.
	stdout, _, code = runCommand(t, "import", "--db", dbURL, array)
	if code != 0 || stdout != "added 1, updated 0, unchanged 1, rejected 0\n" {
		t.Errorf("import without --app-id = exit %d, stdout %q", code, stdout)
	}
}

// TestImportBotBuilderJSDump: a botbuilder-js storage dump (keys to
// references, no $type markers) is detected and imported with its keys.
func TestImportBotBuilderJSDump(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "br.db")
	dump := writeFile(t, dir, "storage.json", "{\n  \"conv/0\": "+goodRef+",\n  \"conv/1\": "+goodRef2+"\n}\n")
	stdout, stderr, code := runCommand(t, "import", "--db", "sqlite:"+dbPath, "--app-id", "b", dump)
	if code != 0 || stdout != "added 2, updated 0, unchanged 0, rejected 0\n" {
		t.Fatalf("import = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	got := storedRows(t, dbPath)
	if r := got["a:1|29:1"]; r.source != dump || r.key != "conv/0" {
		t.Errorf("conv/0: %+v", r)
	}
	if r := got["a:2|29:2"]; r.source != dump || r.key != "conv/1" {
		t.Errorf("conv/1: %+v", r)
	}
}
