package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/faketeams"
)

func TestDemoUsage(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"demo", "--users", "0"}, 2, "--users"},
		{[]string{"demo", "--users", "2", "--tenants", "3"}, 2, "--tenants"},
		{[]string{"demo", "--tenants", "0"}, 2, "--tenants"},
		{[]string{"demo", "--seed", "-1"}, 2, "--seed"},
		{[]string{"demo", "--out", ""}, 2, "--out"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"demo", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"demo", "--out", filepath.Join(blocker, "demo")}, 1, "writable directory"},
	}
	for _, tt := range tests {
		_, stderr, code := runCmd(t, tt.args...)
		if code != tt.wantCode || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.wantCode, tt.want)
		}
	}
}

// TestRemoveDemoDB: a rerun removes the previous demo database and its
// side files, and nothing else.
func TestRemoveDemoDB(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, demoDBName)
	mine := []string{db, db + "-wal", db + "-shm", db + ".lock"}
	others := []string{filepath.Join(dir, "blockreport.db"), filepath.Join(dir, "blockreport-2026-01-01-run1.xlsx"), db + ".bak"}
	for _, p := range append(mine, others...) {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeDemoDB(db); err != nil {
		t.Fatal(err)
	}
	for _, p := range mine {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}
	for _, p := range others {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was touched: %v", p, err)
		}
	}
	if err := removeDemoDB(db); err != nil {
		t.Errorf("nothing to remove: %v", err)
	}
}

// TestDrift: between the demo's runs some active conversations block or
// uninstall the bot and some blocked ones unblock; the same seed drifts
// the same conversations.
func TestDrift(t *testing.T) {
	opts := faketeams.GenerateOptions{Users: 1000, Tenants: 2, Blocked: 0.08, Transient: 0.02, Seed: 3}
	states := func(seed uint64) (map[string]faketeams.State, int) {
		fake := startFake(t, faketeams.Config{Population: faketeams.Generate(opts)})
		n := drift(fake, seed)
		m := map[string]faketeams.State{}
		for _, c := range fake.Population() {
			m[c.ConversationID] = c.State
		}
		return m, n
	}
	before := map[string]faketeams.State{}
	for _, c := range faketeams.Generate(opts) {
		before[c.ConversationID] = c.State
	}
	after, n := states(5)
	moves := map[string]int{}
	for id, st := range after {
		if b := before[id]; b != st {
			moves[string(b)+"→"+string(st)]++
		}
	}
	// 900 active: 3 % block, 2 % uninstall; 80 blocked: a quarter unblock.
	want := map[string]int{"active→blocked": 27, "active→uninstalled": 18, "blocked→active": 20}
	for k, v := range want {
		if moves[k] != v {
			t.Errorf("%s: %d, want %d (all moves %v)", k, moves[k], v, moves)
		}
	}
	if len(moves) != len(want) || n != 65 {
		t.Errorf("moves %v, drift returned %d; want only %v, 65 in all", moves, n, want)
	}
	again, _ := states(5)
	other, _ := states(6)
	same, differ := true, false
	for id := range after {
		same = same && again[id] == after[id]
		differ = differ || other[id] != after[id]
	}
	if !same || !differ {
		t.Errorf("same seed same drift = %v, other seed other drift = %v", same, differ)
	}

	// A tiny organisation still drifts.
	small := startFake(t, faketeams.Config{Population: faketeams.Generate(faketeams.GenerateOptions{Users: 3, Seed: 1})})
	if n := drift(small, 1); n != 2 {
		t.Errorf("3 active conversations: %d drifted, want 2 (one blocks, one uninstalls)", n)
	}
}
