package ext2fs_test

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
)

// TestRestore: a store rebuilt from the device and the files' i_block
// alone maps every page as the original, owns the same blocks, and
// checks clean; an indirect block left with nothing linked (a crash
// between Allocate and MarkWritten) is dropped and its block freed.
func TestRestore(t *testing.T) {
	fs, dev := newFS(t, 4096)
	a, b := fs.NewFile(1), fs.NewFile(2)
	write(t, a, 0, 20)
	write(t, a, dind+1500, 3)
	write(t, a, tind+7, 1)
	write(t, b, 5, 1)
	// Reserved only: the double-indirect tree of b exists on the device
	// with nothing linked in it.
	if err := b.Allocate(dind+2, 1); err != nil {
		t.Fatal(err)
	}
	_, freeBefore := fs.Statfs()
	roots := map[uint64][ext2fs.NRoots]uint32{1: a.(*ext2fs.File).Roots(), 2: b.(*ext2fs.File).Roots()}
	got, err := ext2fs.Restore(dev, roots)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got)
	for ino, orig := range map[uint64]blockmap.File{1: a, 2: b} {
		f := fileOf(t, got, ino)
		for _, p := range []int64{0, 11, 12, 19, 20, dind + 1499, dind + 1500, dind + 1502, tind + 7, 5, dind + 2} {
			want, _ := orig.Lookup(p, 1)
			if want.Kind == blockmap.Unwritten {
				want = blockmap.Extent{Page: p, Count: 1, Kind: blockmap.Hole, Block: -1}
			}
			if e, _ := f.Lookup(p, 1); e != want {
				t.Errorf("inode %d page %d: restored %+v, want %+v", ino, p, e, want)
			}
		}
	}
	// b's reservation and its two indirect blocks are not on the device.
	if _, free := got.Statfs(); free != freeBefore+3 {
		t.Errorf("restored store has %d free blocks, want %d", free, freeBefore+3)
	}
	if r := fileOf(t, got, 2).Roots(); r[ext2fs.NDirect+1] != 0 {
		t.Errorf("empty double-indirect tree kept: roots %v", r)
	}
}

// fileOf returns the restored map of inode ino through the store.
func fileOf(t *testing.T, fs *ext2fs.FS, ino uint64) *ext2fs.File {
	t.Helper()
	f, ok := fs.File(ino)
	if !ok {
		t.Fatalf("inode %d not restored", ino)
	}
	return f
}

// TestRestoreCorrupt: each kind of damage is EUCLEAN naming it, never a
// panic or a store that hands out a block twice.
func TestRestoreCorrupt(t *testing.T) {
	put := func(dev blockdev.Device, blk int64, slot int, v uint32) {
		buf := make([]byte, 4096)
		if err := dev.ReadBlocks(buf, blk); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(buf[4*slot:], v)
		if err := dev.WriteBlocks(buf, blk); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		corrupt func(dev blockdev.Device, r map[uint64][ext2fs.NRoots]uint32)
	}{
		{"two files share a block", func(_ blockdev.Device, r map[uint64][ext2fs.NRoots]uint32) {
			x := r[2]
			x[0] = r[1][0]
			r[2] = x
		}},
		{"root past the device", func(_ blockdev.Device, r map[uint64][ext2fs.NRoots]uint32) {
			x := r[1]
			x[ext2fs.NDirect] = 1 << 20
			r[1] = x
		}},
		{"indirect pointer past the device", func(dev blockdev.Device, r map[uint64][ext2fs.NRoots]uint32) {
			put(dev, int64(r[1][ext2fs.NDirect]), 3, 99999)
		}},
		{"indirect block points at itself", func(dev blockdev.Device, r map[uint64][ext2fs.NRoots]uint32) {
			put(dev, int64(r[1][ext2fs.NDirect+1]), 0, r[1][ext2fs.NDirect+1])
		}},
		{"data block is also an indirect block", func(dev blockdev.Device, r map[uint64][ext2fs.NRoots]uint32) {
			put(dev, int64(r[1][ext2fs.NDirect]), 0, r[1][ext2fs.NDirect+1])
		}},
	}
	for _, tt := range tests {
		fs, dev := newFS(t, 4096)
		a, b := fs.NewFile(1), fs.NewFile(2)
		write(t, a, 0, 14)
		write(t, a, dind, 1)
		write(t, b, 0, 1)
		roots := map[uint64][ext2fs.NRoots]uint32{1: a.(*ext2fs.File).Roots(), 2: b.(*ext2fs.File).Roots()}
		tt.corrupt(dev, roots)
		if _, err := ext2fs.Restore(dev, roots); !errors.Is(err, syscall.EUCLEAN) {
			t.Errorf("%s: Restore = %v, want EUCLEAN", tt.name, err)
		}
	}
}
