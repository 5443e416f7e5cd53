package fuse

import (
	"bytes"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFallocate runs every fallocate mode the kernel forwards to a FUSE
// server, and checks that it refuses collapse and insert itself.
func TestFallocate(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *mounted) {
		fd := openT(t, m.path("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
		data := pattern(9, 8*pg)
		pwrite(t, fd, data, 0)
		want := bytes.Clone(data)
		zero := func(off, n int) { clear(want[off : off+n]) }

		steps := []struct {
			name      string
			mode      uint32
			off, n    int64
			errno     syscall.Errno
			size      int64
			apply     func()
			minBlocks int64 // st_blocks at least (512-byte units); -1: no check
		}{
			{"punch whole pages", unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, pg, 2 * pg, 0, 8 * pg, func() { zero(pg, 2*pg) }, -1},
			{"punch partial", unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 4*pg + 100, 200, 0, 8 * pg, func() { zero(4*pg+100, 200) }, -1},
			{"punch without keep size", unix.FALLOC_FL_PUNCH_HOLE, 0, pg, syscall.EOPNOTSUPP, 8 * pg, nil, -1},
			{"zero range", unix.FALLOC_FL_ZERO_RANGE, 5*pg + 10, pg, 0, 8 * pg, func() { zero(5*pg+10, pg) }, -1},
			{"zero range keep size past EOF", unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE, 7 * pg, 4 * pg, 0, 8 * pg, func() { zero(7*pg, pg) }, -1},
			{"zero range extending", unix.FALLOC_FL_ZERO_RANGE, 8 * pg, pg, 0, 9 * pg, func() { want = append(want, make([]byte, pg)...) }, -1},
			{"allocate keep size", unix.FALLOC_FL_KEEP_SIZE, 9 * pg, 3 * pg, 0, 9 * pg, nil, 9 * pg / 512},
			{"allocate extending", 0, 9 * pg, 4 * pg, 0, 13 * pg, func() { want = append(want, make([]byte, 4*pg)...) }, 10 * pg / 512},
			{"collapse", unix.FALLOC_FL_COLLAPSE_RANGE, 0, pg, syscall.EOPNOTSUPP, 13 * pg, nil, -1},
			{"insert", unix.FALLOC_FL_INSERT_RANGE, 0, pg, syscall.EOPNOTSUPP, 13 * pg, nil, -1},
			{"zero length", 0, 0, 0, syscall.EINVAL, 13 * pg, nil, -1},
		}
		for _, s := range steps {
			err := unix.Fallocate(fd, s.mode, s.off, s.n)
			wantErrno(t, err, s.errno, s.name)
			if err == nil && s.apply != nil {
				s.apply()
			}
			st := fstat(t, fd)
			if st.Size != s.size {
				t.Errorf("%s: size %d, want %d", s.name, st.Size, s.size)
			}
			if got := readAt(t, fd, 0, len(want)+pg); !bytes.Equal(got, want) {
				t.Errorf("%s: content differs (%d bytes, want %d)", s.name, len(got), len(want))
			}
			if s.minBlocks >= 0 {
				st = fstatSettled(t, fd, func(st unix.Stat_t) bool { return st.Blocks >= s.minBlocks })
				if st.Blocks < s.minBlocks {
					t.Errorf("%s: %d blocks, want at least %d", s.name, st.Blocks, s.minBlocks)
				}
			}
		}
	})
}

// TestSeekDataHole: SEEK_DATA and SEEK_HOLE through FUSE_LSEEK.
func TestSeekDataHole(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *mounted) {
		fd := openT(t, m.path("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
		// Data at [2, 4) and [8, 9) pages, a hole at the end up to 12.
		pwrite(t, fd, pattern(1, 2*pg), 2*pg)
		pwrite(t, fd, pattern(2, pg), 8*pg)
		if err := unix.Ftruncate(fd, 12*pg); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fsync(fd); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			off    int64
			whence int
			want   int64
			errno  syscall.Errno
		}{
			{0, unix.SEEK_DATA, 2 * pg, 0},
			{0, unix.SEEK_HOLE, 0, 0},
			{2*pg + 5, unix.SEEK_DATA, 2*pg + 5, 0},
			{2 * pg, unix.SEEK_HOLE, 4 * pg, 0},
			{4 * pg, unix.SEEK_DATA, 8 * pg, 0},
			{8 * pg, unix.SEEK_HOLE, 9 * pg, 0},
			{9 * pg, unix.SEEK_DATA, 0, syscall.ENXIO},
			{9 * pg, unix.SEEK_HOLE, 9 * pg, 0},
			{12 * pg, unix.SEEK_HOLE, 0, syscall.ENXIO},
			{12 * pg, unix.SEEK_DATA, 0, syscall.ENXIO},
		}
		for _, tc := range tests {
			got, err := unix.Seek(fd, tc.off, tc.whence)
			wantErrno(t, err, tc.errno, "lseek")
			if tc.errno == 0 && got != tc.want {
				t.Errorf("lseek(%d, %d) = %d, want %d", tc.off, tc.whence, got, tc.want)
			}
		}
	})
}

// TestCopyFileRangeFsync: copy_file_range copies through the server
// (FUSE_COPY_FILE_RANGE), the copy is seen through another descriptor
// whose pages the kernel cached before; fsync and fdatasync succeed.
func TestCopyFileRangeFsync(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *mounted) {
		src := openT(t, m.path("src"), unix.O_CREAT|unix.O_RDWR, 0o644)
		dst := openT(t, m.path("dst"), unix.O_CREAT|unix.O_RDWR, 0o644)
		data := pattern(4, 5*pg+123)
		pwrite(t, src, data, 0)
		pwrite(t, dst, make([]byte, 8*pg), 0)
		_ = readAt(t, dst, 0, 8*pg) // cache the old zeros
		inOff, outOff := int64(100), int64(pg+7)
		n, err := unix.CopyFileRange(src, &inOff, dst, &outOff, 1<<20, 0)
		if err != nil || n != len(data)-100 {
			t.Fatalf("copy_file_range = %d, %v; want %d", n, err, len(data)-100)
		}
		if got := readAt(t, dst, pg+7, n); !bytes.Equal(got, data[100:]) {
			t.Error("copied range differs")
		}
		for _, sync := range []func(int) error{unix.Fsync, unix.Fdatasync} {
			if err := sync(dst); err != nil {
				t.Errorf("sync: %v", err)
			}
		}
		dfd := openT(t, m.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err := unix.Fsync(dfd); err != nil {
			t.Errorf("fsync of a directory: %v", err)
		}
		ro := openT(t, m.path("src"), unix.O_RDONLY, 0)
		inOff, outOff = 0, 0
		_, err = unix.CopyFileRange(src, &inOff, ro, &outOff, 10, 0)
		wantErrno(t, err, syscall.EBADF, "copy_file_range into a read-only descriptor")
		inOff, outOff = 0, 10
		_, err = unix.CopyFileRange(src, &inOff, src, &outOff, 100, 0)
		wantErrno(t, err, syscall.EINVAL, "copy_file_range over an overlapping range")
	})
}
