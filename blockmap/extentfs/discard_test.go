package extentfs

import (
	"slices"
	"syscall"
	"testing"

	"github.com/holefs/holefs/meta"
)

// TestDiscard checks which blocks Release and Trim discard: the freed
// blocks of released generations only, merged into runs, never a block
// in use or still quarantined; and that a device answering EOPNOTSUPP is
// not asked again while the blocks are freed all the same.
func TestDiscard(t *testing.T) {
	type call struct{ start, count int64 }
	tests := []struct {
		name string
		fail error
		// do allocates and frees on fs and returns the calls it expects.
		do func(t *testing.T, fs *FS) []call
	}{
		{"nothing before the commit", nil, func(t *testing.T, fs *FS) []call {
			old := fs.Seal()
			must(t, fs.alloc.release(allocT(t, fs, 10)))
			fs.Release(old) // not sealed yet
			fs.Seal()
			fs.Release(old) // sealed in a later generation
			return nil
		}},
		{"adjacent frees merge", nil, func(t *testing.T, fs *FS) []call {
			allocT(t, fs, 10) // blocks 1..10
			must(t, fs.alloc.release([]run{{6, 5}}))
			must(t, fs.alloc.release([]run{{1, 3}}))
			must(t, fs.alloc.release([]run{{4, 2}}))
			fs.Release(fs.Seal())
			return []call{{1, 10}}
		}},
		{"later generations wait", nil, func(t *testing.T, fs *FS) []call {
			allocT(t, fs, 10)
			must(t, fs.alloc.release([]run{{1, 2}}))
			g := fs.Seal()
			must(t, fs.alloc.release([]run{{5, 2}}))
			fs.Seal()
			fs.Release(g)
			return []call{{1, 2}}
		}},
		{"trimming extents skips blocks in use", nil, func(t *testing.T, fs *FS) []call {
			allocT(t, fs, 10)
			must(t, fs.alloc.release([]run{{3, 2}}))
			fs.Release(fs.Seal())
			// A dropped file's extents, blocks 2..9 and 20..21, of which
			// 3..4 and 20..21 are free.
			n, err := fs.TrimExtents([]meta.Extent{{Block: 2, Count: 8}, {Page: 8, Block: 20, Count: 2}}, fs.discard)
			if n != 4 || err != nil {
				t.Errorf("TrimExtents: %d blocks, %v; want 4", n, err)
			}
			return []call{{3, 2}, {3, 2}, {20, 2}}
		}},
		{"EOPNOTSUPP turns discard off", syscall.EOPNOTSUPP, func(t *testing.T, fs *FS) []call {
			allocT(t, fs, 10)
			must(t, fs.alloc.release([]run{{1, 2}, {5, 2}}))
			fs.Release(fs.Seal())
			must(t, fs.alloc.release([]run{{8, 2}}))
			fs.Release(fs.Seal())
			return []call{{1, 2}} // the first failed; nothing after
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := Restore(64, nil, nil, false, false)
			must(t, err)
			var got []call
			fs.SetDiscard(func(start, count int64) error {
				got = append(got, call{start, count})
				return tt.fail
			})
			want := tt.do(t, fs)
			if !slices.Equal(got, want) {
				t.Errorf("discards %v, want %v", got, want)
			}
			if tt.fail != nil && fs.alloc.quarantined() != 0 {
				t.Errorf("%d blocks still quarantined after failed discards", fs.alloc.quarantined())
			}
			var wantFailed int64
			if tt.fail != nil {
				wantFailed = int64(len(want))
			}
			if _, failed := fs.Discarded(); failed != wantFailed {
				t.Errorf("Discarded: %d failures, want %d", failed, wantFailed)
			}
		})
	}
}

// TestTrim checks that Trim discards exactly the free blocks: every
// block but the superblock and those in use or quarantined.
func TestTrim(t *testing.T) {
	fs, err := Restore(64, nil, nil, false, false)
	must(t, err)
	allocT(t, fs, 10)                                // 1..10 in use
	must(t, fs.alloc.release([]run{{3, 2}, {8, 1}})) // quarantined
	var got []run
	n, err := fs.Trim(func(start, count int64) error {
		got = append(got, run{start, count})
		return nil
	})
	if want := []run{{11, 53}}; err != nil || n != 53 || !slices.Equal(got, want) {
		t.Errorf("Trim: %d blocks, %v, calls %v; want 53, nil, %v", n, err, got, want)
	}
	fs.Release(fs.Seal())
	got = nil
	if n, err := fs.Trim(func(start, count int64) error {
		got = append(got, run{start, count})
		return nil
	}); n != 56 || err != nil || !slices.Equal(got, []run{{3, 2}, {8, 1}, {11, 53}}) {
		t.Errorf("Trim after the commit: %d blocks, %v, calls %v", n, err, got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// allocT allocates n blocks, lowest first.
func allocT(t *testing.T, fs *FS, n int64) []run {
	t.Helper()
	runs, err := fs.alloc.alloc([]allocReq{{-1, n}})
	must(t, err)
	return runs[0]
}
