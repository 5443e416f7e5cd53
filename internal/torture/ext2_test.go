package torture

import (
	"testing"
	"time"

	"github.com/holefs/holefs"
)

// TestExt2 runs the full mix on the ext2 backend, whose one remover is
// truncate (every fallocate mode is refused, and counted so): no
// violation in invalidate mode, with files that reach past the direct
// pointers into the single-indirect block, so truncates free indirect
// blocks too and the neighbour reuses them at once.
func TestExt2(t *testing.T) {
	dur := 5 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	cfg := Config{Backend: holefs.BackendExt2, Mode: holefs.LockInvalidate, Duration: dur, Seed: 23,
		Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond}
	rep := run(t, cfg)
	if rep.ViolationCount > 0 {
		t.Fatalf("%d violations:\n%s", rep.ViolationCount, report(&rep))
	}
	for _, op := range []string{"read", "fault", "mapwrite", "readahead", "fadvise-willneed", "madvise-willneed",
		"write", "direct-read", "direct-write", "truncate-down", "copy", "nb-write", "verify-read", "final-read"} {
		if rep.OpsByKind[op] == 0 {
			t.Errorf("no %s operation:\n%s", op, report(&rep))
		}
	}
	for _, op := range []string{"punch", "zero", "collapse", "insert"} {
		if rep.Unsupported[op] == 0 {
			t.Errorf("%s not reported as unsupported: %v", op, rep.Unsupported)
		}
	}
	if rep.BlocksVerified == 0 || rep.Cache.Evictions == 0 {
		t.Errorf("nothing verified or no cache pressure:\n%s", report(&rep))
	}
	t.Logf("%s", rep.Summary())
}

// TestExt2Detection: on ext2, LockNone must show stale, foreign, misplaced
// or corrupt data (a freed data block may come back as an indirect block)
// for each fill path alone racing truncate, within 10 s, as TestDetection
// shows it for extentfs's removers. A truncate changes the size, which
// fills check first, so its window is narrower than a punch's: EOFDelay
// widens it between a fill's EOF check and its page creation, FillDelay
// between its block lookup and its read.
func TestExt2Detection(t *testing.T) {
	// A stale page made during a truncate lies past the new EOF and shows
	// only once the size is restored and before the next truncate drops
	// it: verifiers (which cannot race, being gated against removers)
	// look for it, more of them where the fill path itself reads little.
	verifiers := map[string]int{WorkRead: 1, WorkReadahead: 1, WorkFadvise: 1, WorkMadvise: 1}
	kinds := []string{KindStale, KindForeign, KindMisplaced, KindCorrupt}
	for _, fill := range FillPaths {
		t.Run(fill, func(t *testing.T) {
			if fill == WorkFault {
				// Measured: caught after 0.4–5.4 s on most runs, but 1 run
				// in 3 under -race caught nothing in 2 × 10 s. The fault
				// row of internal/repro's TestRaceExt2 proves it
				// deterministically (none: foreign data, every run).
				t.Skip("ext2 fault vs truncate under LockNone is caught too rarely by the random mix to assert in CI; repro TestRaceExt2 proves it")
			}
			w := map[string]int{fill: 4, WorkRemove: 1, WorkWrite: 1, WorkNeighbour: 1, WorkVerify: verifiers[fill]}
			// The race is caught within 10 s on almost every run, but a
			// 2-core machine under load sometimes schedules the window
			// away for the whole run: a second seed gets a second 10 s.
			var rep Report
			for _, seed := range []uint64{5, 6} {
				cfg := Config{Backend: holefs.BackendExt2, Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: seed,
					Files: 2, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 500 * time.Microsecond,
					FillDelay: 50 * time.Microsecond, EOFDelay: 500 * time.Microsecond, Workers: w,
					StopOnFirst: true, StopKinds: kinds}
				rep = run(t, cfg)
				if rep.ViolationCount > 0 {
					break
				}
				t.Logf("seed %d: nothing caught in %v; trying the next seed", seed, rep.Elapsed)
			}
			first := time.Duration(0)
			for _, k := range kinds {
				if d, ok := rep.FirstByKind[k]; ok && (first == 0 || d < first) {
					first = d
				}
			}
			if first == 0 {
				t.Fatalf("no %v data in two runs of %v with only %s racing truncate:\n%s", kinds, rep.Elapsed, fill, report(&rep))
			}
			t.Logf("%s: detected after %v (%d ops); violations by kind %v", fill, first.Round(time.Microsecond), rep.Ops, rep.ByKind)
		})
	}
}
