// Package rerun runs a test package's own tests again in a child process
// with one more environment variable set, so that a mode chosen at process
// start (released page frames made inaccessible, the FUSE transport) is
// covered by the plain `go test ./...` that CI runs, not by extra commands.
package rerun

import (
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
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests %s with %s: %v\n%s", pattern, env, err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("tests %s with %s ran nothing:\n%s", pattern, env, out)
	}
}
