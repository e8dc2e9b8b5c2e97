package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/faketeams"
	"github.com/blockreport/blockreport/store"
)

// TestOversizedMessageFile: in message mode a --message-file over Teams'
// 100 KB is a usage error (exit 2) naming the file and the limit, before
// anything is sent or a run recorded.
func TestOversizedMessageFile(t *testing.T) {
	fake := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 3, Seed: 1})})
	u := "sqlite:" + filepath.Join(t.TempDir(), "b.db")
	db := openSeeded(t, u, fake.References())
	big := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("Hello everyone. ", 4<<10)), 0o600); err != nil { // 64 KB: 128 KB as UTF-16
		t.Fatal(err)
	}
	for _, cmd := range []string{"probe", "run"} {
		args := []string{cmd, "--mode", "message", "--message-file", big}
		if cmd == "run" {
			args = append(args, "--out", t.TempDir())
		}
		var out, errb strings.Builder
		code := exitCode(run(context.Background(), args, probeEnv(fake, u, nil), &out, &errb), &errb)
		stderr := errb.String()
		if code != 2 || !strings.Contains(stderr, big) || !strings.Contains(stderr, "100 KB") || !strings.Contains(stderr, "MessageSizeTooBig") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming the file and the 100 KB limit", cmd, code, stderr)
		}
	}
	if _, err := db.LatestRun(context.Background()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a run was recorded: %v", err)
	}
	if n := fake.Stats().Total(faketeams.RouteSendActivity); n != 0 {
		t.Errorf("%d activities sent", n)
	}
}
