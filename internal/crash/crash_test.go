package crash

import (
	"context"
	"os"
	"testing"
)

func TestCrashStates(t *testing.T) {
	rep, err := Run(context.Background(), Config{Seed: 1, Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	FormatReport(os.Stderr, rep)
	if rep.Violations > 0 {
		t.Fatalf("%d violations", rep.Violations)
	}
}

func TestCrashLongTmp(t *testing.T) {
	if os.Getenv("CRASH_LONG") == "" {
		t.Skip()
	}
	rep, err := Run(context.Background(), Config{Seed: 1, States: 5000, Dir: "/dev/shm"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	FormatReport(os.Stderr, rep)
}
