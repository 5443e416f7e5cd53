package rerun

import (
	"errors"
	"os"
	"testing"
)

// childEnv is set in the children TestRun starts.
const childEnv = "RERUN_TEST_CHILD"

// TestChild passes in a child, or fails there when asked to: the rerun of
// it is what TestRun checks.
func TestChild(t *testing.T) {
	if os.Getenv(childEnv) == "fail" {
		t.Fatal("asked to fail")
	}
}

// TestRun: a child whose tests pass is a pass; one that fails, or whose
// pattern matches no test (the testing package still prints PASS), is not.
func TestRun(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	for _, c := range []struct {
		name, env, pattern string
		ok, nothing        bool
	}{
		{"passes", childEnv + "=pass", "^TestChild$", true, false},
		{"fails", childEnv + "=fail", "^TestChild$", false, false},
		{"matches nothing", childEnv + "=pass", "^TestNoSuchTest$", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(c.env, c.pattern)
			if (err == nil) != c.ok || errors.Is(err, errRanNothing) != c.nothing {
				t.Errorf("run: %v; want ok %v, ran nothing %v", err, c.ok, c.nothing)
			}
		})
	}
}
