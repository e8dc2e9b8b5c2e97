package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHistoryCommand(t *testing.T) {
	for name, newURL := range storeURLs(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			seed(t, url)
			// User 3 is reachable in run 1, uninstalled in run 2; every way
			// of naming them finds the same two results.
			for _, user := range []string{"U3@Example.com", "AAD-3", "29:user-3", "a:conv-3"} {
				stdout, stderr, code := runCmd(t, "history", "--db", url, "--json", user)
				if code != 0 {
					t.Fatalf("history %s: exit %d: %s", user, code, stderr)
				}
				var got []map[string]any
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatalf("history %s --json: %v:\n%s", user, err, stdout)
				}
				if len(got) != 2 {
					t.Fatalf("history %s: %d entries, want 2: %s", user, len(got), stdout)
				}
				for i, want := range []struct {
					run    float64
					start  string
					status string
				}{{1, "2026-10-05T07:00:00Z", "reachable"}, {2, "2026-11-05T23:30:00Z", "uninstalled"}} {
					e := got[i]
					if e["run"] != want.run || e["startedAt"] != want.start || e["status"] != want.status || e["conversationId"] != "a:conv-3" {
						t.Errorf("history %s entry %d = %v, want run %v %s %s", user, i, e, want.run, want.start, want.status)
					}
					if e["source"] != "refs.jsonl line 4" {
						t.Errorf("entry %d source %v, want refs.jsonl line 4", i, e["source"])
					}
					if _, ok := e["reason"]; !ok {
						t.Errorf("entry %d has no reason: %v", i, e)
					}
				}
			}
			// Flags after USER work too; the table is oldest first.
			stdout, stderr, code := runCmd(t, "history", "29:user-1", "--db", url)
			if code != 0 {
				t.Fatalf("history table: exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 5 || !strings.HasPrefix(lines[3], "1 ") || !strings.Contains(lines[3], "Reachable") ||
				!strings.HasPrefix(lines[4], "2 ") || !strings.Contains(lines[4], "Blocked") {
				t.Fatalf("table:\n%s", stdout)
			}
		})
	}
}

func TestHistoryBadInput(t *testing.T) {
	url := "sqlite:" + t.TempDir() + "/blockreport.db"
	seed(t, url)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no match", []string{"nobody@example.com"}, 1, `no conversation matches "nobody@example.com"`},
		{"no match json", []string{"--json", "29:nobody"}, 1, `no conversation matches "29:nobody"`},
		{"no user", nil, 2, "give USER"},
		{"two users", []string{"a", "b"}, 2, `unexpected argument "b"`},
		{"bad flag", []string{"u1@example.com", "--jsn"}, 2, "flag provided but not defined: -jsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCmd(t, append([]string{"history", "--db", url}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tc.code, stderr, tc.want)
			}
			if tc.code == 1 && (stdout != "" || strings.Count(stderr, "\n") != 1) {
				t.Errorf("want one line on stderr and nothing on stdout, got %q / %q", stdout, stderr)
			}
		})
	}
}
