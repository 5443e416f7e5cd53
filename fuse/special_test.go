package fuse

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nodeResult is what a special-file case leaves behind: the errno of the
// call and, on success, the node's stat fields that must match Linux's.
type nodeResult struct {
	errno syscall.Errno
	mode  uint32 // type and permission bits
	rdev  uint64
	size  int64
	nlink uint64
	gid   uint32
}

// TestSpecialFiles makes FIFOs, sockets and devices through the mount and
// through a tmpfs with the same calls, and checks that both give the
// same errnos and attributes, and the ones Linux documents.
func TestSpecialFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: devices, a tmpfs to compare with, and a set-group-ID directory of another group")
	}
	m := mountFS(t, Options{})
	ref := mountTmpfs(t, 0, "")
	old := unix.Umask(0)
	t.Cleanup(func() { unix.Umask(old) })

	long := strings.Repeat("n", 256)
	type step = func(dir string) error
	mknod := func(name string, mode uint32, dev uint64) step {
		return func(dir string) error { return unix.Mknod(filepath.Join(dir, name), mode, int(dev)) }
	}
	tests := []struct {
		name  string
		setup step   // run first, must succeed; nil: none
		op    step   // the call under test
		stat  string // the node whose attributes are compared after op succeeds
		want  nodeResult
	}{
		{"mkfifo", nil, func(d string) error { return unix.Mkfifo(d+"/p", 0o640) }, "p",
			nodeResult{mode: unix.S_IFIFO | 0o640, nlink: 1}},
		{"fifo ignores the device number", nil, mknod("p", unix.S_IFIFO|0o600, unix.Mkdev(4, 5)), "p",
			nodeResult{mode: unix.S_IFIFO | 0o600, nlink: 1}},
		{"regular file", nil, mknod("r", unix.S_IFREG|0o604, 0), "r",
			nodeResult{mode: unix.S_IFREG | 0o604, nlink: 1}},
		{"type 0 is a regular file", nil, mknod("r", 0o600, 0), "r",
			nodeResult{mode: unix.S_IFREG | 0o600, nlink: 1}},
		{"character device 1,3", nil, mknod("null", unix.S_IFCHR|0o666, unix.Mkdev(1, 3)), "null",
			nodeResult{mode: unix.S_IFCHR | 0o666, rdev: unix.Mkdev(1, 3), nlink: 1}},
		{"block device, large minor", nil, mknod("blk", unix.S_IFBLK|0o660, unix.Mkdev(259, 70000)), "blk",
			nodeResult{mode: unix.S_IFBLK | 0o660, rdev: unix.Mkdev(259, 70000), nlink: 1}},
		{"socket", nil, mknod("s", unix.S_IFSOCK|0o755, 0), "s",
			nodeResult{mode: unix.S_IFSOCK | 0o755, nlink: 1}},
		{"setuid, setgid and sticky kept", nil, mknod("p", unix.S_IFIFO|0o7777, 0), "p",
			nodeResult{mode: unix.S_IFIFO | 0o7777, nlink: 1}},
		{"existing name", mknod("p", unix.S_IFIFO|0o600, 0), mknod("p", unix.S_IFCHR|0o600, 0), "",
			nodeResult{errno: syscall.EEXIST}},
		{"over a dangling symlink", func(d string) error { return os.Symlink("nowhere", d+"/l") }, mknod("l", unix.S_IFIFO|0o600, 0), "",
			nodeResult{errno: syscall.EEXIST}},
		{"missing parent", nil, mknod("no/p", unix.S_IFIFO|0o600, 0), "", nodeResult{errno: syscall.ENOENT}},
		{"parent is a file", func(d string) error { return os.WriteFile(d+"/f", nil, 0o600) }, mknod("f/p", unix.S_IFIFO|0o600, 0), "",
			nodeResult{errno: syscall.ENOTDIR}},
		{"name too long", nil, mknod(long, unix.S_IFIFO|0o600, 0), "", nodeResult{errno: syscall.ENAMETOOLONG}},
		{"directory type", nil, mknod("d", unix.S_IFDIR|0o700, 0), "", nodeResult{errno: syscall.EPERM}},
		{"symlink type", nil, mknod("l", unix.S_IFLNK|0o700, 0), "", nodeResult{errno: syscall.EINVAL}},
		{"unknown type", nil, mknod("x", 0o170000|0o700, 0), "", nodeResult{errno: syscall.EINVAL}},
		{"group of a set-group-ID directory", func(d string) error {
			// mkdir(2) drops S_ISGID from the mode it is given: chmod sets it.
			return errors.Join(os.Mkdir(d+"/sg", 0o777), os.Chown(d+"/sg", 0, 65534), os.Chmod(d+"/sg", 0o777|os.ModeSetgid))
		}, mknod("sg/p", unix.S_IFIFO|0o600, 0), "sg/p", nodeResult{mode: unix.S_IFIFO | 0o600, nlink: 1, gid: 65534}},
		{"user xattr on a FIFO", mknod("p", unix.S_IFIFO|0o600, 0), func(d string) error {
			return unix.Setxattr(d+"/p", "user.a", []byte("v"), 0)
		}, "", nodeResult{errno: syscall.EPERM}},
		{"trusted xattr on a FIFO", mknod("p", unix.S_IFIFO|0o600, 0), func(d string) error {
			return unix.Setxattr(d+"/p", "trusted.a", []byte("v"), 0)
		}, "p", nodeResult{mode: unix.S_IFIFO | 0o600, nlink: 1}},
		{"chmod, chown, link, rename, unlink", mknod("p", unix.S_IFIFO|0o600, 0), func(d string) error {
			return errors.Join(os.Chmod(d+"/p", 0o644), os.Chown(d+"/p", 65534, 65534),
				os.Link(d+"/p", d+"/q"), os.Rename(d+"/q", d+"/r"), os.Remove(d+"/p"),
				os.Chtimes(d+"/r", time.Unix(1, 0), time.Unix(2, 0)))
		}, "r", nodeResult{mode: unix.S_IFIFO | 0o644, nlink: 1, gid: 65534}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]nodeResult
			for j, root := range []string{m.dir, ref} {
				dir := filepath.Join(root, "case"+string(rune('a'+i)))
				if err := os.Mkdir(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				if tc.setup != nil {
					if err := tc.setup(dir); err != nil {
						t.Fatalf("setup in %s: %v", dir, err)
					}
				}
				got[j].errno = errnoOf(tc.op(dir))
				if got[j].errno != 0 || tc.stat == "" {
					continue
				}
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dir, tc.stat), &st); err != nil {
					t.Fatal(err)
				}
				got[j].mode, got[j].rdev, got[j].size, got[j].nlink, got[j].gid = st.Mode, st.Rdev, st.Size, st.Nlink, st.Gid
			}
			if got[1] != tc.want {
				t.Errorf("tmpfs gives %+v, the test expects %+v: fix the test", got[1], tc.want)
			}
			if got[0] != got[1] {
				t.Errorf("holefs gives %+v, tmpfs %+v", got[0], got[1])
			}
		})
	}
}

// TestFIFOAndSocket passes bytes through a FIFO and a unix socket made in
// the mount: the kernel does their I/O, the server only keeps the node. A
// device keeps its number but does not open: the mount is nodev.
func TestFIFOAndSocket(t *testing.T) {
	m := mountFS(t, Options{})
	fifo := m.path("fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The reader opens first (non-blocking, so that this goroutine can
	// go on to open the writer); then every byte written reaches it, and
	// the writer's close is its EOF.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = io.WriteString(w, "through the pipe\n")
			err = errors.Join(err, w.Close())
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "through the pipe\n" {
		t.Errorf("read from the FIFO %q, %v", got, err)
	}

	sock := m.path("sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var st unix.Stat_t
	if err := unix.Lstat(sock, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		t.Fatalf("bound socket: mode %o, %v", st.Mode, err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, err = io.WriteString(c, "accepted\n")
			err = errors.Join(err, c.Close())
		}
		done <- err
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "accepted\n" {
		t.Errorf("read from the socket %q, %v", line, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() != 0 {
		return // mknod of a device takes CAP_MKNOD
	}
	null := m.path("null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(null, &st); err != nil || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("stat of a 1,3 device: rdev %d,%d, %v", unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
	}
	_, err = unix.Open(null, unix.O_RDWR, 0)
	wantErrno(t, err, syscall.EACCES, "open of a device on a nodev mount")
}
