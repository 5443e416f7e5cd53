package fuse

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pg = 4096

func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i/pg*7+i*13) ^ seed | 1
	}
	return p
}

// openT opens a file in the mount and closes it when the test ends.
func openT(t testing.TB, path string, flags int, perm uint32) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

func pwrite(t testing.TB, fd int, p []byte, off int64) {
	t.Helper()
	if n, err := unix.Pwrite(fd, p, off); err != nil || n != len(p) {
		t.Fatalf("pwrite(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
}

// readAt reads n bytes at off through fd.
func readAt(t testing.TB, fd int, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	got := 0
	for got < n {
		k, err := unix.Pread(fd, buf[got:], off+int64(got))
		if err != nil {
			t.Fatalf("pread at %d: %v", off+int64(got), err)
		}
		if k == 0 {
			break
		}
		got += k
	}
	return buf[:got]
}

func fstat(t testing.TB, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// fstatSettled returns fstat once settled(st) holds, waiting up to a
// second: with the writeback cache, fsync refreshes the kernel's attributes
// by a notification that may land just after fsync returns.
func fstatSettled(t testing.TB, fd int, settled func(unix.Stat_t) bool) unix.Stat_t {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		st := fstat(t, fd)
		if settled(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOpenFlags: O_EXCL, O_TRUNC, O_APPEND (two descriptors appending
// interleave without overwriting) and O_DIRECT, in every cache mode.
func TestOpenFlags(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *mounted) {
		f := m.path("f")
		fd := openT(t, f, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o644)
		pwrite(t, fd, []byte("hello, world"), 0)
		tr := openT(t, f, unix.O_WRONLY|unix.O_TRUNC, 0)
		if st := fstat(t, fd); st.Size != 0 {
			t.Errorf("size after O_TRUNC = %d", st.Size)
		}
		pwrite(t, tr, []byte("xy"), 0)
		a1 := openT(t, f, unix.O_WRONLY|unix.O_APPEND, 0)
		a2 := openT(t, f, unix.O_WRONLY|unix.O_APPEND, 0)
		for i := 0; i < 3; i++ {
			if _, err := unix.Write(a1, []byte("1")); err != nil {
				t.Fatal(err)
			}
			if _, err := unix.Write(a2, []byte("22")); err != nil {
				t.Fatal(err)
			}
		}
		if got := string(readAt(t, fd, 0, 100)); got != "xy122122122" {
			t.Errorf("after appends: %q, want xy122122122", got)
		}

		// O_DIRECT: it sees buffered data and buffered reads see it; the
		// engine serves it from its cache, with no alignment rule.
		dfd := openT(t, m.path("direct"), unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
		buf := alignedBuf(2 * pg)
		copy(buf, pattern(3, 2*pg))
		pwrite(t, dfd, buf, pg)
		plain := openT(t, m.path("direct"), unix.O_RDWR, 0)
		if got := readAt(t, plain, pg, 2*pg); !bytes.Equal(got, buf) {
			t.Error("buffered read does not see the O_DIRECT write")
		}
		pwrite(t, plain, []byte("buffered"), pg)
		rb := alignedBuf(pg)
		if n, err := unix.Pread(dfd, rb, pg); err != nil || n != pg || string(rb[:8]) != "buffered" {
			t.Errorf("O_DIRECT read after a buffered write = %d, %v, %q", n, err, rb[:8])
		}
		pwrite(t, dfd, []byte("unaligned"), 3)
		if got := readAt(t, plain, 3, 9); string(got) != "unaligned" {
			t.Errorf("unaligned O_DIRECT write reads back %q", got)
		}
	})
}

// alignedBuf returns a page-aligned buffer, as O_DIRECT needs.
func alignedBuf(n int) []byte {
	b := make([]byte, n+pg)
	off := pg - int(uintptr(unsafe.Pointer(&b[0]))%pg)
	return b[off : off+n]
}

// TestStatSizesTimes: sizes, block counts and times through stat, and
// statfs.
func TestStatSizesTimes(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *mounted) {
		fd := openT(t, m.path("f"), unix.O_CREAT|unix.O_RDWR, 0o640)
		st := fstat(t, fd)
		if st.Size != 0 || st.Blocks != 0 || st.Mode != unix.S_IFREG|0o640 || st.Nlink != 1 || st.Blksize != pg {
			t.Errorf("new file: size %d blocks %d mode %o nlink %d blksize %d", st.Size, st.Blocks, st.Mode, st.Nlink, st.Blksize)
		}
		created := st.Mtim
		pwrite(t, fd, pattern(1, 3*pg), 10*pg) // sparse: 3 blocks at 40 KiB
		if err := unix.Fsync(fd); err != nil {
			t.Fatal(err)
		}
		st = fstatSettled(t, fd, func(st unix.Stat_t) bool { return st.Blocks != 0 })
		if st.Size != 13*pg || st.Blocks != 3*pg/512 {
			t.Errorf("sparse file: size %d blocks %d, want %d and %d", st.Size, st.Blocks, 13*pg, 3*pg/512)
		}
		// With the writeback cache the kernel stamps writes with its
		// coarse clock (a tick behind), so the order with the engine's
		// creation time is not checked there.
		if m.srv.CacheMode() != CacheWriteback && st.Mtim.Nano() < created.Nano() {
			t.Errorf("mtime went back: %v < %v", st.Mtim, created)
		}
		if err := unix.Ftruncate(fd, pg+1); err != nil {
			t.Fatal(err)
		}
		if st = fstat(t, fd); st.Size != pg+1 || st.Blocks != 0 {
			t.Errorf("after ftruncate: size %d blocks %d", st.Size, st.Blocks)
		}
		if err := unix.Truncate(m.path("f"), 5*pg); err != nil {
			t.Fatal(err)
		}
		if st = fstat(t, fd); st.Size != 5*pg {
			t.Errorf("after truncate: size %d", st.Size)
		}
		if got := readAt(t, fd, 0, 10*pg); len(got) != 5*pg || !bytes.Equal(got, make([]byte, 5*pg)) {
			t.Errorf("truncated file reads %d bytes, not all zero", len(got))
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(m.dir, &sfs); err != nil {
			t.Fatal(err)
		}
		if sfs.Bsize != pg || sfs.Blocks != 256<<20/pg || sfs.Bfree > sfs.Blocks || sfs.Namelen != 255 || sfs.Files == 0 || sfs.Ffree >= sfs.Files {
			t.Errorf("statfs: %+v", sfs)
		}
	})
}

// TestChmodChownUtimens: attribute changes through the mount.
func TestChmodChownUtimens(t *testing.T) {
	m := mountFS(t, Options{})
	f := m.path("f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(f, 0o4751); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	_ = unix.Stat(f, &st)
	if st.Mode != unix.S_IFREG|0o4751 {
		t.Errorf("after chmod: %o", st.Mode)
	}
	if err := unix.Chown(f, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	_ = unix.Stat(f, &st)
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode&unix.S_ISUID != 0 {
		t.Errorf("after chown: %d:%d mode %o (set-user-ID must be cleared)", st.Uid, st.Gid, st.Mode)
	}
	if err := unix.Lchown(m.dir, -1, 42); err != nil {
		t.Fatal(err)
	}
	_ = unix.Stat(m.dir, &st)
	if st.Gid != 42 {
		t.Errorf("root gid %d after chown", st.Gid)
	}
	ts := []unix.Timespec{{Sec: 1000, Nsec: 5}, {Sec: 2000, Nsec: 7}}
	if err := unix.UtimesNano(f, ts); err != nil {
		t.Fatal(err)
	}
	_ = unix.Stat(f, &st)
	if st.Atim != ts[0] || st.Mtim != ts[1] {
		t.Errorf("utimens: atime %v mtime %v, want %v %v", st.Atim, st.Mtim, ts[0], ts[1])
	}
	// UTIME_OMIT leaves a time alone; UTIME_NOW sets the current time.
	omitNow := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, f, omitNow, 0); err != nil {
		t.Fatal(err)
	}
	_ = unix.Stat(f, &st)
	if st.Atim != ts[0] || st.Mtim.Sec < 1e9 {
		t.Errorf("UTIME_OMIT/UTIME_NOW: atime %v (want %v) mtime %v (want now)", st.Atim, ts[0], st.Mtim)
	}
	nowOmit := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}
	mtime := st.Mtim
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, f, nowOmit, 0); err != nil {
		t.Fatal(err)
	}
	_ = unix.Stat(f, &st)
	if st.Atim.Sec < 1e9 || st.Mtim != mtime {
		t.Errorf("UTIME_NOW/UTIME_OMIT: atime %v mtime %v (want %v)", st.Atim, st.Mtim, mtime)
	}
}

// TestXattrs: extended attributes through the mount, with Linux's errnos.
func TestXattrs(t *testing.T) {
	m := mountFS(t, Options{})
	f, l := m.path("f"), m.path("l")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"set", unix.Setxattr(f, "user.a", []byte("value"), 0), 0},
		{"create existing", unix.Setxattr(f, "user.a", []byte("x"), unix.XATTR_CREATE), syscall.EEXIST},
		{"replace missing", unix.Setxattr(f, "user.b", []byte("x"), unix.XATTR_REPLACE), syscall.ENODATA},
		{"replace", unix.Setxattr(f, "user.a", []byte("value2"), unix.XATTR_REPLACE), 0},
		{"create", unix.Setxattr(f, "user.b", nil, unix.XATTR_CREATE), 0},
		{"trusted", unix.Setxattr(f, "trusted.t", []byte("t"), 0), 0},
		{"unknown namespace", unix.Setxattr(f, "bogus.a", nil, 0), syscall.EOPNOTSUPP},
		{"too big", unix.Setxattr(f, "user.big", make([]byte, 65537), 0), syscall.E2BIG},
		{"largest", unix.Setxattr(f, "user.big", make([]byte, 65536), 0), 0},
		{"user on symlink", unix.Lsetxattr(l, "user.a", nil, 0), syscall.EPERM},
		{"remove", unix.Removexattr(f, "user.big"), 0},
		{"remove missing", unix.Removexattr(f, "user.big"), syscall.ENODATA},
		{"get missing", func() error { _, err := unix.Getxattr(f, "user.zz", nil); return err }(), syscall.ENODATA},
		{"get into short buffer", func() error { _, err := unix.Getxattr(f, "user.a", make([]byte, 2)); return err }(), syscall.ERANGE},
		{"list into short buffer", func() error { _, err := unix.Listxattr(f, make([]byte, 3)); return err }(), syscall.ERANGE},
	}
	for _, tc := range tests {
		wantErrno(t, tc.err, tc.want, tc.name)
	}
	buf := make([]byte, 100)
	if n, err := unix.Getxattr(f, "user.a", nil); err != nil || n != 6 {
		t.Errorf("size of user.a = %d, %v", n, err)
	}
	if n, err := unix.Getxattr(l, "user.a", buf); err != nil || string(buf[:n]) != "value2" {
		t.Errorf("get through symlink = %q, %v", buf[:n], err)
	}
	if n, err := unix.Listxattr(f, buf); err != nil || string(buf[:n]) != "trusted.t\x00user.a\x00user.b\x00" {
		t.Errorf("list = %q, %v", buf[:n], err)
	}
	// The library sees the same attributes.
	if n, err := m.fsys.Getxattr("f", "user.a", buf); err != nil || string(buf[:n]) != "value2" {
		t.Errorf("library get = %q, %v", buf[:n], err)
	}
}
