package meta

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"
)

func TestRecordsRoundTrip(t *testing.T) {
	for _, in := range []Inode{
		{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2},
		{Ino: math.MaxUint64, Mode: syscall.S_IFREG | 0o4755, UID: 1, GID: 2, Nlink: 3, Size: MaxFileSize, Atime: -5, Mtime: 6, Ctime: 7},
		{Ino: 9, Mode: syscall.S_IFLNK | 0o777, Nlink: 1, Target: strings.Repeat("t", MaxTargetLen)},
		{Ino: 10, Mode: syscall.S_IFIFO | 0o600, Nlink: 1},
		{Ino: 11, Mode: syscall.S_IFSOCK | 0o755, Nlink: 2},
		{Ino: 12, Mode: syscall.S_IFCHR | 0o666, Nlink: 1, Rdev: 1<<8 | 3},
		{Ino: 13, Mode: syscall.S_IFBLK | 0o660, Nlink: 1, Rdev: math.MaxUint64},
		{Ino: 14, Mode: syscall.S_IFCHR | 0o600, Nlink: 1}, // 0,0: an overlayfs whiteout
		{Ino: 15, Mode: syscall.S_IFREG | 0o600, Nlink: 1, Size: 5 << 20, IBlock: [NRoots]uint32{0: 1, 11: 2, 12: 3, 13: 4, 14: math.MaxUint32}},
	} {
		k, v := encodeInode(in)
		// Only a device number makes a version 2 record and only block
		// pointers a version 3 one: the others stay what older holefs
		// wrote.
		want := byte(1) + byte(min(in.Rdev, 1))
		if in.IBlock != [NRoots]uint32{} {
			want = 3
		}
		if v[0] != want {
			t.Errorf("inode %+v: record version %d, want %d", in, v[0], want)
		}
		got, err := DecodeInode(k, v)
		if err != nil || got != in {
			t.Errorf("inode %+v decodes as %+v, %v", in, got, err)
		}
	}
	for _, d := range []Dirent{{1, "a", 2}, {math.MaxUint64, strings.Repeat("n", MaxNameLen), math.MaxUint64}} {
		got, err := DecodeDirent(encodeDirent(d.Dir, d.Name, d.Ino))
		if err != nil || got != d {
			t.Errorf("dirent %+v decodes as %+v, %v", d, got, err)
		}
	}
	for _, x := range []Extent{{0, 1, 1, false}, {maxPages - 10, 10, 90, true}} {
		k, v := encodeExtent(7, x)
		ino, got, err := DecodeExtent(k, v, 100)
		if err != nil || ino != 7 || got != x {
			t.Errorf("extent %+v decodes as %d %+v, %v", x, ino, got, err)
		}
	}
	k := xattrKey(3, "user.a")
	if x, err := DecodeXattr(k, sealed(k, []byte("v"))); err != nil || x.Ino != 3 || x.Name != "user.a" || string(x.Value) != "v" {
		t.Errorf("xattr decodes as %+v, %v", x, err)
	}
	st := state{Seq: 1, Owned: 2, Inodes: 3}
	if got, err := decodeState(encodeState(st)); err != nil || got != st {
		t.Errorf("state %+v decodes as %+v, %v", st, got, err)
	}
	sb, err := NewSuperblock(1000, IncompatDataChecksums, 42)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeSuperblock(sb.Encode()); err != nil || got != sb {
		t.Errorf("superblock %+v decodes as %+v, %v", sb, got, err)
	}
}

// TestDecodeErrors feeds each decoder one kind of damage per case: every
// error wraps EUCLEAN (EOPNOTSUPP for what a newer holefs may write) and
// names the record.
func TestDecodeErrors(t *testing.T) {
	ik, iv := encodeInode(Inode{Ino: 3, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: 10})
	// inode returns a damaged copy of the inode record, resealed.
	inode := func(edit func(b []byte) []byte) error {
		_, err := DecodeInode(ik, sealed(ik, edit(bytes.Clone(iv[:len(iv)-4]))))
		return err
	}
	setMode := func(mode uint32) func([]byte) []byte {
		return func(b []byte) []byte { be.PutUint32(b[1:], mode); return b }
	}
	setSize := func(size int64) func([]byte) []byte {
		return func(b []byte) []byte { be.PutUint64(b[17:], uint64(size)); return b }
	}
	withTarget := func(mode uint32, n int) func([]byte) []byte {
		return func(b []byte) []byte {
			be.PutUint32(b[1:], mode)
			be.PutUint16(b[49:], uint16(n))
			return append(b, strings.Repeat("t", n)...)
		}
	}
	// v3 turns the record into a version 3 one with the given pointers.
	v3 := func(mode uint32, ptrs [NRoots]uint32) func([]byte) []byte {
		return func(b []byte) []byte {
			b[0] = 3
			be.PutUint32(b[1:], mode)
			for _, p := range ptrs {
				b = be.AppendUint32(b, p)
			}
			return b
		}
	}
	dk, dv := encodeDirent(2, "name", 3)
	dirent := func(key, body []byte) error {
		_, err := DecodeDirent(key, sealed(key, body))
		return err
	}
	xk, xv := encodeExtent(3, Extent{Page: 4, Count: 2, Block: 10})
	extent := func(edit func(b []byte) []byte) error {
		_, _, err := DecodeExtent(xk, sealed(xk, edit(bytes.Clone(xv[:len(xv)-4]))), 100)
		return err
	}
	setExtent := func(count, block int64) func([]byte) []byte {
		return func(b []byte) []byte {
			be.PutUint64(b, uint64(count))
			be.PutUint64(b[8:], uint64(block))
			return b
		}
	}
	extentAt := func(page int64) error {
		k := extentKey(3, page)
		_, _, err := DecodeExtent(k, sealed(k, xv[:len(xv)-4]), 100)
		return err
	}
	stateOf := func(b []byte) error { _, err := decodeState(sealed([]byte(keyState), b)); return err }
	sb, err := NewSuperblock(1000, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	superblock := func(edit func(sb *Superblock)) error {
		s := sb
		edit(&s)
		_, err := DecodeSuperblock(s.Encode())
		return err
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	tests := []struct {
		name  string
		err   error
		want  string
		errno syscall.Errno // default EUCLEAN
	}{
		{"inode key length", func() error { _, err := DecodeInode(ik[:7], iv); return err }(), "inode key 00000000000000: 7 bytes, want 8", 0},
		{"inode 0", func() error { k := inoKey(0); _, err := DecodeInode(k, sealed(k, iv[:len(iv)-4])); return err }(), "inode 0: inode number 0 is invalid", 0},
		{"inode checksum", func() error { _, err := DecodeInode(ik, flip(iv, 5)); return err }(), "inode 3: checksum", 0},
		{"inode without checksum", func() error { _, err := DecodeInode(ik, iv[:3]); return err }(), "inode 3: record of 3 bytes, too short for its checksum", 0},
		{"inode short", inode(func(b []byte) []byte { return b[:40] }), "inode 3: record of 40 bytes, want at least 51", 0},
		{"inode version", inode(func(b []byte) []byte { b[0] = 4; return b }), "inode 3: record version 4, want 1, 2 or 3", 0},
		{"inode version 3 short", inode(func(b []byte) []byte { b[0] = 3; return b }), "inode 3: symlink target of 0 bytes in a version 3 record of 51", 0},
		{"inode version 3 no pointer", inode(v3(syscall.S_IFREG|0o644, [NRoots]uint32{})), "inode 3: version 3 record with no block pointer", 0},
		{"inode version 3 directory", inode(v3(syscall.S_IFDIR|0o755, [NRoots]uint32{14: 5})), "inode 3: a directory with block pointers", 0},
		{"version 2 without a device number", inode(func(b []byte) []byte { b[0] = 2; return b }), "inode 3: symlink target of 0 bytes in a version 2 record of 51", 0},
		{"version 2 with device number 0", inode(func(b []byte) []byte { b[0] = 2; return be.AppendUint64(b, 0) }), "inode 3: version 2 record with device number 0", 0},
		{"version 1 with a device number", inode(func(b []byte) []byte { return be.AppendUint64(b, 259) }), "inode 3: symlink target of 0 bytes in a version 1 record of 59", 0},
		{"inode target length", inode(func(b []byte) []byte { be.PutUint16(b[49:], 5); return b }), "inode 3: symlink target of 5 bytes in a version 1 record of 51", 0},
		{"file with a target", inode(withTarget(syscall.S_IFREG|0o644, 3)), "inode 3: a regular file with a symlink target", 0},
		{"directory with a target", inode(withTarget(syscall.S_IFDIR|0o755, 3)), "inode 3: a directory with a symlink target", 0},
		{"symlink without target", inode(setMode(syscall.S_IFLNK | 0o777)), "inode 3: symlink target of 0 bytes", 0},
		{"symlink target too long", inode(withTarget(syscall.S_IFLNK|0o777, MaxTargetLen+1)), "inode 3: symlink target of 4096 bytes", 0},
		{"FIFO with a target", inode(withTarget(syscall.S_IFIFO|0o644, 3)), "inode 3: a FIFO with a symlink target", 0},
		{"device with a target", inode(withTarget(syscall.S_IFBLK|0o644, 3)), "inode 3: a block device with a symlink target", 0},
		{"unknown file type", inode(setMode(0o170000 | 0o644)), "inode 3: unknown file type 0170000", 0},
		{"unknown mode bits", inode(setMode(syscall.S_IFREG | 0o644 | 1<<20)), "inode 3: mode 04100644 has unknown bits", 0},
		{"negative size", inode(setSize(-1)), "inode 3: size -1 out of range", 0},
		{"size too large", inode(setSize(MaxFileSize + 1)), "inode 3: size 4398046511105 out of range", 0},

		{"dirent key length", dirent(dk[:8], dv[:8]), "dirent key 0000000000000002: 8 bytes, want a directory and a name", 0},
		{"dirent of directory 0", dirent(direntKey(0, "x"), dv[:8]), `dirent 0/"x": directory inode 0 is invalid`, 0},
		{"dirent named .", dirent(direntKey(2, "."), dv[:8]), `dirent 2/".": invalid name "."`, 0},
		{"dirent named ..", dirent(direntKey(2, ".."), dv[:8]), `dirent 2/"..": invalid name ".."`, 0},
		{"dirent name with /", dirent(direntKey(2, "a/b"), dv[:8]), `dirent 2/"a/b": invalid name`, 0},
		{"dirent name with NUL", dirent(direntKey(2, "a\x00"), dv[:8]), `dirent 2/"a\x00": invalid name`, 0},
		{"dirent name too long", dirent(direntKey(2, strings.Repeat("n", MaxNameLen+1)), dv[:8]), `invalid name "nnn`, 0},
		{"dirent checksum", func() error { _, err := DecodeDirent(dk, flip(dv, 0)); return err }(), `dirent 2/"name": checksum`, 0},
		{"dirent value length", dirent(dk, dv[:7]), `dirent 2/"name": value of 7 bytes, want 8`, 0},
		{"dirent naming inode 0", dirent(dk, make([]byte, 8)), `dirent 2/"name": names inode 0`, 0},

		{"extent key length", func() error { _, _, err := DecodeExtent(xk[:15], xv, 100); return err }(), "extent key 000000000000000300000000000000: 15 bytes, want 16", 0},
		{"extent of inode 0", func() error {
			k := extentKey(0, 4)
			_, _, err := DecodeExtent(k, sealed(k, xv[:len(xv)-4]), 100)
			return err
		}(), "inode 0 extent at page 4: inode number 0 is invalid", 0},
		{"extent checksum", func() error { _, _, err := DecodeExtent(xk, flip(xv, 3), 100); return err }(), "inode 3 extent at page 4: checksum", 0},
		{"extent value length", extent(func(b []byte) []byte { return b[:16] }), "inode 3 extent at page 4: value of 16 bytes, want 17", 0},
		{"extent flags", extent(func(b []byte) []byte { b[16] = 2; return b }), "inode 3 extent at page 4: unknown flags 0x2", 0},
		{"extent of no pages", extent(setExtent(0, 10)), "inode 3 extent at page 4: pages [4, +0) outside a file", 0},
		{"extent of negative pages", extent(setExtent(-1, 10)), "inode 3 extent at page 4: pages [4, +-1) outside a file", 0},
		{"extent at a negative page", extentAt(-1), "inode 3 extent at page -1: pages [-1, +2) outside a file", 0},
		{"extent past the largest file", extentAt(maxPages - 1), "outside a file", 0},
		{"extent at block 0", extent(setExtent(2, 0)), "inode 3 extent at page 4: blocks [0, +2) outside the device's data blocks [1, 100)", 0},
		{"extent past the device", extent(setExtent(2, 99)), "blocks [99, +2) outside the device's data blocks [1, 100)", 0},
		{"extent overflowing", extent(setExtent(maxPages-10, math.MaxInt64-5)), "outside the device", 0},

		{"xattr key length", func() error { _, err := DecodeXattr([]byte{0, 0, 0, 0, 0, 0, 0, 3}, nil); return err }(), "xattr key 0000000000000003: 8 bytes, want an inode and a name", 0},
		{"xattr of inode 0", func() error { k := xattrKey(0, "a"); _, err := DecodeXattr(k, sealed(k, nil)); return err }(), `inode 0 xattr "a": inode number 0 is invalid`, 0},
		{"xattr checksum", func() error {
			k := xattrKey(3, "a")
			_, err := DecodeXattr(k, flip(sealed(k, []byte("v")), 0))
			return err
		}(), `inode 3 xattr "a": checksum`, 0},

		{"state checksum", func() error { _, err := decodeState(flip(encodeState(state{}), 2)); return err }(), "state record: checksum", 0},
		{"state length", stateOf(make([]byte, 16)), "state record: 16 bytes, want 24", 0},
		{"state negative", stateOf(encodeState(state{Owned: -1})[:24]), "state record: negative counts (-1 blocks, 0 inodes)", 0},

		{"superblock short", func() error { _, err := DecodeSuperblock(sb.Encode()[:70]); return err }(), "superblock: 70 bytes, want at least 76", 0},
		{"superblock magic", func() error { _, err := DecodeSuperblock(flip(sb.Encode(), 0)); return err }(), "superblock: bad magic 696f6c6566731ef5: not a holefs image", 0},
		{"superblock checksum", func() error { _, err := DecodeSuperblock(flip(sb.Encode(), 20)); return err }(), "superblock: checksum", 0},
		{"superblock version", superblock(func(s *Superblock) { s.Version = 2 }), "superblock: format version 2, this holefs reads version 1", syscall.EOPNOTSUPP},
		{"superblock block size", superblock(func(s *Superblock) { s.BlockSize = 512 }), "superblock: block size 512, want 4096", 0},
		{"superblock too small", superblock(func(s *Superblock) { s.Blocks = 1 }), "superblock: device of 1 blocks out of range [2, 1099511627776]", 0},
		{"superblock too large", superblock(func(s *Superblock) { s.Blocks = maxBlocks + 1 }), "superblock: device of 1099511627777 blocks out of range", 0},
		{"superblock negative size", superblock(func(s *Superblock) { s.Blocks = -1 }), "superblock: device of -1 blocks out of range", 0},
		{"unknown incompat feature", superblock(func(s *Superblock) { s.Incompat = 1 << 9 }), "superblock: image uses incompatible features 0x200 this holefs does not know; use a newer holefs", syscall.EOPNOTSUPP},
		{"unknown ro_compat feature", superblock(func(s *Superblock) { s.ROCompat = 1 }), "superblock: image uses features 0x1 this holefs cannot write; use a newer holefs", syscall.EOPNOTSUPP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errno := cmp.Or(tt.errno, syscall.EUCLEAN)
			if !errors.Is(tt.err, errno) {
				t.Fatalf("error %v, want %v", tt.err, errno)
			}
			if !strings.Contains(tt.err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", tt.err, tt.want)
			}
		})
	}
}

// TestLoadBackendRecords: block pointers belong to ext2 images and extents
// to the others; Load reports a record of the wrong kind as damaged.
func TestLoadBackendRecords(t *testing.T) {
	tests := []struct {
		name     string
		incompat uint64
		put      func(tx *bbolt.Tx)
		bucket   string
		want     string
	}{
		{"pointers on an extent image", 0, func(tx *bbolt.Tx) {
			putInode(tx, Inode{Ino: 3, Mode: syscall.S_IFREG | 0o644, Nlink: 1, IBlock: [NRoots]uint32{0: 9}})
		}, bucketInodes, "inode 3: block pointers on an image without the ext2 feature"},
		{"extent on an ext2 image", IncompatExt2, func(tx *bbolt.Tx) {
			putInode(tx, Inode{Ino: 3, Mode: syscall.S_IFREG | 0o644, Nlink: 1})
			putExtent(tx, 3, Extent{Page: 0, Count: 1, Block: 9})
		}, bucketExtents, "inode 3 extent at page 0: an ext2 image has no extents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "img")
			if _, err := Create(dir, CreateOptions{Blocks: testBlocks, Incompat: tt.incompat}); err != nil {
				t.Fatal(err)
			}
			update(t, dir, func(tx *bbolt.Tx) error { tt.put(tx); return nil })
			img := openImage(t, dir, true)
			var probs []Problem
			if _, err := img.Load(func(p Problem) { probs = append(probs, p) }); err != nil {
				t.Fatal(err)
			}
			if len(probs) != 1 || probs[0].Bucket != tt.bucket || !strings.Contains(probs[0].Err.Error(), tt.want) ||
				!errors.Is(probs[0].Err, syscall.EUCLEAN) {
				t.Fatalf("problems %v, want one in %s: %q (EUCLEAN)", probs, tt.bucket, tt.want)
			}
		})
	}
}
