//go:build !unix

package pgtest

import "os/exec"

// runAs does nothing where there is no root to step down from (Windows:
// os.Geteuid is -1, so no credential is ever chosen).
func runAs(*exec.Cmd, *credential) {}
