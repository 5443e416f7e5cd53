package repro

import (
	"os"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/pagecache"
)

func TestMain(m *testing.M) {
	lockcheck.Enable()
	os.Exit(m.Run())
}

// TestRace forces the seed's interleaving for every fill path against
// every remover. Under LockNone the detector must see the bug (so it is
// shown to work); under the two protected modes it must never see it.
func TestRace(t *testing.T) {
	for _, mode := range lockConfigs {
		for _, fill := range Fills {
			for _, remove := range Removers {
				s := Scenario{Backend: "extentfs", Mode: mode.mode, FileLock: mode.fileLock, Fill: fill, Remove: remove}
				t.Run(s.String(), func(t *testing.T) {
					out, err := Run(s)
					if err != nil {
						t.Fatal(err)
					}
					if mode.mode == pagecache.LockNone {
						if !out.Interleaved || out.Verdict == OK {
							t.Fatalf("LockNone: want the race detected, got %+v", out)
						}
						return
					}
					if out.Interleaved || out.Verdict != OK {
						t.Fatalf("%v: the filler got between truncation and block removal: %+v", s, out)
					}
				})
			}
		}
	}
}

// lockConfig is a lock mode and, in invalidate mode, which invalidate lock.
type lockConfig struct {
	mode     pagecache.LockMode
	fileLock bool
}

// lockConfigs are the lock modes with the range invalidate lock, and the
// invalidate mode again with the per-file one (Linux's).
var lockConfigs = []lockConfig{
	{pagecache.LockInvalidate, false}, {pagecache.LockRWSem, false}, {pagecache.LockNone, false},
	{pagecache.LockInvalidate, true},
}

// TestRaceWriteback: a page cached during a punch keeps the mapping of
// its freed block; once another file owns that block, writeback of the
// page overwrites the other file. Only LockNone lets that page exist.
func TestRaceWriteback(t *testing.T) {
	for _, mode := range pagecache.LockModes {
		for _, fill := range Fills {
			s := Scenario{Backend: "extentfs", Mode: mode, Fill: fill, Remove: "punch", Writeback: true}
			t.Run(s.String(), func(t *testing.T) {
				out, err := Run(s)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]Verdict{true: Corrupt, false: OK}[mode == pagecache.LockNone]; out.Verdict != want {
					t.Fatalf("got %+v, want verdict %s", out, want)
				}
			})
		}
	}
}

// TestRaceMemfs runs the scenarios memfs supports (punch, truncate) in the
// protected modes: its pages are the storage, so every path must end with
// the punched range reading as zeros.
func TestRaceMemfs(t *testing.T) {
	for _, mode := range []pagecache.LockMode{pagecache.LockInvalidate, pagecache.LockRWSem} {
		for _, fill := range Fills {
			for _, remove := range Removers {
				s := Scenario{Backend: "memfs", Mode: mode, Fill: fill, Remove: remove}
				t.Run(s.String(), func(t *testing.T) {
					out, err := Run(s)
					if remove == "zero" || remove == "collapse" {
						if err != ErrUnsupported {
							t.Fatalf("memfs %s: got %v, want ErrUnsupported", remove, err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if out.Verdict != OK {
						t.Fatalf("got %+v", out)
					}
				})
			}
		}
	}
}

// TestRaceDAX forces the interleaving for the fill paths of a DAX file
// against every remover: under LockNone a fault installs a view entry of
// the block the remover frees (the neighbour's secret then shows through
// the view) and a read returns the neighbour's secret itself; under the
// protected modes neither can get between the two halves of the remover.
// One race leaves nothing wrong even under LockNone: a read against zero
// range returns the old bytes, which no cache keeps and which a read just
// before the zero range returns as well (zero range frees no block).
func TestRaceDAX(t *testing.T) {
	for _, cfg := range lockConfigs {
		mode := cfg.mode
		for _, fill := range DAXFills {
			for _, remove := range Removers {
				s := Scenario{Backend: "extentfs", DAX: true, Mode: mode, FileLock: cfg.fileLock, Fill: fill, Remove: remove}
				t.Run(s.String(), func(t *testing.T) {
					out, err := Run(s)
					if err != nil {
						t.Fatal(err)
					}
					if mode == pagecache.LockNone {
						harmless := fill == "read" && remove == "zero"
						if !out.Interleaved || (out.Verdict == OK) != harmless {
							t.Fatalf("LockNone: want the race played and detected (harmless: %v), got %+v", harmless, out)
						}
						return
					}
					if out.Interleaved || out.Verdict != OK {
						t.Fatalf("%v: the filler got between truncation and block removal: %+v", mode, out)
					}
				})
			}
		}
	}
}

// TestRaceExt2 runs every fill path against truncate, ext2's one remover,
// on the ext2 backend, whose block map is read from indirect blocks that
// the same allocator hands out, with and without DAX (the issue's
// "truncate vs DAX fault" row is ext2+dax fault-vs-truncate): LockNone
// shows the bug, the protected modes never do; every fallocate remover is
// refused.
func TestRaceExt2(t *testing.T) {
	for _, dax := range []bool{false, true} {
		fills := Fills
		if dax {
			fills = DAXFills
		}
		for _, mode := range pagecache.LockModes {
			for _, fill := range fills {
				for _, remove := range Removers {
					s := Scenario{Backend: "ext2", DAX: dax, Mode: mode, Fill: fill, Remove: remove}
					t.Run(s.String(), func(t *testing.T) {
						out, err := Run(s)
						switch {
						case remove != "truncate":
							if err != ErrUnsupported {
								t.Fatalf("ext2 %s: got %v, want ErrUnsupported", remove, err)
							}
						case err != nil:
							t.Fatal(err)
						case mode == pagecache.LockNone && (!out.Interleaved || out.Verdict == OK):
							t.Fatalf("LockNone: want the race detected, got %+v", out)
						case mode != pagecache.LockNone && (out.Interleaved || out.Verdict != OK):
							t.Fatalf("%v: the filler got between truncation and block removal: %+v", mode, out)
						}
					})
				}
			}
		}
	}
}

// TestRaceZonefsReset: a fill racing a zone reset (truncate of a
// sequential zone file to 0). LockNone caches the pre-reset data, which
// a finish then shows; the protected modes never do.
func TestRaceZonefsReset(t *testing.T) {
	for _, mode := range pagecache.LockModes {
		for _, fill := range Fills {
			s := Scenario{Backend: "zonefs", Mode: mode, Fill: fill, Remove: "reset"}
			t.Run(s.String(), func(t *testing.T) {
				out, err := Run(s)
				if err != nil {
					t.Fatal(err)
				}
				if mode == pagecache.LockNone {
					if !out.Interleaved || out.Verdict != Stale {
						t.Fatalf("LockNone: want the pre-reset data exposed, got %+v", out)
					}
					return
				}
				if out.Interleaved || out.Verdict != OK {
					t.Fatalf("%v: the filler got between the reset's truncation and its zone command: %+v", mode, out)
				}
			})
		}
	}
	if _, err := Run(Scenario{Backend: "zonefs", Mode: pagecache.LockInvalidate, Fill: "read", Remove: "punch"}); err != ErrUnsupported {
		t.Fatalf("zonefs punch: %v, want ErrUnsupported", err)
	}
}
