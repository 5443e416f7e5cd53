package fsx

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/lockcheck"
)

var (
	seeds = flag.Int("fsx.seeds", 2, "seeds per backend and lock mode")
	ops   = flag.Int("fsx.ops", 1500, "operations per run")
)

func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	os.Exit(m.Run())
}

// TestFsxImage runs the tester on a durable image, with remounts and
// crash copies among the operations.
func TestFsxImage(t *testing.T) {
	for seed := 1; seed <= *seeds; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			if err := Run(Config{Backend: holefs.BackendExtent, Seed: uint64(seed), Ops: *ops, ImageDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFsx runs the shadow-model tester on every backend and lock mode. One
// goroutine cannot race itself, so LockNone must pass too once async
// readahead (a fill path on a goroutine of its own) is off: it then checks
// the operations, not the protocol.
func TestFsx(t *testing.T) {
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendMemory} {
		for _, mode := range holefs.LockModes {
			for seed := 1; seed <= *seeds; seed++ {
				t.Run(fmt.Sprintf("%s/%s/seed%d", backend, mode, seed), func(t *testing.T) {
					t.Parallel()
					cfg := Config{Backend: backend, Mode: mode, Seed: uint64(seed), Ops: *ops}
					if mode == holefs.LockNone {
						cfg.ReadaheadBytes = 4096
					}
					err := Run(cfg)
					if err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
