package torture

import (
	"testing"
	"time"

	"github.com/holefs/holefs"
)

// TestZonefs: the zonefs mix (direct appends at the write pointer, zone
// resets and finishes, every fill path zonefs has) finds nothing in the
// protected modes, runs every op it should and reports the refused kinds.
func TestZonefs(t *testing.T) {
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	for _, mode := range []holefs.LockMode{holefs.LockInvalidate, holefs.LockRWSem} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := Config{Backend: holefs.BackendZonefs, Mode: mode, Duration: dur, Seed: 5,
				Files: 3, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond}
			rep := run(t, cfg)
			if rep.ViolationCount > 0 {
				t.Fatalf("%d violations in mode %v:\n%s", rep.ViolationCount, mode, report(&rep))
			}
			for _, op := range []string{"read", "fault", "readahead", "fadvise-willneed", "madvise-willneed",
				"append", "direct-read", "reset", "finish", "verify-read", "final-read"} {
				if rep.OpsByKind[op] == 0 {
					t.Errorf("no %s operation:\n%s", op, report(&rep))
				}
			}
			for _, op := range []string{"write", "mapwrite", "copy", "nb-create"} {
				if rep.Unsupported[op] == 0 {
					t.Errorf("%s not reported as refused by zonefs: %v", op, rep.Unsupported)
				}
			}
			t.Logf("%s", rep.Summary())
		})
	}
}

// TestZonefsDetection: with LockNone, each fill path alone racing zone
// resets (with direct appends refilling the zones, and a verifier for the
// paths that return no data) shows stale data within 10 s.
func TestZonefsDetection(t *testing.T) {
	for _, fill := range FillPaths {
		t.Run(fill, func(t *testing.T) {
			w := map[string]int{fill: 2, WorkRemove: 1, WorkDirect: 1}
			if fill != WorkRead && fill != WorkFault {
				w[WorkVerify] = 1
			}
			cfg := Config{Backend: holefs.BackendZonefs, Mode: holefs.LockNone, Duration: 10 * time.Second, Seed: 3,
				Files: 2, FileBlocks: 16, CacheBytes: 256 << 10, RemoveDelay: 20 * time.Microsecond, Workers: w,
				StopOnFirst: true, StopKinds: []string{KindStale}}
			rep := run(t, cfg)
			first, ok := rep.FirstByKind[KindStale]
			if !ok {
				t.Fatalf("no stale data in %v with only %s racing zone resets:\n%s", rep.Elapsed, fill, report(&rep))
			}
			t.Logf("%s: detected after %v (%d ops)", fill, first.Round(time.Microsecond), rep.Ops)
		})
	}
}
