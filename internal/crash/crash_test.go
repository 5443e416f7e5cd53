package crash

import (
	"context"
	"flag"
	"path/filepath"
	"testing"

	"github.com/holefs/holefs/blockdev"
)

var (
	flagStates = flag.Int("crash.states", 0, "check at least this many crash states in TestCrashStates (0: one workload)")
	flagSeed   = flag.Uint64("crash.seed", 1, "seed of TestCrashStates's first workload")
)

// TestCrashStates records a random workload (more with -crash.states),
// on an image without and with data checksums and on an ext2 image, and
// checks every crash state of it.
func TestCrashStates(t *testing.T) {
	for _, c := range []struct {
		name       string
		sums, ext2 bool
	}{{"extent", false, false}, {"extent, data checksums", true, false}, {"ext2", false, true}} {
		rep, err := Run(context.Background(), Config{Seed: *flagSeed, States: *flagStates, DataChecksums: c.sums, Ext2: c.ext2, Dir: scratch(t)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d workloads, %d ops, %d commits, %d flushes, %d block writes: %d crash points, %d crash states checked in %v",
			c.name, rep.Workloads, rep.Ops, rep.Commits, rep.Flushes, rep.Writes, rep.Points, rep.States, rep.Elapsed)
		for _, v := range rep.Examples {
			t.Error(v)
		}
		if rep.Violations > len(rep.Examples) {
			t.Errorf("and %d more violations (%s)", rep.Violations-len(rep.Examples), kinds(rep.Kinds))
		}
		if rep.States < 100 || rep.Commits < 10 {
			t.Errorf("only %d crash states of %d commits: the workload does too little", rep.States, rep.Commits)
		}
	}
}

// noFlush is a device that acknowledges flushes without doing them, as
// a disk with a lying write cache does.
type noFlush struct{ blockdev.Device }

func (noFlush) Flush() error { return nil }

// TestCrashDetectsLostFlush shows the checker failing: on a device that
// drops flushes, fsynced data is not durable, and crash states must show
// it.
func TestCrashDetectsLostFlush(t *testing.T) {
	dir := scratch(t)
	r, err := record(filepath.Join(dir, "img"), spec{seed: 1, ops: 60, wrap: func(d blockdev.Device) blockdev.Device { return noFlush{d} }}, 48)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	if err := r.checkAll(context.Background(), dir, 2, 2, func(vs []Violation) {
		for _, v := range vs {
			if v.Kind == "LOST" {
				lost++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatal("no LOST data found in the crash states of a device that drops flushes")
	}
	t.Logf("%d blocks of fsynced data lost in crash states", lost)
}

// TestCrashStatesLog: the recorded images have a write-ahead log small
// enough that the workload fills its halves, so the crash states include
// checkpoints (meta.db transactions) and records written over checkpointed
// ones; each state's commit is the one its log replays, and must be one an
// fsync could have left.
func TestCrashStatesLog(t *testing.T) {
	dir := scratch(t)
	r, err := record(filepath.Join(dir, "img"), spec{seed: 2, ops: 150}, 48)
	if err != nil {
		t.Fatal(err)
	}
	if !r.wal || len(r.ckpts) < 2 {
		t.Fatalf("log %v, %d checkpoints: the workload must reuse the log's halves", r.wal, len(r.ckpts))
	}
	states := 0
	if err := r.checkAll(context.Background(), dir, 2, 2, func(vs []Violation) {
		states++
		for _, v := range vs {
			t.Error(v)
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits, %d checkpoints, %d crash states", len(r.commits)-1, len(r.ckpts), states)
}
