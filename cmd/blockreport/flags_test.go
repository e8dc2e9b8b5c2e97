package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDBPasswordHidden: a database password in BLOCKREPORT_DB, whether in the
// user info, a query parameter or a key=value string, is shown neither by -h
// nor in the error of a command that cannot connect.
func TestDBPasswordHidden(t *testing.T) {
	for _, db := range []string{
		"postgres://bob:hunter2@127.0.0.1:1/db?sslmode=disable",
		"postgres://bob@127.0.0.1:1/db?password=hunter2&sslmode=disable",
		"postgres://bob@127.0.0.1:1/db?sslmode=disable&sslpassword=hunter2",
		"host=127.0.0.1 port=1 password=hunter2",
	} {
		env := mapEnv(map[string]string{"BLOCKREPORT_DB": db})
		for _, args := range [][]string{{"migrate", "-h"}, {"migrate"}} {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, env, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if out := stdout.String() + stderr.String(); strings.Contains(out, "hunter2") {
				t.Errorf("%q with BLOCKREPORT_DB=%q (exit %d) shows the password:\n%s", args, db, code, out)
			}
			if len(args) == 1 && code == 0 {
				t.Errorf("migrate against a closed port succeeded")
			}
		}
	}
}
