package holefs_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs"
)

func TestChownChtimesAtime(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	create(t, fsys, "f").Close()
	if err := fsys.Symlink("f", "l"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Chmod("f", 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	fi, _ := fsys.Stat("f")
	before := attr(t, fi)
	if before.Uid != uint32(os.Geteuid()) || before.Gid != uint32(os.Getegid()) {
		t.Errorf("new file owned by %d:%d, want the process's %d:%d", before.Uid, before.Gid, os.Geteuid(), os.Getegid())
	}
	if before.Atime.IsZero() || before.Atime.After(before.Mtime) {
		t.Errorf("new file atime %v, mtime %v: want the creation time", before.Atime, before.Mtime)
	}

	tests := []struct {
		name     string
		do       func() error
		path     string // to lstat after
		uid, gid uint32
	}{
		{"chown both", func() error { return fsys.Chown("f", 1000, 2000) }, "f", 1000, 2000},
		{"chown uid only", func() error { return fsys.Chown("f", 1001, -1) }, "f", 1001, 2000},
		{"chown gid only", func() error { return fsys.Chown("f", -1, 2001) }, "f", 1001, 2001},
		{"chown through symlink", func() error { return fsys.Chown("l", 7, 8) }, "f", 7, 8},
		{"lchown", func() error { return fsys.Lchown("l", 9, 10) }, "l", 9, 10},
	}
	for _, tc := range tests {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fi, err := fsys.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if a := attr(t, fi); a.Uid != tc.uid || a.Gid != tc.gid {
			t.Errorf("%s: %s owned by %d:%d, want %d:%d", tc.name, tc.path, a.Uid, a.Gid, tc.uid, tc.gid)
		}
	}
	// Chown cleared set-user-ID and, the file being group-executable,
	// set-group-ID, as Linux does.
	if fi, _ := fsys.Stat("f"); fi.Mode() != 0o755 {
		t.Errorf("mode after chown %v, want -rwxr-xr-x", fi.Mode())
	}
	wantErrno(t, fsys.Chown("missing", 1, 1), syscall.ENOENT, "Chown(missing)")

	// Chown with both ids -1 is a change of owner all the same: it takes
	// the set-user-ID bit and stamps the change time, as on tmpfs.
	if err := fsys.Chmod("f", 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	fi, _ = fsys.Stat("f")
	ctime := attr(t, fi).Ctime
	if err := fsys.Chown("f", -1, -1); err != nil {
		t.Fatal(err)
	}
	fi, _ = fsys.Stat("f")
	if a := attr(t, fi); fi.Mode() != 0o755 || !a.Ctime.After(ctime) || a.Uid != 7 || a.Gid != 8 {
		t.Errorf("after Chown(-1, -1): mode %v, ctime %v (was %v), owner %d:%d; want -rwxr-xr-x, a later ctime, 7:8",
			fi.Mode(), a.Ctime, ctime, a.Uid, a.Gid)
	}

	atime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	mtime := time.Date(2021, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := fsys.Chtimes("f", atime, time.Time{}); err != nil {
		t.Fatal(err)
	}
	fi, _ = fsys.Stat("f")
	if a := attr(t, fi); !a.Atime.Equal(atime) || !a.Mtime.Equal(before.Mtime) {
		t.Errorf("after Chtimes(atime, zero): atime %v mtime %v, want %v and the old %v", a.Atime, a.Mtime, atime, before.Mtime)
	}
	if err := fsys.Chtimes("f", time.Time{}, mtime); err != nil {
		t.Fatal(err)
	}
	fi, _ = fsys.Stat("f")
	if a := attr(t, fi); !a.Atime.Equal(atime) || !a.Mtime.Equal(mtime) || !a.Ctime.After(mtime) {
		t.Errorf("after Chtimes(zero, mtime): atime %v mtime %v ctime %v", a.Atime, a.Mtime, a.Ctime)
	}
}

func TestXattr(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	f := create(t, fsys, "f")
	defer f.Close()
	if err := fsys.Symlink("f", "l"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	long := "user." + strings.Repeat("n", 250)
	tests := []struct {
		name string
		do   func() error
		want syscall.Errno // 0: success
	}{
		{"set", func() error { return fsys.Setxattr("f", "user.a", []byte("1"), 0) }, 0},
		{"create existing", func() error { return fsys.Setxattr("f", "user.a", []byte("2"), holefs.XattrCreate) }, syscall.EEXIST},
		{"replace missing", func() error { return fsys.Setxattr("f", "user.b", []byte("2"), holefs.XattrReplace) }, syscall.ENODATA},
		{"replace existing", func() error { return fsys.Setxattr("f", "user.a", []byte("22"), holefs.XattrReplace) }, 0},
		{"create new", func() error { return fsys.Setxattr("f", "user.b", nil, holefs.XattrCreate) }, 0},
		{"bad flags", func() error { return fsys.Setxattr("f", "user.c", nil, 4) }, syscall.EINVAL},
		{"empty name", func() error { return fsys.Setxattr("f", "", nil, 0) }, syscall.ERANGE},
		{"name too long", func() error { return fsys.Setxattr("f", long+"x", nil, 0) }, syscall.ERANGE},
		{"longest name", func() error { return fsys.Setxattr("d", long, nil, 0) }, 0},
		{"no namespace", func() error { return fsys.Setxattr("f", "foo", nil, 0) }, syscall.EOPNOTSUPP},
		{"system namespace", func() error { return fsys.Setxattr("f", "system.posix_acl_access", nil, 0) }, syscall.EOPNOTSUPP},
		{"bare prefix", func() error { return fsys.Setxattr("f", "user.", nil, 0) }, syscall.EINVAL},
		{"value too big", func() error { return fsys.Setxattr("f", "user.big", make([]byte, 65537), 0) }, syscall.E2BIG},
		{"largest value", func() error { return fsys.Setxattr("f", "user.big", make([]byte, 65536), 0) }, 0},
		{"user on symlink", func() error { return fsys.Lsetxattr("l", "user.a", nil, 0) }, syscall.EPERM},
		{"trusted on symlink", func() error { return fsys.Lsetxattr("l", "trusted.a", []byte("t"), 0) }, 0},
		{"through symlink", func() error { return fsys.Setxattr("l", "user.viaLink", []byte("v"), 0) }, 0},
		{"remove", func() error { return fsys.Removexattr("f", "user.big") }, 0},
		{"remove missing", func() error { return fsys.Removexattr("f", "user.big") }, syscall.ENODATA},
		{"remove from symlink", func() error { return fsys.Lremovexattr("l", "trusted.a") }, 0},
		{"file set", func() error { return f.Setxattr("security.x", []byte("s"), 0) }, 0},
		{"file remove missing", func() error { return f.Removexattr("security.y") }, syscall.ENODATA},
		{"missing file", func() error { return fsys.Setxattr("nope", "user.a", nil, 0) }, syscall.ENOENT},
	}
	for _, tc := range tests {
		err := tc.do()
		if tc.want == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantErrno(t, err, tc.want, tc.name)
	}

	get := []struct {
		name, path, attr string
		follow           bool
		want             string
		errno            syscall.Errno
	}{
		{"replaced value", "f", "user.a", true, "22", 0},
		{"empty value", "f", "user.b", true, "", 0},
		{"set through symlink", "f", "user.viaLink", true, "v", 0},
		{"missing", "f", "user.zz", true, "", syscall.ENODATA},
		{"user on symlink", "l", "user.a", false, "", syscall.ENODATA},
		{"security", "f", "security.x", true, "s", 0},
	}
	for _, tc := range get {
		getx := fsys.Getxattr
		if !tc.follow {
			getx = fsys.Lgetxattr
		}
		n, err := getx(tc.path, tc.attr, nil)
		if tc.errno != 0 {
			wantErrno(t, err, tc.errno, "size of "+tc.name)
			continue
		}
		if err != nil || n != len(tc.want) {
			t.Errorf("%s: size %d, %v; want %d", tc.name, n, err, len(tc.want))
			continue
		}
		buf := make([]byte, n+1)
		if n, err = getx(tc.path, tc.attr, buf); err != nil || string(buf[:n]) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, buf[:n], err, tc.want)
		}
		if n > 1 {
			_, err = getx(tc.path, tc.attr, buf[:n-1])
			wantErrno(t, err, syscall.ERANGE, tc.name+" into a short buffer")
		}
	}

	const list = "security.x\x00user.a\x00user.b\x00user.viaLink\x00"
	n, err := f.Listxattr(nil)
	if err != nil || n != len(list) {
		t.Fatalf("Listxattr size %d, %v; want %d", n, err, len(list))
	}
	buf := make([]byte, n)
	if n, err := fsys.Listxattr("f", buf); err != nil || string(buf[:n]) != list {
		t.Errorf("Listxattr = %q, %v; want %q", buf[:n], err, list)
	}
	_, err = fsys.Listxattr("f", buf[:n-1])
	wantErrno(t, err, syscall.ERANGE, "Listxattr into a short buffer")
	if n, err := fsys.Llistxattr("l", buf); err != nil || n != 0 {
		t.Errorf("Llistxattr of the symlink = %q, %v; want empty", buf[:n], err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = f.Getxattr("user.a", buf)
	wantErrno(t, err, syscall.EBADF, "Getxattr of a closed file")
}

// TestXattrSpace: an inode's attributes are bounded; the limit is ENOSPC
// and replacing a value counts only the difference.
func TestXattrSpace(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	create(t, fsys, "f").Close()
	big := make([]byte, 65536)
	var err error
	i := 0
	for ; i < 100 && err == nil; i++ {
		err = fsys.Setxattr("f", "user.v"+strings.Repeat("x", i), big, 0)
	}
	wantErrno(t, err, syscall.ENOSPC, "filling an inode's attribute space")
	if i < 10 {
		t.Fatalf("ENOSPC after %d values of 64 KiB", i)
	}
	if err := fsys.Setxattr("f", "user.v", big[:100], holefs.XattrReplace); err != nil {
		t.Fatalf("shrinking a value in a full inode: %v", err)
	}
}
