package torture

import (
	"testing"
	"time"

	"github.com/holefs/holefs"
)

// daxBackends are the backends DAX mode is offered on, with the removers
// each has (ext2 has no fallocate: truncate is its one remover).
var daxBackends = []struct {
	name     string
	removers []string
}{
	{holefs.BackendExtent, []string{"punch", "zero", "collapse", "insert", "truncate-down"}},
	{holefs.BackendExt2, []string{"truncate-down"}},
}

// TestDAX runs the full worker mix on a DAX filesystem in the protected
// lock modes: no violation, blocks verified, and not one page cached.
func TestDAX(t *testing.T) {
	dur := 2 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	for _, be := range daxBackends {
		for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockRWSem} {
			t.Run(be.name+"/"+mode.String(), func(t *testing.T) {
				cfg := Config{Backend: be.name, DAX: true, Mode: mode, Duration: dur, Seed: 11, Files: 3, FileBlocks: 16,
					RemoveDelay: 20 * time.Microsecond, FillDelay: 5 * time.Microsecond}
				daxRun(t, cfg, be.removers)
			})
		}
	}
}

// daxRun runs cfg and checks what every protected DAX run must show: no
// violation, every fill path and remover exercised, blocks verified and not
// one page cached.
func daxRun(t *testing.T, cfg Config, removers []string) {
	t.Helper()
	rep := run(t, cfg)
	if rep.ViolationCount > 0 {
		t.Fatalf("%d violations in DAX mode %v:\n%s", rep.ViolationCount, cfg.Mode, report(&rep))
	}
	for _, op := range append([]string{"read", "fault", "mapwrite", "write", "direct-write",
		"copy", "nb-write", "final-read"}, removers...) {
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
}

// TestDAXDetection proves the checker sees the race on DAX files: with
// LockNone, each DAX fill path alone against removers and the neighbour
// that reuses freed blocks must return a freed block's data within 10 s.
// Nothing is cached, so the race shows only in what the fill itself
// returns while a remover frees its block: the fill delay (after the block
// lookup) gives the remover and the neighbour time to get in.
func TestDAXDetection(t *testing.T) {
	for _, be := range daxBackends {
		for _, fill := range []string{WorkRead, WorkFault} {
			t.Run(be.name+"/"+fill, func(t *testing.T) {
				daxDetect(t, be.name, fill)
			})
		}
	}
}

// daxDetect runs one DAX fill path in LockNone against the removers on
// backend and fails unless the checker reports a freed block's data. On
// ext2 a freed data block is often reused as an indirect block, so what
// the fill returns is reported as corrupt.
func daxDetect(t *testing.T, backend, fill string) {
	t.Helper()
	kinds := []string{KindStale, KindForeign, KindMisplaced}
	if backend == holefs.BackendExt2 {
		kinds = append(kinds, KindCorrupt)
	}
	cfg := Config{Backend: backend, DAX: true, Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: 1, Files: 2, FileBlocks: 16,
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
		t.Fatalf("no %v data in %v with only DAX %s racing on %s:\n%s", kinds, rep.Elapsed, fill, backend, report(&rep))
	}
	t.Logf("%s: detected after %v (%d ops); violations by kind %v", fill, first.Round(time.Microsecond), rep.Ops, rep.ByKind)
}
