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

// TestFsxImage runs the tester on a durable image of each backend that
// has one, with remounts and crash copies among the operations.
func TestFsxImage(t *testing.T) {
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendExt2} {
		n := *seeds
		if backend == holefs.BackendExt2 {
			// Half the seeds: the extentfs runs cover the operations
			// and crash copies; these add ext2's commits, which cost
			// CI's time under -race.
			n = (n + 1) / 2
		}
		for seed := 1; seed <= n; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", backend, seed), func(t *testing.T) {
				t.Parallel()
				cfg := Config{Backend: backend, Seed: uint64(seed), Ops: *ops, ImageDir: t.TempDir(),
					DataChecksums: backend == holefs.BackendExtent && seed%2 == 0}
				if err := Run(cfg); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestFsx runs the shadow-model tester on every backend and lock mode. One
// goroutine cannot race itself, so LockNone must pass too once async
// readahead (a fill path on a goroutine of its own) is off: it then checks
// the operations, not the protocol.
func TestFsx(t *testing.T) {
	for _, backend := range []string{holefs.BackendExtent, holefs.BackendMemory, holefs.BackendLog, holefs.BackendExt2} {
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

// TestFsxPassthrough runs the tester on the passthrough backend in every
// lock mode over a directory of the test's filesystem (every fallocate
// mode on ext4 or xfs) and one of /dev/shm when there is one (tmpfs: zero
// range, collapse and insert must fail with EOPNOTSUPP and change
// nothing), with direct reads of the backing file and changes made to it
// from outside among the operations.
func TestFsxPassthrough(t *testing.T) {
	bases := []string{""}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		bases = append(bases, "/dev/shm")
	}
	for _, base := range bases {
		for _, mode := range holefs.LockModes {
			for seed := 1; seed <= *seeds; seed++ {
				name := "tempdir"
				if base != "" {
					name = "shm"
				}
				t.Run(fmt.Sprintf("%s/%s/seed%d", name, mode, seed), func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					if base != "" {
						var err error
						if dir, err = os.MkdirTemp(base, "holefs-fsx-"); err != nil {
							t.Skipf("no usable %s: %v", base, err)
						}
						t.Cleanup(func() { os.RemoveAll(dir) })
					}
					cfg := Config{Backend: holefs.BackendPassthrough, BackingDir: dir, Mode: mode, Seed: uint64(seed), Ops: *ops}
					if mode == holefs.LockNone {
						cfg.ReadaheadBytes = 4096
					}
					if err := Run(cfg); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestFsxZonefs runs the zonefs tester (a sequential and a conventional
// zone file, every refused operation with its errno) in every lock mode,
// in memory and, in invalidate mode (CI time: one seed in the others), on
// a zoned image with remounts and crash copies.
func TestFsxZonefs(t *testing.T) {
	for _, mode := range holefs.LockModes {
		for _, image := range []bool{false, true} {
			if image && mode != holefs.LockInvalidate {
				continue
			}
			n := *seeds
			if mode != holefs.LockInvalidate {
				n = 1 // the same code under other fill locks: CI time goes to invalidate
			}
			for seed := 1; seed <= n; seed++ {
				t.Run(fmt.Sprintf("%s/image=%v/seed%d", mode, image, seed), func(t *testing.T) {
					t.Parallel()
					cfg := Config{Mode: mode, Seed: uint64(seed), Ops: *ops}
					if mode == holefs.LockNone {
						cfg.ReadaheadBytes = 4096
					}
					if image {
						cfg.ImageDir = t.TempDir()
					}
					if err := RunZonefs(cfg); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
