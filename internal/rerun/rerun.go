// Package rerun runs a test package's own tests again in a child process
// with one more environment variable set, so that a mode chosen at process
// start (released page frames made inaccessible, the FUSE transport) is
// covered by the plain `go test ./...` that CI runs, not by extra commands.
package rerun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Tests runs the tests matching pattern in a child of the current test
// binary, with env ("NAME=value") added to the environment, and fails t with
// the child's output if any of them fails. In the child (env already set)
// it skips, so the rerun does not recurse.
func Tests(t *testing.T, env, pattern string) {
	t.Helper()
	name, value, _ := strings.Cut(env, "=")
	if os.Getenv(name) == value {
		t.Skipf("already running with %s", env)
	}
	if testing.Short() {
		t.Skipf("-short: not rerunning %s with %s", pattern, env)
	}
	if err := run(env, pattern); err != nil {
		t.Fatal(err)
	}
}

// errRanNothing: the pattern matched no test of the binary. The testing
// package still ends such a run with PASS.
var errRanNothing = errors.New("ran nothing")

// run runs the child and says why its run does not count as passing.
func run(env, pattern string) error {
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tests %s with %s: %v\n%s", pattern, env, err, out)
	}
	if !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "no tests to run") {
		return fmt.Errorf("tests %s with %s: %w:\n%s", pattern, env, errRanNothing, out)
	}
	return nil
}
