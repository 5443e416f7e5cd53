package ext2fs_test

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap/ext2fs"
)

// FuzzDecodeIndirect: any block decodes without a panic, to pointers that
// are holes or inside the device, or to EUCLEAN; what it accepts
// re-encodes to the same bytes.
func FuzzDecodeIndirect(f *testing.F) {
	blk := make([]byte, 4096)
	f.Add(blk, int64(100))
	binary.LittleEndian.PutUint32(blk[8:], 99)
	f.Add(blk, int64(100))
	binary.LittleEndian.PutUint32(blk[4092:], 100)
	f.Add(blk, int64(100))
	f.Add([]byte{1, 2, 3}, int64(10))
	f.Fuzz(func(t *testing.T, buf []byte, nblocks int64) {
		ptr, err := ext2fs.DecodeIndirect(buf, nblocks)
		if len(buf) != 4096 {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%d bytes: %v, want EINVAL", len(buf), err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, syscall.EUCLEAN) {
				t.Fatalf("error %v does not wrap EUCLEAN", err)
			}
			return
		}
		for i, p := range ptr {
			if p != 0 && int64(p) >= nblocks {
				t.Fatalf("slot %d: pointer %d accepted on a device of %d blocks", i, p, nblocks)
			}
			if got := binary.LittleEndian.Uint32(buf[4*i:]); got != p {
				t.Fatalf("slot %d: decoded %d, block holds %d", i, p, got)
			}
		}
	})
}
