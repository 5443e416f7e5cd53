package torture

import (
	"testing"
	"time"

	"github.com/holefs/holefs"
)

// TestDAX runs the full worker mix on a DAX filesystem in the protected
// lock modes: no violation, blocks verified, and not one page cached.
func TestDAX(t *testing.T) {
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockRWSem} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := Config{DAX: true, Mode: mode, Duration: dur, Seed: 11, Files: 3, FileBlocks: 16,
				RemoveDelay: 20 * time.Microsecond, FillDelay: 5 * time.Microsecond}
			rep := run(t, cfg)
			if rep.ViolationCount > 0 {
				t.Fatalf("%d violations in DAX mode %v:\n%s", rep.ViolationCount, mode, report(&rep))
			}
			for _, op := range []string{"read", "fault", "mapwrite", "write", "direct-write", "punch", "zero",
				"collapse", "insert", "truncate-down", "copy", "nb-write", "final-read"} {
				if rep.OpsByKind[op] == 0 {
					t.Errorf("no %s operation:\n%s", op, report(&rep))
				}
			}
			if rep.BlocksVerified == 0 {
				t.Errorf("nothing verified:\n%s", report(&rep))
			}
			if c := rep.Cache; c.FillPages != 0 || c.WritebackPages != 0 {
				t.Errorf("DAX run filled %d and wrote back %d pages", c.FillPages, c.WritebackPages)
			}
			t.Logf("%s", rep.Summary())
		})
	}
}

// TestDAXDetection proves the checker sees the race on DAX files: with
// LockNone, each DAX fill path alone against removers and the neighbour
// that reuses freed blocks must return a freed block's data within 10 s.
// Nothing is cached, so the race shows only in what the fill itself
// returns while a remover frees its block: the fill delay (after the block
// lookup) gives the remover and the neighbour time to get in.
func TestDAXDetection(t *testing.T) {
	for _, fill := range []string{WorkRead, WorkFault} {
		t.Run(fill, func(t *testing.T) {
			kinds := []string{KindStale, KindForeign, KindMisplaced}
			cfg := Config{DAX: true, Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: 1, Files: 2, FileBlocks: 16,
				RemoveDelay: 20 * time.Microsecond, FillDelay: 50 * time.Microsecond,
				Workers:     map[string]int{fill: 2, WorkRemove: 2, WorkWrite: 1, WorkNeighbour: 1},
				StopOnFirst: true, StopKinds: kinds}
			rep := run(t, cfg)
			first := time.Duration(0)
			for _, k := range kinds {
				if d, ok := rep.FirstByKind[k]; ok && (first == 0 || d < first) {
					first = d
				}
			}
			if first == 0 {
				t.Fatalf("no stale, foreign or misplaced data in %v with only DAX %s racing:\n%s", rep.Elapsed, fill, report(&rep))
			}
			t.Logf("%s: detected after %v (%d ops); violations by kind %v", fill, first.Round(time.Microsecond), rep.Ops, rep.ByKind)
		})
	}
}
