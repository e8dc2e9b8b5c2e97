package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rejected import into a store that did not exist leaves no store behind,
// so the next command says the path does not exist instead of "no
// references"; a rejected import into an existing store keeps it whole.
func TestRejectedImportLeavesNoNewStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	bad := writeFile(t, dir, "bad.jsonl", goodRef2+"\n"+strings.Replace(goodRef, `"personal"`, `"meeting"`, 1))
	if _, stderr, code := runCommand(t, "import", "--db", "sqlite:"+path, bad); code != 2 || !strings.Contains(stderr, "nothing imported") {
		t.Fatalf("import = exit %d, stderr %q; want 2, nothing imported", code, stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "new.db") {
			t.Errorf("rejected import left %s behind", e.Name())
		}
	}
	if _, stderr, code := runCommand(t, "runs", "--db", "sqlite:"+path); code != 2 || !strings.Contains(stderr, "no such file") {
		t.Errorf("runs after a rejected first import = exit %d, stderr %q; want 2, no such file", code, stderr)
	}

	// An existing store, even an empty one, is never removed.
	existing := filepath.Join(dir, "existing.db")
	if _, _, code := runCommand(t, "migrate", "--db", "sqlite:"+existing); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	if _, _, code := runCommand(t, "import", "--db", "sqlite:"+existing, bad); code != 2 {
		t.Fatalf("import into the existing store: exit %d, want 2", code)
	}
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("a rejected import removed the existing store: %v", err)
	}

	// A good import into a new path keeps the store it created.
	good := writeFile(t, dir, "good.jsonl", goodRef)
	fresh := filepath.Join(dir, "fresh.db")
	if _, _, code := runCommand(t, "import", "--db", "sqlite:"+fresh, good); code != 0 {
		t.Fatalf("good import: exit %d", code)
	}
	if n := countRefs(t, "sqlite:"+fresh); n != 1 {
		t.Errorf("fresh store has %d references, want 1", n)
	}
}
