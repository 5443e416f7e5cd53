package vfs

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/pagecache"
)

// TestMknodAt makes each type in a set-group-ID directory for a FUSE
// caller: the caller owns it, the directory gives its group, only devices
// keep their number, only a regular file gets a page cache, and only it
// opens.
func TestMknodAt(t *testing.T) {
	f := newExtentFS(t, 64, pagecache.Options{}, nil)
	d, err := f.MkdirAt(f.Root(), "d", 0o2777, Owner{Uid: 1, Gid: 100})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := f.MkdirAt(f.Root(), "gone", 0o755, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.RmdirAt(f.Root(), "gone"); err != nil {
		t.Fatal(err)
	}
	o := Owner{Uid: 5, Gid: 6}
	for _, tc := range []struct {
		name     string
		mode     uint32
		rdev     uint64
		wantMode uint32
		wantRdev uint64
		open     syscall.Errno
	}{
		{"fifo", syscall.S_IFIFO | 0o2640, unix.Mkdev(1, 2), syscall.S_IFIFO | 0o2640, 0, syscall.EOPNOTSUPP},
		{"sock", syscall.S_IFSOCK | 0o600, 7, syscall.S_IFSOCK | 0o600, 0, syscall.ENXIO},
		{"chr", syscall.S_IFCHR | 0o666, unix.Mkdev(1, 3), syscall.S_IFCHR | 0o666, unix.Mkdev(1, 3), syscall.ENXIO},
		{"blk", syscall.S_IFBLK | 0o660, unix.Mkdev(8, 16), syscall.S_IFBLK | 0o660, unix.Mkdev(8, 16), syscall.ENXIO},
		{"reg", 0o644, unix.Mkdev(1, 3), syscall.S_IFREG | 0o644, 0, 0},
	} {
		in, err := f.MknodAt(d, tc.name, tc.mode, tc.rdev, o)
		if err != nil {
			t.Fatalf("MknodAt(%s): %v", tc.name, err)
		}
		a := in.Stat()
		if a.Mode != tc.wantMode || a.Rdev != tc.wantRdev || a.Uid != 5 || a.Gid != 100 || a.Size != 0 || a.Nlink != 1 {
			t.Errorf("%s: %+v, want mode %#o rdev %#x owner 5:100", tc.name, a, tc.wantMode, tc.wantRdev)
		}
		if (in.Mapping() != nil) != (tc.open == 0) {
			t.Errorf("%s: page cache %v", tc.name, in.Mapping())
		}
		h, err := f.Open(in, os.O_RDWR)
		if got := toErrno(err); err != nil && got != tc.open || err == nil && tc.open != 0 {
			t.Errorf("open %s: %v, want %v", tc.name, err, tc.open)
		}
		if h != nil {
			mustWrite(t, h, []byte("data"), 0)
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		what string
		dir  *Inode
		name string
		mode uint32
		want syscall.Errno
	}{
		{"existing", d, "fifo", syscall.S_IFIFO, syscall.EEXIST},
		{"in a removed directory", gone, "p", syscall.S_IFIFO, syscall.ENOENT},
		{"in a file", f.mustLookup(t, "d/reg"), "p", syscall.S_IFIFO, syscall.ENOTDIR},
		{"dot", d, ".", syscall.S_IFIFO, syscall.EINVAL},
		{"directory", d, "x", syscall.S_IFDIR, syscall.EPERM},
		{"symlink", d, "x", syscall.S_IFLNK, syscall.EINVAL},
	} {
		if _, err := f.MknodAt(tc.dir, tc.name, tc.mode|0o600, 0, o); err != tc.want {
			t.Errorf("MknodAt %s: %v, want %v", tc.what, err, tc.want)
		}
	}
}

func (f testFS) mustLookup(t *testing.T, path string) *Inode {
	t.Helper()
	in, err := f.Lookup(path, false)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestMknodNoSpecialFiles: a backend that cannot keep special files takes
// regular files only.
func TestMknodNoSpecialFiles(t *testing.T) {
	f := New(Backend{Store: memfs.New(16), Memory: true, NoSpecialFiles: true}, pagecache.Options{}, nil)
	defer f.Close()
	if err := f.Mknod("r", syscall.S_IFREG|0o600, 0); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []uint32{syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK} {
		if err := f.Mknod("s", mode|0o600, 0); err != syscall.EOPNOTSUPP {
			t.Errorf("Mknod(%#o) = %v, want EOPNOTSUPP", mode, err)
		}
	}
	if err := f.Mknod("d", syscall.S_IFDIR|0o700, 0); err != syscall.EPERM {
		t.Errorf("Mknod of a directory = %v, want EPERM (the type is checked first)", err)
	}
}
