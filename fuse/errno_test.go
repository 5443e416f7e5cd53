package fuse

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nsFixture is the tree every row of nsErrnoCases starts from, made in a
// fresh directory per row.
func nsFixture(base string) error {
	for _, step := range []func() error{
		func() error { return os.WriteFile(base+"/f", []byte("data"), 0o644) },
		func() error { return os.Mkdir(base+"/d", 0o755) },
		func() error { return os.WriteFile(base+"/d/g", []byte("g"), 0o644) },
		func() error { return os.Mkdir(base+"/d/sub", 0o755) },
		func() error { return os.Mkdir(base+"/e", 0o755) },
		func() error { return os.Symlink("f", base+"/l") },
		func() error { return os.Symlink("d", base+"/dl") },
		func() error { return os.Symlink("nowhere", base+"/dangling") },
		func() error { return os.Symlink("loop", base+"/loop") },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// symlinkChain makes s0 -> s1 -> ... -> s40 -> f in dir: resolving s1
// follows 40 links (Linux's limit), s0 one too many.
func symlinkChain(dir string) error {
	if err := os.WriteFile(dir+"/f", []byte("end"), 0o644); err != nil {
		return err
	}
	for i := range 41 {
		target := "s" + strconv.Itoa(i+1)
		if i == 40 {
			target = "f"
		}
		if err := os.Symlink(target, dir+"/s"+strconv.Itoa(i)); err != nil {
			return err
		}
	}
	return nil
}

// nsEnv is what a row's operation works on: p names a path in the row's
// fresh fixture, root is the filesystem's root (the mount point), chain
// holds symlinkChain, and outside is a directory of another filesystem.
type nsEnv struct {
	base, root, chain, outside string
}

func (e nsEnv) p(name string) string { return e.base + "/" + name }

func openErr(path string, flags int) error {
	fd, err := unix.Open(path, flags, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// nsErrnoCases are namespace system calls and the errno Linux gives for
// them on tmpfs (0: success), each from a fresh nsFixture.
var nsErrnoCases = []struct {
	name string
	want syscall.Errno
	op   func(e nsEnv) error
}{
	// ENAMETOOLONG: a name of 256 bytes, a path of PATH_MAX.
	{"open name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return openErr(e.p(strings.Repeat("n", 256)), unix.O_RDONLY) }},
	{"create name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return openErr(e.p(strings.Repeat("n", 256)), unix.O_CREAT|unix.O_WRONLY) }},
	{"create name 255", 0, func(e nsEnv) error { return openErr(e.p(strings.Repeat("n", 255)), unix.O_CREAT|unix.O_WRONLY) }},
	{"mkdir name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return unix.Mkdir(e.p(strings.Repeat("n", 256)), 0o755) }},
	{"rename to name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p(strings.Repeat("n", 256))) }},
	{"link to name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return unix.Link(e.p("f"), e.p(strings.Repeat("n", 256))) }},
	{"symlink name 256", syscall.ENAMETOOLONG, func(e nsEnv) error { return unix.Symlink("f", e.p(strings.Repeat("n", 256))) }},
	{"stat path of PATH_MAX", syscall.ENAMETOOLONG, func(e nsEnv) error {
		var st unix.Stat_t
		return unix.Stat(e.p(strings.Repeat("d/../", 820)+"f"), &st)
	}},
	// ELOOP.
	{"stat symlink loop", syscall.ELOOP, func(e nsEnv) error { var st unix.Stat_t; return unix.Stat(e.p("loop"), &st) }},
	{"open through symlink loop", syscall.ELOOP, func(e nsEnv) error { return openErr(e.p("loop/x"), unix.O_RDONLY) }},
	{"create through symlink loop", syscall.ELOOP, func(e nsEnv) error { return openErr(e.p("loop"), unix.O_CREAT|unix.O_WRONLY) }},
	{"open 40 links", 0, func(e nsEnv) error { return openErr(e.chain+"/s1", unix.O_RDONLY) }},
	{"open 41 links", syscall.ELOOP, func(e nsEnv) error { return openErr(e.chain+"/s0", unix.O_RDONLY) }},
	{"O_NOFOLLOW symlink", syscall.ELOOP, func(e nsEnv) error { return openErr(e.p("l"), unix.O_RDONLY|unix.O_NOFOLLOW) }},
	{"O_NOFOLLOW|O_CREAT symlink", syscall.ELOOP, func(e nsEnv) error { return openErr(e.p("l"), unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW) }},
	{"O_NOFOLLOW in a middle component", 0, func(e nsEnv) error { return openErr(e.p("dl/g"), unix.O_RDONLY|unix.O_NOFOLLOW) }},
	{"O_CREAT|O_EXCL dangling", syscall.EEXIST, func(e nsEnv) error { return openErr(e.p("dangling"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY) }},
	{"O_CREAT dangling creates the target", 0, func(e nsEnv) error {
		if err := openErr(e.p("dangling"), unix.O_CREAT|unix.O_WRONLY); err != nil {
			return err
		}
		var st unix.Stat_t
		return unix.Lstat(e.p("nowhere"), &st)
	}},
	{"O_DIRECTORY on a file", syscall.ENOTDIR, func(e nsEnv) error { return openErr(e.p("f"), unix.O_RDONLY|unix.O_DIRECTORY) }},
	// EISDIR.
	{"open dir O_WRONLY", syscall.EISDIR, func(e nsEnv) error { return openErr(e.p("d"), unix.O_WRONLY) }},
	{"open dir O_RDWR", syscall.EISDIR, func(e nsEnv) error { return openErr(e.p("d"), unix.O_RDWR) }},
	{"open dir O_CREAT", syscall.EISDIR, func(e nsEnv) error { return openErr(e.p("d"), unix.O_CREAT|unix.O_WRONLY) }},
	{"create with trailing slash", syscall.EISDIR, func(e nsEnv) error { return openErr(e.p("new/"), unix.O_CREAT|unix.O_WRONLY) }},
	{"unlink dir", syscall.EISDIR, func(e nsEnv) error { return unix.Unlink(e.p("d")) }},
	{"unlink .", syscall.EISDIR, func(e nsEnv) error { return unix.Unlink(e.p("d/.")) }},
	{"rename file over dir", syscall.EISDIR, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p("e")) }},
	// ENOTDIR.
	{"file as path component", syscall.ENOTDIR, func(e nsEnv) error { return openErr(e.p("f/x"), unix.O_RDONLY) }},
	{"stat file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { var st unix.Stat_t; return unix.Stat(e.p("f/"), &st) }},
	{"open file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return openErr(e.p("f/"), unix.O_RDONLY) }},
	{"unlink file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Unlink(e.p("f/")) }},
	{"unlink symlink to dir with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Unlink(e.p("dl/")) }},
	{"unlink missing with trailing slash", syscall.ENOENT, func(e nsEnv) error { return unix.Unlink(e.p("nope/")) }},
	{"rmdir file", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rmdir(e.p("f")) }},
	{"rmdir file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rmdir(e.p("f/")) }},
	{"rmdir symlink to dir", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rmdir(e.p("dl")) }},
	{"mkdir in a file", syscall.ENOTDIR, func(e nsEnv) error { return unix.Mkdir(e.p("f/x"), 0o755) }},
	{"mkdir with trailing slash", 0, func(e nsEnv) error { return unix.Mkdir(e.p("new/"), 0o755) }},
	{"rename dir over file", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rename(e.p("d"), e.p("f")) }},
	{"rename file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rename(e.p("f/"), e.p("x")) }},
	{"rename file to trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p("x/")) }},
	{"rename file over dir with trailing slash", syscall.ENOTDIR, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p("e/")) }},
	{"rename dir to trailing slash", 0, func(e nsEnv) error { return unix.Rename(e.p("e"), e.p("x/")) }},
	{"exchange file with trailing slash", syscall.ENOTDIR, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("e"), unix.AT_FDCWD, e.p("f/"), unix.RENAME_EXCHANGE)
	}},
	// ENOENT and EEXIST for new names with a trailing slash.
	{"link to trailing slash", syscall.ENOENT, func(e nsEnv) error { return unix.Link(e.p("f"), e.p("x/")) }},
	{"symlink at trailing slash", syscall.ENOENT, func(e nsEnv) error { return unix.Symlink("f", e.p("x/")) }},
	{"symlink at existing with trailing slash", syscall.EEXIST, func(e nsEnv) error { return unix.Symlink("f", e.p("d/")) }},
	{"link over existing", syscall.EEXIST, func(e nsEnv) error { return unix.Link(e.p("f"), e.p("l")) }},
	{"link to .", syscall.EEXIST, func(e nsEnv) error { return unix.Link(e.p("f"), e.p("d/.")) }},
	{"mkdir ..", syscall.EEXIST, func(e nsEnv) error { return unix.Mkdir(e.p("d/.."), 0o755) }},
	// ENOTEMPTY, EEXIST and EINVAL of directory renames.
	{"rename dir over empty dir", 0, func(e nsEnv) error { return unix.Rename(e.p("d"), e.p("e")) }},
	{"rename dir over non-empty dir", syscall.ENOTEMPTY, func(e nsEnv) error { return unix.Rename(e.p("e"), e.p("d")) }},
	{"rename noreplace over non-empty dir", syscall.EEXIST, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("e"), unix.AT_FDCWD, e.p("d"), unix.RENAME_NOREPLACE)
	}},
	{"rename dir onto its parent", syscall.ENOTEMPTY, func(e nsEnv) error { return unix.Rename(e.p("d/sub"), e.p("d")) }},
	{"rename file onto its parent dir", syscall.ENOTEMPTY, func(e nsEnv) error { return unix.Rename(e.p("d/g"), e.p("d")) }},
	{"rename dir into itself", syscall.EINVAL, func(e nsEnv) error { return unix.Rename(e.p("d"), e.p("d/x")) }},
	{"rename dir into its subdir", syscall.EINVAL, func(e nsEnv) error { return unix.Rename(e.p("d"), e.p("d/sub/x")) }},
	{"rename dir to itself", 0, func(e nsEnv) error { return unix.Rename(e.p("d"), e.p("d")) }},
	{"rename to its other link", 0, func(e nsEnv) error {
		if err := unix.Link(e.p("f"), e.p("f2")); err != nil {
			return err
		}
		return unix.Rename(e.p("f"), e.p("f2"))
	}},
	{"exchange dir with its subdir", syscall.EINVAL, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("d"), unix.AT_FDCWD, e.p("d/sub"), unix.RENAME_EXCHANGE)
	}},
	{"exchange subdir with its parent", syscall.EINVAL, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("d/sub"), unix.AT_FDCWD, e.p("d"), unix.RENAME_EXCHANGE)
	}},
	{"exchange with missing", syscall.ENOENT, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("f"), unix.AT_FDCWD, e.p("nope"), unix.RENAME_EXCHANGE)
	}},
	{"rename noreplace|exchange", syscall.EINVAL, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("f"), unix.AT_FDCWD, e.p("e"), unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE)
	}},
	{"rename unknown flag", syscall.EINVAL, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("f"), unix.AT_FDCWD, e.p("x"), 1<<5)
	}},
	{"rename .", syscall.EBUSY, func(e nsEnv) error { return unix.Rename(e.p("d/."), e.p("x")) }},
	{"rename onto ..", syscall.EBUSY, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p("d/..")) }},
	{"rename noreplace onto ..", syscall.EEXIST, func(e nsEnv) error {
		return unix.Renameat2(unix.AT_FDCWD, e.p("f"), unix.AT_FDCWD, e.p("d/.."), unix.RENAME_NOREPLACE)
	}},
	{"rename missing", syscall.ENOENT, func(e nsEnv) error { return unix.Rename(e.p("nope"), e.p("x")) }},
	{"rename into missing dir", syscall.ENOENT, func(e nsEnv) error { return unix.Rename(e.p("f"), e.p("nope/x")) }},
	// RENAME_WHITEOUT leaves a character device 0:0 with mode 0.
	{"whiteout", 0, func(e nsEnv) error { return whiteout(e, "f", "x", 0) }},
	{"whiteout of a dir", 0, func(e nsEnv) error { return whiteout(e, "e", "x", 0) }},
	{"whiteout noreplace over existing", syscall.EEXIST, func(e nsEnv) error { return whiteout(e, "f", "l", unix.RENAME_NOREPLACE) }},
	{"whiteout over non-empty dir", syscall.ENOTEMPTY, func(e nsEnv) error { return whiteout(e, "e", "d", 0) }},
	{"whiteout exchange", syscall.EINVAL, func(e nsEnv) error { return whiteout(e, "f", "l", unix.RENAME_EXCHANGE) }},
	// mknod.
	{"mknod FIFO", 0, func(e nsEnv) error { return unix.Mknod(e.p("fifo"), unix.S_IFIFO|0o644, 0) }},
	{"mknod existing", syscall.EEXIST, func(e nsEnv) error { return unix.Mknod(e.p("f"), unix.S_IFIFO|0o644, 0) }},
	{"mknod with trailing slash", syscall.ENOENT, func(e nsEnv) error { return unix.Mknod(e.p("x/"), unix.S_IFIFO|0o644, 0) }},
	{"mknod name 256", syscall.ENAMETOOLONG, func(e nsEnv) error {
		return unix.Mknod(e.p(strings.Repeat("n", 256)), unix.S_IFIFO|0o644, 0)
	}},
	{"mknod directory", syscall.EPERM, func(e nsEnv) error { return unix.Mknod(e.p("x"), unix.S_IFDIR|0o755, 0) }},
	{"mkfifo on a dangling symlink", syscall.EEXIST, func(e nsEnv) error { return unix.Mkfifo(e.p("dangling"), 0o644) }},
	{"rename FIFO over dir", syscall.EISDIR, func(e nsEnv) error {
		if err := unix.Mkfifo(e.p("fifo"), 0o644); err != nil {
			return err
		}
		return unix.Rename(e.p("fifo"), e.p("e"))
	}},
	// rmdir of ".", "..", the root; link of a directory; other filesystems.
	{"rmdir .", syscall.EINVAL, func(e nsEnv) error { return unix.Rmdir(e.p("e/.")) }},
	{"rmdir ..", syscall.ENOTEMPTY, func(e nsEnv) error { return unix.Rmdir(e.p("d/sub/..")) }},
	{"rmdir non-empty", syscall.ENOTEMPTY, func(e nsEnv) error { return unix.Rmdir(e.p("d")) }},
	{"rmdir root", syscall.EBUSY, func(e nsEnv) error { return unix.Rmdir(e.root) }},
	{"link dir", syscall.EPERM, func(e nsEnv) error { return unix.Link(e.p("d"), e.p("d2")) }},
	{"rename to another filesystem", syscall.EXDEV, func(e nsEnv) error { return unix.Rename(e.p("f"), e.outside+"/f") }},
	{"link to another filesystem", syscall.EXDEV, func(e nsEnv) error { return unix.Link(e.p("f"), e.outside+"/f") }},
}

// whiteout renames a to b with RENAME_WHITEOUT and flags and checks the
// whiteout left at a: a mismatch is ENOTRECOVERABLE, which no row expects.
func whiteout(e nsEnv, a, b string, flags uint) error {
	if err := unix.Renameat2(unix.AT_FDCWD, e.p(a), unix.AT_FDCWD, e.p(b), unix.RENAME_WHITEOUT|flags); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(e.p(a), &st); err != nil {
		return err
	}
	if st.Mode != unix.S_IFCHR || st.Rdev != 0 {
		return syscall.ENOTRECOVERABLE
	}
	return nil
}

// runNsErrnoCases runs every row of nsErrnoCases in dir, each on a fresh
// fixture, and returns their errors; root is the filesystem's root and
// outside a directory of another filesystem.
func runNsErrnoCases(dir, root, outside string) ([]error, error) {
	chain := dir + "/chain"
	if err := os.Mkdir(chain, 0o755); err != nil {
		return nil, err
	}
	if err := symlinkChain(chain); err != nil {
		return nil, err
	}
	errs := make([]error, len(nsErrnoCases))
	for i, tc := range nsErrnoCases {
		base := filepath.Join(dir, "case"+strconv.Itoa(i))
		if err := os.Mkdir(base, 0o755); err != nil {
			return nil, err
		}
		if err := nsFixture(base); err != nil {
			return nil, fmt.Errorf("%s: fixture: %v", tc.name, err)
		}
		errs[i] = tc.op(nsEnv{base: base, root: root, chain: chain, outside: outside})
	}
	return errs, nil
}

// TestNamespaceErrnos runs every row of nsErrnoCases on a tmpfs and
// through the mount, each on a fresh fixture: the tmpfs proves the
// expected errno, and the mount must give the same.
func TestNamespaceErrnos(t *testing.T) {
	tmp := mountTmpfs(t, unix.MS_NOSUID|unix.MS_NODEV, "size=256m") // as go-fuse mounts holefs
	m := mountFS(t, Options{})
	outside := t.TempDir()
	for _, target := range []struct{ name, root string }{{"tmpfs", tmp}, {"holefs", m.dir}} {
		t.Run(target.name, func(t *testing.T) {
			errs, err := runNsErrnoCases(target.root, target.root, outside)
			if err != nil {
				t.Fatal(err)
			}
			for i, tc := range nsErrnoCases {
				if got := errnoOf(errs[i]); got != tc.want || (errs[i] != nil && got == 0) {
					t.Errorf("%s: err = %v, want %s", tc.name, errs[i], errnoName(tc.want))
				}
			}
		})
	}
}

const nsErrnoHelper = "nserrno"

func init() { helpers[nsErrnoHelper] = nsErrnoChild }

// nsErrnoChild runs the rows in a child process (as another user): arg is
// "dir|root|outside"; it prints each row's errno name, one a line.
func nsErrnoChild(arg string) error {
	f := strings.Split(arg, "|")
	if len(f) != 3 {
		return fmt.Errorf("bad argument %q", arg)
	}
	errs, err := runNsErrnoCases(f[0], f[1], f[2])
	if err != nil {
		return err
	}
	for i, e := range errs {
		fmt.Printf("%s: %s\n", nsErrnoCases[i].name, errnoName(errnoOf(e)))
	}
	return nil
}

// TestNamespaceErrnosUnprivileged runs the rows as uid and gid 65534 in
// a directory of theirs, on a tmpfs and through the mount (allow_other):
// the two must agree row by row. The want column is root's: where
// permissions decide, an unprivileged caller differs (rmdir of the root is
// EACCES, its parent not being the caller's to write).
func TestNamespaceErrnosUnprivileged(t *testing.T) {
	bin, err := otherUserBinary(t)
	if err != nil {
		t.Skipf("cannot make a copy of the test binary that uid 65534 can run: %v", err)
	}
	tmp := mountTmpfs(t, unix.MS_NOSUID|unix.MS_NODEV, "size=256m") // as go-fuse mounts holefs
	m := mountFS(t, Options{AllowOther: true})
	outside := t.TempDir()
	var out [2]string
	for i, root := range []string{tmp, m.dir} {
		for _, d := range []string{root, outside} {
			reachable(t, d)
		}
		dir := root + "/u"
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(outside, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$", dir+"|"+root+"|"+outside)
		cmd.Env = childEnviron(nsErrnoHelper)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("child on %s: %v", root, err)
		}
		out[i] = string(b)
	}
	want, got := strings.Split(out[0], "\n"), strings.Split(out[1], "\n")
	if len(want) != len(nsErrnoCases)+1 {
		t.Fatalf("tmpfs child printed %d lines for %d rows", len(want)-1, len(nsErrnoCases))
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("as uid 65534: tmpfs %q, holefs %q", want[i], got[min(i, len(got)-1)])
		}
	}
}

// errnoName names an errno, "success" for 0.
func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(e)
}
