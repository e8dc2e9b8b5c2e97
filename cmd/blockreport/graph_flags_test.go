package main

import (
	"strings"
	"testing"
)

// TestGraphFlagErrors: bad Graph settings are usage errors (exit 2) that
// name the flag, before anything is opened or sent.
func TestGraphFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--coverage"}, "--coverage needs --teams-app-id"},
		{[]string{"--graph-url", "https://graph.example.com/v1.0"}, "--graph-url needs --teams-app-id"},
		{[]string{"--teams-app-id", "x", "--graph-url", "http://graph.example.com/v1.0"}, "--graph-url: graph URL host"},
		{[]string{"--teams-app-id", "x", "--graph-url", "ftp://127.0.0.1/v1.0"}, "want https"},
		{[]string{"--teams-app-id", "x", "--graph-rate", "0"}, "--graph-rate must be positive"},
	} {
		args := append([]string{"probe", "--db", "sqlite:" + t.TempDir() + "/x.db", "--app-id", "a"}, tc.args...)
		_, stderr, code := runCommand(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
