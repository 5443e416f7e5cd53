package vfs

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nsOp is one namespace system call, run both as the system call on a
// reference filesystem and as the path operation of the VFS. Paths are
// relative to the row's fixture directory unless abs, then to the root.
type nsOp struct {
	op    string // open, stat, lstat, mkdir, rmdir, unlink, link, symlink, rename, mknod, whiteout
	a, b  string // path (open .. unlink); old and new path (link, rename); target and path (symlink)
	flags int    // open flags, renameat2 flags, mknod mode
	abs   bool
}

// sys runs the operation with system calls under root.
func (o nsOp) sys(root, base string) error {
	p := func(s string) string {
		if o.abs {
			return root + "/" + s
		}
		return root + "/" + base + "/" + s
	}
	var st unix.Stat_t
	switch o.op {
	case "open":
		fd, err := unix.Open(p(o.a), o.flags, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "stat":
		return unix.Stat(p(o.a), &st)
	case "lstat":
		return unix.Lstat(p(o.a), &st)
	case "mkdir":
		return unix.Mkdir(p(o.a), 0o755)
	case "rmdir":
		return unix.Rmdir(p(o.a))
	case "unlink":
		return unix.Unlink(p(o.a))
	case "link":
		return unix.Link(p(o.a), p(o.b))
	case "symlink":
		return unix.Symlink(o.a, p(o.b))
	case "rename":
		return unix.Renameat2(unix.AT_FDCWD, p(o.a), unix.AT_FDCWD, p(o.b), uint(o.flags))
	case "mknod":
		return unix.Mknod(p(o.a), uint32(o.flags), 0)
	case "whiteout":
		if err := unix.Renameat2(unix.AT_FDCWD, p(o.a), unix.AT_FDCWD, p(o.b), unix.RENAME_WHITEOUT|uint(o.flags)); err != nil {
			return err
		}
		if err := unix.Lstat(p(o.a), &st); err != nil {
			return err
		}
		return checkWhiteout(st.Mode, st.Rdev)
	}
	panic("unknown op " + o.op)
}

// vfs runs the operation through the VFS's path API.
func (o nsOp) vfs(f *FS, base string) error {
	p := func(s string) string {
		if o.abs {
			return s
		}
		return base + "/" + s
	}
	switch o.op {
	case "open":
		in, _, err := f.OpenPath(p(o.a), o.flags, 0o644)
		if err != nil {
			return err
		}
		h, err := f.Open(in, o.flags&^(os.O_CREATE|os.O_EXCL))
		if err != nil {
			return err
		}
		return h.Close()
	case "stat", "lstat":
		_, err := f.Lookup(p(o.a), o.op == "stat")
		return err
	case "mkdir":
		return f.Mkdir(p(o.a), 0o755)
	case "rmdir":
		return f.Rmdir(p(o.a))
	case "unlink":
		return f.Unlink(p(o.a))
	case "link":
		return f.Link(p(o.a), p(o.b))
	case "symlink":
		return f.Symlink(o.a, p(o.b))
	case "rename":
		return f.Rename(p(o.a), p(o.b), uint32(o.flags))
	case "mknod":
		return f.Mknod(p(o.a), uint32(o.flags), 0)
	case "whiteout":
		if err := f.Rename(p(o.a), p(o.b), RenameWhiteout|uint32(o.flags)); err != nil {
			return err
		}
		in, err := f.Lookup(p(o.a), false)
		if err != nil {
			return err
		}
		a := in.Stat()
		return checkWhiteout(a.Mode, a.Rdev)
	}
	panic("unknown op " + o.op)
}

// checkWhiteout checks what RENAME_WHITEOUT left at the old name: a
// character device 0:0 with mode 0. A mismatch is ENOTRECOVERABLE, which
// no row expects.
func checkWhiteout(mode uint32, rdev uint64) error {
	if mode != syscall.S_IFCHR || rdev != 0 {
		return syscall.ENOTRECOVERABLE
	}
	return nil
}

// nsFixture is the tree each row starts from: f, d/g, d/sub/, e/, the
// symlinks l -> f, dl -> d, dangling -> nowhere, loop -> loop, and the
// chain s0 -> s1 -> ... -> s40 -> f (resolving s1 follows Linux's limit
// of 40 links, s0 one more).
type fixtureStep struct {
	kind       string // file, dir, symlink
	name, link string
}

func nsFixture() []fixtureStep {
	steps := []fixtureStep{{"file", "f", ""}, {"dir", "d", ""}, {"file", "d/g", ""}, {"dir", "d/sub", ""},
		{"dir", "e", ""}, {"symlink", "l", "f"}, {"symlink", "dl", "d"}, {"symlink", "dangling", "nowhere"},
		{"symlink", "loop", "loop"}}
	for i := range 41 {
		target := "s" + strconv.Itoa(i+1)
		if i == 40 {
			target = "f"
		}
		steps = append(steps, fixtureStep{"symlink", "s" + strconv.Itoa(i), target})
	}
	return steps
}

var (
	long256  = strings.Repeat("n", 256)
	long255  = strings.Repeat("n", 255)
	pathMax4 = strings.Repeat("d/../", 820) + "f" // 4101 bytes
)

// nsCases are namespace calls and the errno Linux gives for them on tmpfs
// (0: success).
var nsCases = []struct {
	name string
	op   nsOp
	want syscall.Errno
}{
	// ENAMETOOLONG.
	{"open name 256", nsOp{op: "open", a: long256}, syscall.ENAMETOOLONG},
	{"create name 256", nsOp{op: "open", a: long256, flags: unix.O_CREAT | unix.O_WRONLY}, syscall.ENAMETOOLONG},
	{"create name 255", nsOp{op: "open", a: long255, flags: unix.O_CREAT | unix.O_WRONLY}, 0},
	{"mkdir name 256", nsOp{op: "mkdir", a: long256}, syscall.ENAMETOOLONG},
	{"name 256 in the middle", nsOp{op: "stat", a: long256 + "/x"}, syscall.ENAMETOOLONG},
	{"rename to name 256", nsOp{op: "rename", a: "f", b: long256}, syscall.ENAMETOOLONG},
	{"link to name 256", nsOp{op: "link", a: "f", b: long256}, syscall.ENAMETOOLONG},
	{"symlink name 256", nsOp{op: "symlink", a: "f", b: long256}, syscall.ENAMETOOLONG},
	{"stat path of PATH_MAX", nsOp{op: "stat", a: pathMax4}, syscall.ENAMETOOLONG},
	{"create path of PATH_MAX", nsOp{op: "open", a: pathMax4 + "x", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.ENAMETOOLONG},
	{"unlink path of PATH_MAX", nsOp{op: "unlink", a: pathMax4}, syscall.ENAMETOOLONG},
	{"link from path of PATH_MAX", nsOp{op: "link", a: pathMax4, b: "x"}, syscall.ENAMETOOLONG},
	{"rename path of PATH_MAX", nsOp{op: "rename", a: pathMax4, b: "x"}, syscall.ENAMETOOLONG},
	{"symlink target of PATH_MAX", nsOp{op: "symlink", a: pathMax4, b: "x"}, syscall.ENAMETOOLONG},
	// ELOOP and O_NOFOLLOW.
	{"stat symlink loop", nsOp{op: "stat", a: "loop"}, syscall.ELOOP},
	{"lstat symlink loop", nsOp{op: "lstat", a: "loop"}, 0},
	{"through symlink loop", nsOp{op: "stat", a: "loop/x"}, syscall.ELOOP},
	{"create through symlink loop", nsOp{op: "open", a: "loop", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.ELOOP},
	{"40 links", nsOp{op: "open", a: "s1"}, 0},
	{"41 links", nsOp{op: "open", a: "s0"}, syscall.ELOOP},
	{"create through 41 links", nsOp{op: "open", a: "s0", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.ELOOP},
	{"O_NOFOLLOW symlink", nsOp{op: "open", a: "l", flags: unix.O_NOFOLLOW}, syscall.ELOOP},
	{"O_NOFOLLOW|O_CREAT symlink", nsOp{op: "open", a: "l", flags: unix.O_CREAT | unix.O_WRONLY | unix.O_NOFOLLOW}, syscall.ELOOP},
	{"O_NOFOLLOW|O_DIRECTORY symlink", nsOp{op: "open", a: "dl", flags: unix.O_NOFOLLOW | unix.O_DIRECTORY}, syscall.ENOTDIR},
	{"O_NOFOLLOW in a middle component", nsOp{op: "open", a: "dl/g", flags: unix.O_NOFOLLOW}, 0},
	{"O_NOFOLLOW on a file", nsOp{op: "open", a: "f", flags: unix.O_NOFOLLOW}, 0},
	{"O_CREAT|O_EXCL dangling", nsOp{op: "open", a: "dangling", flags: unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY}, syscall.EEXIST},
	{"O_CREAT dangling", nsOp{op: "open", a: "dangling", flags: unix.O_CREAT | unix.O_WRONLY}, 0},
	{"O_CREAT symlink to dir", nsOp{op: "open", a: "dl", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.EISDIR},
	{"O_CREAT|O_DIRECTORY", nsOp{op: "open", a: "new", flags: unix.O_CREAT | unix.O_DIRECTORY}, syscall.EINVAL},
	{"O_DIRECTORY on a file", nsOp{op: "open", a: "f", flags: unix.O_DIRECTORY}, syscall.ENOTDIR},
	{"O_DIRECTORY on a symlink to dir", nsOp{op: "open", a: "dl", flags: unix.O_DIRECTORY}, 0},
	// EISDIR.
	{"open dir O_WRONLY", nsOp{op: "open", a: "d", flags: unix.O_WRONLY}, syscall.EISDIR},
	{"open dir O_RDWR", nsOp{op: "open", a: "d", flags: unix.O_RDWR}, syscall.EISDIR},
	{"open dir O_CREAT", nsOp{op: "open", a: "d", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.EISDIR},
	{"create with trailing slash", nsOp{op: "open", a: "new/", flags: unix.O_CREAT | unix.O_WRONLY}, syscall.EISDIR},
	{"unlink dir", nsOp{op: "unlink", a: "d"}, syscall.EISDIR},
	{"unlink .", nsOp{op: "unlink", a: "d/."}, syscall.EISDIR},
	{"rename file over dir", nsOp{op: "rename", a: "f", b: "e"}, syscall.EISDIR},
	// ENOTDIR.
	{"file as path component", nsOp{op: "open", a: "f/x"}, syscall.ENOTDIR},
	{"stat file with trailing slash", nsOp{op: "stat", a: "f/"}, syscall.ENOTDIR},
	{"unlink file with trailing slash", nsOp{op: "unlink", a: "f/"}, syscall.ENOTDIR},
	{"unlink symlink to dir with trailing slash", nsOp{op: "unlink", a: "dl/"}, syscall.ENOTDIR},
	{"unlink missing with trailing slash", nsOp{op: "unlink", a: "nope/"}, syscall.ENOENT},
	{"rmdir file", nsOp{op: "rmdir", a: "f"}, syscall.ENOTDIR},
	{"rmdir symlink to dir with trailing slash", nsOp{op: "rmdir", a: "dl/"}, syscall.ENOTDIR},
	{"rmdir f/.", nsOp{op: "rmdir", a: "f/."}, syscall.ENOTDIR},
	{"mkdir in a file", nsOp{op: "mkdir", a: "f/x"}, syscall.ENOTDIR},
	{"mkdir with trailing slash", nsOp{op: "mkdir", a: "new/"}, 0},
	{"rename dir over file", nsOp{op: "rename", a: "d", b: "f"}, syscall.ENOTDIR},
	{"rename file with trailing slash", nsOp{op: "rename", a: "f/", b: "x"}, syscall.ENOTDIR},
	{"rename symlink to dir with trailing slash", nsOp{op: "rename", a: "dl/", b: "x"}, syscall.ENOTDIR},
	{"rename file to trailing slash", nsOp{op: "rename", a: "f", b: "x/"}, syscall.ENOTDIR},
	{"rename file over dir with trailing slash", nsOp{op: "rename", a: "f", b: "e/"}, syscall.ENOTDIR},
	{"rename dir to trailing slash", nsOp{op: "rename", a: "e", b: "x/"}, 0},
	{"rename noreplace over dir with trailing slash", nsOp{op: "rename", a: "f", b: "d/", flags: unix.RENAME_NOREPLACE}, syscall.EEXIST},
	{"exchange with file with trailing slash", nsOp{op: "rename", a: "e", b: "f/", flags: unix.RENAME_EXCHANGE}, syscall.ENOTDIR},
	{"exchange file with trailing slash", nsOp{op: "rename", a: "f/", b: "e", flags: unix.RENAME_EXCHANGE}, syscall.ENOTDIR},
	// New names with a trailing slash; EEXIST.
	{"link to trailing slash", nsOp{op: "link", a: "f", b: "x/"}, syscall.ENOENT},
	{"link dir to trailing slash", nsOp{op: "link", a: "d", b: "x/"}, syscall.ENOENT},
	{"symlink at trailing slash", nsOp{op: "symlink", a: "f", b: "x/"}, syscall.ENOENT},
	{"symlink at existing with trailing slash", nsOp{op: "symlink", a: "f", b: "dl/"}, syscall.EEXIST},
	{"link over existing", nsOp{op: "link", a: "f", b: "l"}, syscall.EEXIST},
	{"link dir over existing", nsOp{op: "link", a: "d", b: "f"}, syscall.EEXIST},
	{"link symlink", nsOp{op: "link", a: "dangling", b: "x"}, 0},
	{"link to .", nsOp{op: "link", a: "f", b: "d/."}, syscall.EEXIST},
	{"mkdir ..", nsOp{op: "mkdir", a: "d/.."}, syscall.EEXIST},
	{"mkdir root", nsOp{op: "mkdir", a: "", abs: true}, syscall.EEXIST},
	// Directory renames.
	{"rename dir over empty dir", nsOp{op: "rename", a: "d", b: "e"}, 0},
	{"rename dir over non-empty dir", nsOp{op: "rename", a: "e", b: "d"}, syscall.ENOTEMPTY},
	{"rename noreplace over non-empty dir", nsOp{op: "rename", a: "e", b: "d", flags: unix.RENAME_NOREPLACE}, syscall.EEXIST},
	{"rename dir onto its parent", nsOp{op: "rename", a: "d/sub", b: "d"}, syscall.ENOTEMPTY},
	{"rename file onto its parent dir", nsOp{op: "rename", a: "d/g", b: "d"}, syscall.ENOTEMPTY},
	{"rename dir into itself", nsOp{op: "rename", a: "d", b: "d/x"}, syscall.EINVAL},
	{"rename dir into its subdir", nsOp{op: "rename", a: "d", b: "d/sub/x"}, syscall.EINVAL},
	{"rename dir over its subdir", nsOp{op: "rename", a: "d", b: "d/sub"}, syscall.EINVAL},
	{"rename dir to itself", nsOp{op: "rename", a: "d", b: "d"}, 0},
	{"exchange dir with its subdir", nsOp{op: "rename", a: "d", b: "d/sub", flags: unix.RENAME_EXCHANGE}, syscall.EINVAL},
	{"exchange subdir with its parent", nsOp{op: "rename", a: "d/sub", b: "d", flags: unix.RENAME_EXCHANGE}, syscall.EINVAL},
	{"exchange dir and file", nsOp{op: "rename", a: "d", b: "f", flags: unix.RENAME_EXCHANGE}, 0},
	{"exchange with missing", nsOp{op: "rename", a: "f", b: "nope", flags: unix.RENAME_EXCHANGE}, syscall.ENOENT},
	{"rename noreplace|exchange", nsOp{op: "rename", a: "f", b: "e", flags: unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE}, syscall.EINVAL},
	{"rename unknown flag", nsOp{op: "rename", a: "f", b: "x", flags: 1 << 5}, syscall.EINVAL},
	{"rename .", nsOp{op: "rename", a: "d/.", b: "x"}, syscall.EBUSY},
	{"rename onto ..", nsOp{op: "rename", a: "f", b: "d/.."}, syscall.EBUSY},
	{"rename noreplace onto ..", nsOp{op: "rename", a: "f", b: "d/..", flags: unix.RENAME_NOREPLACE}, syscall.EEXIST},
	{"rename missing", nsOp{op: "rename", a: "nope", b: "x"}, syscall.ENOENT},
	{"rename into missing dir", nsOp{op: "rename", a: "f", b: "nope/x"}, syscall.ENOENT},
	{"rename . into a file", nsOp{op: "rename", a: ".", b: "f/x"}, syscall.ENOTDIR},
	{"rename name 256 onto ..", nsOp{op: "rename", a: long256, b: "d/.."}, syscall.EBUSY},
	{"rename missing onto name 256", nsOp{op: "rename", a: "nope", b: long256}, syscall.ENOENT},
	{"O_CREAT|O_EXCL of .", nsOp{op: "open", a: "d/.", flags: unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY}, syscall.EEXIST},
	{"O_CREAT|O_EXCL with trailing slash", nsOp{op: "open", a: "f/", flags: unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY}, syscall.EISDIR},
	{"O_TRUNC of a dir", nsOp{op: "open", a: "d", flags: unix.O_RDONLY | unix.O_TRUNC}, syscall.EISDIR},
	// RENAME_WHITEOUT, as overlayfs uses it.
	{"whiteout", nsOp{op: "whiteout", a: "f", b: "x"}, 0},
	{"whiteout over a file", nsOp{op: "whiteout", a: "f", b: "d/g"}, 0},
	{"whiteout of a dir", nsOp{op: "whiteout", a: "e", b: "x"}, 0},
	{"whiteout over non-empty dir", nsOp{op: "whiteout", a: "e", b: "d"}, syscall.ENOTEMPTY},
	{"whiteout noreplace", nsOp{op: "whiteout", a: "f", b: "x", flags: unix.RENAME_NOREPLACE}, 0},
	{"whiteout noreplace over existing", nsOp{op: "whiteout", a: "f", b: "l", flags: unix.RENAME_NOREPLACE}, syscall.EEXIST},
	{"whiteout exchange", nsOp{op: "whiteout", a: "f", b: "l", flags: unix.RENAME_EXCHANGE}, syscall.EINVAL},
	{"whiteout of missing", nsOp{op: "whiteout", a: "nope", b: "x"}, syscall.ENOENT},
	{"whiteout to its other name", nsOp{op: "rename", a: "f", b: "f", flags: unix.RENAME_WHITEOUT}, 0},
	// mknod.
	{"mknod FIFO", nsOp{op: "mknod", a: "fifo", flags: unix.S_IFIFO | 0o644}, 0},
	{"mknod existing", nsOp{op: "mknod", a: "f", flags: unix.S_IFIFO | 0o644}, syscall.EEXIST},
	{"mknod dangling symlink", nsOp{op: "mknod", a: "dangling", flags: unix.S_IFIFO | 0o644}, syscall.EEXIST},
	{"mknod with trailing slash", nsOp{op: "mknod", a: "x/", flags: unix.S_IFIFO | 0o644}, syscall.ENOENT},
	{"mknod existing with trailing slash", nsOp{op: "mknod", a: "d/", flags: unix.S_IFIFO | 0o644}, syscall.EEXIST},
	{"mknod name 256", nsOp{op: "mknod", a: long256, flags: unix.S_IFIFO | 0o644}, syscall.ENAMETOOLONG},
	{"mknod in a file", nsOp{op: "mknod", a: "f/x", flags: unix.S_IFIFO | 0o644}, syscall.ENOTDIR},
	{"mknod ..", nsOp{op: "mknod", a: "d/..", flags: unix.S_IFIFO | 0o644}, syscall.EEXIST},
	{"mknod directory", nsOp{op: "mknod", a: "x", flags: unix.S_IFDIR | 0o755}, syscall.EPERM},
	// rmdir of ".", "..", the root; link of a directory.
	{"rmdir .", nsOp{op: "rmdir", a: "e/."}, syscall.EINVAL},
	{"rmdir ..", nsOp{op: "rmdir", a: "d/sub/.."}, syscall.ENOTEMPTY},
	{"rmdir non-empty", nsOp{op: "rmdir", a: "d"}, syscall.ENOTEMPTY},
	{"rmdir root", nsOp{op: "rmdir", a: "", abs: true}, syscall.EBUSY},
	{"link dir", nsOp{op: "link", a: "d", b: "d2"}, syscall.EPERM},
	{"link symlink to dir with trailing slash", nsOp{op: "link", a: "dl/", b: "x"}, syscall.EPERM},
}

// TestNamespaceErrnos runs every row of nsCases through the VFS's path
// API, each on a fresh fixture, and, as root, as the system call on a
// tmpfs, which proves the expected errno.
func TestNamespaceErrnos(t *testing.T) {
	f := newMemFS(t, 256, nil)
	tmp := refTmpfs(t)
	if tmp == "" {
		t.Log("no reference tmpfs (not root): checking the VFS against the table only")
	}
	for i, tc := range nsCases {
		base := "case" + strconv.Itoa(i)
		if err := vfsFixture(f.FS, base); err != nil {
			t.Fatalf("%s: fixture: %v", tc.name, err)
		}
		if err := tc.op.vfs(f.FS, base); errnoOf(err) != tc.want {
			t.Errorf("%s: vfs err = %v, want %s", tc.name, err, errnoName(tc.want))
		}
		if tmp == "" {
			continue
		}
		if err := sysFixture(tmp, base); err != nil {
			t.Fatalf("%s: tmpfs fixture: %v", tc.name, err)
		}
		if err := tc.op.sys(tmp, base); errnoOf(err) != tc.want {
			t.Errorf("%s: tmpfs err = %v, want %s: the table is wrong", tc.name, err, errnoName(tc.want))
		}
	}
}

// refTmpfs mounts a tmpfs for the rest of the test and returns its
// directory; "" where mounting is not permitted.
func refTmpfs(t *testing.T) string {
	tmp := t.TempDir()
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "size=64m"); err != nil {
		return ""
	}
	t.Cleanup(func() {
		if err := unix.Unmount(tmp, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs: %v", err)
		}
	})
	return tmp
}

// nsRandPath returns a random path of one to three components, "." and
// ".." among them, maybe with a trailing slash. A ".." never climbs above
// where the path starts, even through symlinks (nsRandTarget's targets
// lead only downward), so the path stays in the test's directory, where
// tmpfs and the VFS agree on what ".." is.
func nsRandPath(r *rand.Rand) string {
	var comps []string
	depth := 0
	for range 1 + r.Intn(3) {
		switch c := []string{"a", "b", "l", "a", "b", "l", ".", "..", long256}[r.Intn(9)]; {
		case c == ".." && depth == 0:
			comps = append(comps, ".")
		case c == "..":
			depth--
			comps = append(comps, c)
		default:
			if c != "." {
				depth++
			}
			comps = append(comps, c)
		}
	}
	p := strings.Join(comps, "/")
	if r.Intn(6) == 0 {
		p += "/"
	}
	return p
}

// nsRandTarget returns a symlink target of one or two names, leading only
// below the link's directory.
func nsRandTarget(r *rand.Rand) string {
	names := []string{"a", "b", "l"}
	p := names[r.Intn(3)]
	if r.Intn(3) == 0 {
		p += "/" + names[r.Intn(3)]
	}
	if r.Intn(6) == 0 {
		p += "/"
	}
	return p
}

// nsRandOp returns a random namespace call on random paths.
func nsRandOp(r *rand.Rand) nsOp {
	o := nsOp{a: nsRandPath(r), b: nsRandPath(r)}
	switch r.Intn(11) {
	case 0, 1:
		o.op = "open"
		o.flags = []int{unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR}[r.Intn(3)]
		for _, fl := range []int{unix.O_CREAT, unix.O_EXCL, unix.O_NOFOLLOW, unix.O_DIRECTORY, unix.O_TRUNC} {
			if r.Intn(3) == 0 {
				o.flags |= fl
			}
		}
	case 2:
		o.op = "stat"
	case 3:
		o.op = "lstat"
	case 4:
		o.op = "mkdir"
	case 5:
		o.op = "rmdir"
	case 6:
		o.op = "unlink"
	case 7:
		o.op = "link"
	case 8:
		o.op = "symlink"
		o.a = nsRandTarget(r)
	case 9:
		o.op = "rename"
		o.flags = []int{0, 0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE, unix.RENAME_WHITEOUT,
			unix.RENAME_NOREPLACE | unix.RENAME_WHITEOUT, unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT}[r.Intn(7)]
	case 10:
		o.op = "mknod"
		o.flags = unix.S_IFSOCK | 0o644 // a socket opens as ENXIO in both
	}
	return o
}

// TestNamespaceRandom runs seeded random namespace calls on tangled paths
// (".", "..", symlinks to files and directories, trailing slashes) on a
// tmpfs and through the VFS's path API: every errno, and the trees after,
// must be the same. HOLEFS_NS_OPS sets the calls per seed.
func TestNamespaceRandom(t *testing.T) {
	tmp := refTmpfs(t)
	if tmp == "" {
		t.Skip("no reference tmpfs: run as root")
	}
	n := 2000
	if s := os.Getenv("HOLEFS_NS_OPS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("HOLEFS_NS_OPS=%q: want a positive integer", s)
		}
	}
	f := newMemFS(t, 256, nil)
	for seed := range int64(4) {
		base := "r" + strconv.FormatInt(seed, 10)
		if err := f.Mkdir(base, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(tmp+"/"+base, 0o755); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewSource(seed))
		for i := range n {
			o := nsRandOp(r)
			want, got := o.sys(tmp, base), o.vfs(f.FS, base)
			if errnoOf(want) != errnoOf(got) {
				t.Fatalf("seed %d op %d %+v: vfs %v, tmpfs %v", seed, i, o, got, want)
			}
		}
		sysTree, err := sysTreeLines(tmp, base)
		if err != nil {
			t.Fatal(err)
		}
		vfsTree, err := vfsTreeLines(f.FS, base)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sysTree, vfsTree) {
			t.Errorf("seed %d: trees differ:\ntmpfs: %q\nvfs:   %q", seed, sysTree, vfsTree)
		}
	}
}

// sysTreeLines lists the tree at root/dir: path, type and links.
func sysTreeLines(root, dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root+"/"+dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %o %d", strings.TrimPrefix(path, root+"/"), st.Mode&unix.S_IFMT, st.Nlink))
		return nil
	})
	return out, err
}

// vfsTreeLines is sysTreeLines of the VFS, in the same (lexical) order.
func vfsTreeLines(f *FS, dir string) ([]string, error) {
	in, err := f.Lookup(dir, false)
	if err != nil {
		return nil, err
	}
	a := in.Stat()
	out := []string{fmt.Sprintf("%s %o %d", dir, a.Mode&syscall.S_IFMT, a.Nlink)}
	if !in.IsDir() {
		return out, nil
	}
	ents, err := f.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		sub, err := vfsTreeLines(f, dir+"/"+e.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

func vfsFixture(f *FS, base string) error {
	if err := f.Mkdir(base, 0o755); err != nil {
		return err
	}
	for _, s := range nsFixture() {
		var err error
		switch s.kind {
		case "file":
			_, _, err = f.Create(base+"/"+s.name, 0o644, true)
		case "dir":
			err = f.Mkdir(base+"/"+s.name, 0o755)
		case "symlink":
			err = f.Symlink(s.link, base+"/"+s.name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func sysFixture(root, base string) error {
	if err := os.Mkdir(root+"/"+base, 0o755); err != nil {
		return err
	}
	for _, s := range nsFixture() {
		p := root + "/" + base + "/" + s.name
		var err error
		switch s.kind {
		case "file":
			err = os.WriteFile(p, nil, 0o644)
		case "dir":
			err = os.Mkdir(p, 0o755)
		case "symlink":
			err = os.Symlink(s.link, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errnoOf returns the errno of err; 0 for nil, and -1 for an error that
// carries none, which matches no row.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return ^syscall.Errno(0)
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(e)
}
