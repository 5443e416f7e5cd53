package zonefs

import (
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
)

func newTestFS(t *testing.T, errs Errors) (*FS, *blockdev.Zoned) {
	t.Helper()
	dev, err := blockdev.NewZoned(blockdev.ZonedOptions{ZoneBlocks: 8, Zones: 3, Conventional: 1, CapacityBlocks: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	f, err := New(dev, Mount{Errors: errs})
	if err != nil {
		t.Fatal(err)
	}
	return f, dev
}

// TestLookup: pages below the write pointer are mapped to the zone's
// blocks, up to the capacity unwritten, past it a hole; a conventional
// zone is mapped whole.
func TestLookup(t *testing.T) {
	f, dev := newTestFS(t, ErrorsRemountRO)
	if err := dev.WriteBlocks(make([]byte, 2*blockdev.BlockSize), 8); err != nil {
		t.Fatal(err)
	}
	cnv, seq := f.Files()[0], f.Files()[1]
	if cnv.Name() != "cnv/0" || seq.Name() != "seq/0" || seq.Ino() != FirstIno+1 {
		t.Fatalf("names %s %s, ino %d", cnv.Name(), seq.Name(), seq.Ino())
	}
	tests := []struct {
		f          *File
		index, max int64
		want       blockmap.Extent
	}{
		{seq, 0, 10, blockmap.Extent{Page: 0, Count: 2, Kind: blockmap.Mapped, Block: 0}},
		{seq, 1, 1, blockmap.Extent{Page: 1, Count: 1, Kind: blockmap.Mapped, Block: 1}},
		{seq, 2, 10, blockmap.Extent{Page: 2, Count: 4, Kind: blockmap.Unwritten, Block: 2}},
		{seq, 6, 3, blockmap.Extent{Page: 6, Count: 3, Kind: blockmap.Hole, Block: -1}},
		{cnv, 0, 20, blockmap.Extent{Page: 0, Count: 8, Kind: blockmap.Mapped, Block: 0}},
	}
	for _, tc := range tests {
		if got, err := tc.f.Lookup(tc.index, tc.max); err != nil || got != tc.want {
			t.Errorf("%s Lookup(%d, %d) = %+v, %v; want %+v", tc.f.Name(), tc.index, tc.max, got, err, tc.want)
		}
	}
	if _, err := seq.Lookup(-1, 1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Lookup(-1): %v, want EINVAL", err)
	}
	if err := seq.Allocate(4, 3); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("Allocate past the capacity: %v, want EFBIG", err)
	}
	if d, _ := seq.NextData(1); d != 1 {
		t.Errorf("NextData(1) = %d", d)
	}
	if d, _ := seq.NextData(2); d != -1 {
		t.Errorf("NextData(2) = %d", d)
	}
	if _, err := f.NewFile(99).Lookup(0, 1); !errors.Is(err, syscall.EIO) {
		t.Errorf("file of no zone: %v, want EIO", err)
	}
	if total, free := f.Statfs(); total != 8+6+6 || free != 4+6 {
		t.Errorf("Statfs = %d, %d; want 20, 10", total, free)
	}
}

// TestTruncate: 0 resets, the capacity finishes, the rest is EPERM.
func TestTruncate(t *testing.T) {
	f, dev := newTestFS(t, ErrorsRemountRO)
	cnv, seq := f.Files()[0], f.Files()[1]
	for _, tc := range []struct {
		f     *File
		index int64
		want  syscall.Errno
		cond  blockdev.ZoneCond
	}{
		{seq, 3, syscall.EPERM, blockdev.CondEmpty},
		{seq, 6, 0, blockdev.CondFull},
		{seq, 0, 0, blockdev.CondEmpty},
		{cnv, 0, syscall.EPERM, blockdev.CondNotWP},
	} {
		err := tc.f.Truncate(tc.index)
		if tc.want == 0 && err != nil || tc.want != 0 && !errors.Is(err, tc.want) {
			t.Errorf("%s Truncate(%d) = %v, want %v", tc.f.Name(), tc.index, err, tc.want)
		}
		if zn, _ := dev.Report(tc.f.Zone()); zn.Cond != tc.cond {
			t.Errorf("%s after Truncate(%d): %s, want %s", tc.f.Name(), tc.index, zn.Cond, tc.cond)
		}
	}
	for _, err := range []error{seq.Punch(0, 1), seq.ZeroRange(0, 1), seq.Collapse(0, 1), seq.Insert(0, 1)} {
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Errorf("fallocate op: %v, want EOPNOTSUPP", err)
		}
	}
}

// TestIOError: the errors= policies, zonefs.rst's table, at the level of
// one zone: the size and permission bits the file gets, and the writes
// after.
func TestIOError(t *testing.T) {
	const size = 2 * blockdev.BlockSize
	tests := []struct {
		errs      Errors
		cond      blockdev.ZoneCond // injected; 0: the write pointer moved one block past the size
		size      int64
		clear     uint32
		write     syscall.Errno // CheckWrite after
		otherZone syscall.Errno // CheckWrite of another zone after
	}{
		{ErrorsRemountRO, blockdev.CondReadOnly, size, 0o222, syscall.EROFS, syscall.EROFS},
		{ErrorsRemountRO, blockdev.CondOffline, 0, 0o777, syscall.EROFS, syscall.EROFS},
		{ErrorsRemountRO, 0, size, 0, syscall.EROFS, syscall.EROFS},
		{ErrorsZoneRO, 0, size, 0o222, syscall.EPERM, 0},
		{ErrorsZoneRO, blockdev.CondOffline, 0, 0o777, syscall.EPERM, 0},
		{ErrorsZoneOffline, blockdev.CondReadOnly, 0, 0o777, syscall.EPERM, 0},
		{ErrorsRepair, 0, size + blockdev.BlockSize, 0, 0, 0},
		{ErrorsRepair, blockdev.CondReadOnly, size, 0o222, syscall.EPERM, 0},
	}
	for _, tc := range tests {
		t.Run(tc.errs.String()+"/"+tc.cond.String(), func(t *testing.T) {
			f, dev := newTestFS(t, tc.errs)
			seq := f.Files()[1]
			if err := dev.WriteBlocks(make([]byte, 2*blockdev.BlockSize), 8); err != nil {
				t.Fatal(err)
			}
			if tc.cond != 0 {
				if err := dev.SetZoneCondition(1, tc.cond); err != nil {
					t.Fatal(err)
				}
			} else if err := dev.WriteBlocks(make([]byte, blockdev.BlockSize), 10); err != nil {
				t.Fatal(err)
			}
			got, clear := seq.IOError(true, size)
			if got != tc.size || clear != tc.clear {
				t.Errorf("IOError = size %d, clear %#o; want %d, %#o", got, clear, tc.size, tc.clear)
			}
			for _, c := range []struct {
				err  error
				want syscall.Errno
				what string
			}{{seq.CheckWrite(), tc.write, "this zone"}, {f.Files()[2].CheckWrite(), tc.otherZone, "another zone"}} {
				if c.want == 0 && c.err != nil || c.want != 0 && !errors.Is(c.err, c.want) {
					t.Errorf("write to %s after: %v, want %v", c.what, c.err, c.want)
				}
			}
		})
	}
	if _, err := ParseErrors("zone-rw"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ParseErrors(zone-rw): %v, want EINVAL", err)
	}
	for _, s := range errorsNames {
		if e, err := ParseErrors(s); err != nil || e.String() != s {
			t.Errorf("ParseErrors(%s) = %v, %v", s, e, err)
		}
	}
}
