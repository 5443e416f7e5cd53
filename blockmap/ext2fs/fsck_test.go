package ext2fs_test

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
)

// FuzzFsck: fsck of any content of a file's indirect blocks and roots
// never panics; after Repair (its rewritten blocks and returned roots)
// a second check finds no error or warning, and Restore accepts the maps.
func FuzzFsck(f *testing.F) {
	const nblocks = 64
	// Seeds: a healthy tree (single-indirect block 20 with pages 12, 13
	// in blocks 21, 22; a double-indirect root 30 -> leaf 31 -> 32), a
	// pointer past the device, a cycle, a block shared by two slots.
	healthy := make([]byte, 3*16)
	binary.LittleEndian.PutUint32(healthy[0:], 21)
	binary.LittleEndian.PutUint32(healthy[4:], 22)
	binary.LittleEndian.PutUint32(healthy[16:], 31)
	binary.LittleEndian.PutUint32(healthy[32:], 32)
	f.Add(healthy, uint32(20), uint32(30), uint32(5), int64(1<<30))
	bad := append([]byte(nil), healthy...)
	binary.LittleEndian.PutUint32(bad[4:], 1000)
	f.Add(bad, uint32(20), uint32(30), uint32(5), int64(1<<30))
	cycle := append([]byte(nil), healthy...)
	binary.LittleEndian.PutUint32(cycle[16:], 30)
	f.Add(cycle, uint32(20), uint32(30), uint32(21), int64(4096*14))
	f.Fuzz(func(t *testing.T, slots []byte, ind, dind, direct uint32, size int64) {
		if size < 0 || size > meta.MaxFileSize {
			return
		}
		dev := blockdev.NewMemory(nblocks)
		// slots fills the first 4 slots of blocks 20, 30 and 31.
		buf := make([]byte, 4096)
		for k, blk := range []int64{20, 30, 31} {
			clear(buf)
			if lo := 16 * k; lo < len(slots) {
				copy(buf, slots[lo:min(lo+16, len(slots))])
			}
			if err := dev.WriteBlocks(buf, blk); err != nil {
				t.Fatal(err)
			}
		}
		in := meta.Inode{Ino: 7, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: size}
		in.IBlock[0], in.IBlock[12], in.IBlock[13] = direct, ind, dind
		check := ext2fs.Fsck(dev)
		if _, err := check(map[uint64]meta.Inode{7: in}, false); err != nil {
			t.Fatal(err)
		}
		res, err := check(map[uint64]meta.Inode{7: in}, true)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := res.Roots[7]; ok {
			in.IBlock = r
		}
		again, err := check(map[uint64]meta.Inode{7: in}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range again.Findings {
			if fd.Severity != meta.Info {
				t.Fatalf("after repair: %v", fd)
			}
		}
		if _, err := ext2fs.Restore(dev, map[uint64][ext2fs.NRoots]uint32{7: in.IBlock}); err != nil {
			t.Fatalf("restore after repair: %v", err)
		}
	})
}
