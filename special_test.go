package holefs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// specialNode is a special file a test makes, and what Stat must show.
type specialNode struct {
	name string
	mode uint32 // for Mknod
	dev  uint64
	want fs.FileMode
	rdev uint64 // the device number kept: only a device's
}

var specialNodes = []specialNode{
	{"fifo", syscall.S_IFIFO | 0o640, 0, fs.ModeNamedPipe | 0o640, 0},
	{"fifo-dev", syscall.S_IFIFO | 0o600, unix.Mkdev(4, 5), fs.ModeNamedPipe | 0o600, 0},
	{"sock", syscall.S_IFSOCK | 0o755, 0, fs.ModeSocket | 0o755, 0},
	{"null", syscall.S_IFCHR | 0o666, unix.Mkdev(1, 3), fs.ModeDevice | fs.ModeCharDevice | 0o666, unix.Mkdev(1, 3)},
	{"whiteout", syscall.S_IFCHR | 0o600, 0, fs.ModeDevice | fs.ModeCharDevice | 0o600, 0},
	{"nvme", syscall.S_IFBLK | 0o660, unix.Mkdev(259, 70000), fs.ModeDevice | 0o660, unix.Mkdev(259, 70000)},
	{"reg", syscall.S_IFREG | 0o604, unix.Mkdev(1, 1), 0o604, 0},
	{"reg0", 0o600, 0, 0o600, 0},
}

// isDevice reports whether mode makes a character or block device.
func isDevice(mode uint32) bool {
	t := mode & syscall.S_IFMT
	return t == syscall.S_IFCHR || t == syscall.S_IFBLK
}

// checkSpecial checks what Lstat and ReadDir show of a node made by Mknod.
func checkSpecial(t *testing.T, fsys *holefs.FS, n specialNode) {
	t.Helper()
	fi, err := fsys.Lstat(n.name)
	if err != nil {
		t.Fatalf("Lstat(%s): %v", n.name, err)
	}
	a := attr(t, fi)
	if fi.Mode() != n.want || a.Rdev != n.rdev || fi.Size() != 0 || a.Blocks != 0 || a.Nlink != 1 {
		t.Errorf("Lstat(%s): mode %v rdev %#x size %d blocks %d nlink %d, want mode %v rdev %#x, empty, 1 link",
			n.name, fi.Mode(), a.Rdev, fi.Size(), a.Blocks, a.Nlink, n.want, n.rdev)
	}
	if want := n.mode&syscall.S_IFMT | n.mode&0o7777; n.mode&syscall.S_IFMT != 0 && a.Mode != want {
		t.Errorf("Lstat(%s): st_mode %#o, want %#o", n.name, a.Mode, want)
	}
	ents, err := fsys.ReadDir(filepath.Dir(n.name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == filepath.Base(n.name) && e.Type() != n.want.Type() {
			t.Errorf("ReadDir: %s has type %v, want %v", n.name, e.Type(), n.want.Type())
		}
	}
}

// TestMknod makes every type mknod(2) can make, and checks Linux's
// errnos for the rest, on every backend.
func TestMknod(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		// A device in a backing directory is the backing filesystem's
		// to allow: only with CAP_MKNOD.
		devErr := syscall.Errno(0)
		if backend == holefs.BackendPassthrough && os.Geteuid() != 0 {
			devErr = syscall.EPERM
		}
		_, _, free0 := fsys.Statfs()
		for _, n := range specialNodes {
			err := fsys.Mknod(n.name, n.mode, n.dev)
			if isDevice(n.mode) && devErr != 0 {
				wantErrno(t, err, devErr, "mknod of a device in a backing directory without CAP_MKNOD")
				continue
			}
			if err != nil {
				t.Fatalf("Mknod(%s, %#o, %#x): %v", n.name, n.mode, n.dev, err)
			}
			checkSpecial(t, fsys, n)
		}
		if _, _, free := fsys.Statfs(); backend != holefs.BackendPassthrough && free != free0 {
			t.Errorf("special files took %d blocks", free0-free)
		}

		must(t, fsys.Mkdir("d", 0o755))
		must(t, fsys.Symlink("nowhere", "dangling"))
		for _, tc := range []struct {
			name string
			mode uint32
			dev  uint64
			want syscall.Errno
		}{
			{"fifo", syscall.S_IFIFO | 0o600, 0, syscall.EEXIST},
			{"d", syscall.S_IFSOCK | 0o600, 0, syscall.EEXIST},
			{"dangling", syscall.S_IFIFO | 0o600, 0, syscall.EEXIST},
			{".", syscall.S_IFIFO | 0o600, 0, syscall.EEXIST},
			{"/", syscall.S_IFIFO | 0o600, 0, syscall.EEXIST},
			{"d/", syscall.S_IFIFO | 0o600, 0, syscall.EEXIST},
			{"new/", syscall.S_IFIFO | 0o600, 0, syscall.ENOENT}, // a directory is asked for
			{"missing/p", syscall.S_IFIFO | 0o600, 0, syscall.ENOENT},
			{"reg/p", syscall.S_IFIFO | 0o600, 0, syscall.ENOTDIR},
			{"fifo/p", syscall.S_IFIFO | 0o600, 0, syscall.ENOTDIR},
			{strings.Repeat("n", 256), syscall.S_IFIFO | 0o600, 0, syscall.ENAMETOOLONG},
			{"dir", syscall.S_IFDIR | 0o700, 0, syscall.EPERM},
			{"link", syscall.S_IFLNK | 0o777, 0, syscall.EINVAL},
			{"unknown", 0o170000 | 0o600, 0, syscall.EINVAL},
			{"wide", syscall.S_IFCHR | 0o600, unix.Mkdev(4096, 0), syscall.EINVAL}, // beyond the 32 bits mknod(2) takes
			{"missing/dir", syscall.S_IFDIR | 0o700, 0, syscall.EPERM},             // the type is checked first
		} {
			wantErrno(t, fsys.Mknod(tc.name, tc.mode, tc.dev), tc.want, "Mknod("+tc.name+")")
		}
		if _, err := fsys.Lstat("dir"); err == nil {
			t.Error("a failed Mknod left a name behind")
		}
	})
}

// TestSpecialFileOps: what works on a special file (chmod, chown, times,
// link, rename, remove) works, and opening one fails with the documented
// errno, O_CREATE or not, without touching a page or a block.
func TestSpecialFileOps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		types := []struct {
			mode uint32
			open syscall.Errno
		}{
			{syscall.S_IFIFO, syscall.EOPNOTSUPP},
			{syscall.S_IFSOCK, syscall.ENXIO},
			{syscall.S_IFCHR, syscall.ENXIO},
			{syscall.S_IFBLK, syscall.ENXIO},
		}
		for _, tc := range types {
			if isDevice(tc.mode) && backend == holefs.BackendPassthrough && os.Geteuid() != 0 {
				continue
			}
			name := "n" + strings.TrimPrefix(fs.FileMode(tc.mode).String(), "-")
			must(t, fsys.Mknod(name, tc.mode|0o600, unix.Mkdev(7, 1)))
			stats := fsys.CacheStats()
			for _, flag := range []int{syscall.O_RDONLY, syscall.O_WRONLY, syscall.O_RDWR | syscall.O_TRUNC, syscall.O_RDWR | syscall.O_CREAT} {
				if f, err := fsys.OpenFile(name, flag, 0o600); err == nil {
					f.Close()
					t.Errorf("OpenFile(%s, %#x) succeeded", name, flag)
				} else {
					wantErrno(t, err, tc.open, "OpenFile of a special file")
				}
			}
			_, err := fsys.ReadFile(name)
			wantErrno(t, err, tc.open, "ReadFile of a special file")
			if got := fsys.CacheStats(); got != stats {
				t.Errorf("opening a special file changed the page cache: %+v, then %+v", stats, got)
			}

			// chmod, chown, times: applied, size untouched.
			must(t, fsys.Chmod(name, 0o751))
			must(t, fsys.Chown(name, 65534, 65534))
			mtime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
			must(t, fsys.Chtimes(name, mtime, mtime))
			fi, err := fsys.Lstat(name)
			must(t, err)
			a := attr(t, fi)
			if fi.Mode().Perm() != 0o751 || a.Uid != 65534 || a.Gid != 65534 || !fi.ModTime().Equal(mtime) || fi.Size() != 0 {
				t.Errorf("%s after chmod, chown, chtimes: %v uid %d gid %d mtime %v size %d", name, fi.Mode(), a.Uid, a.Gid, fi.ModTime(), fi.Size())
			}

			// link, rename, remove.
			must(t, fsys.Link(name, name+".link"))
			must(t, fsys.Rename(name+".link", name+".moved"))
			fi, err = fsys.Lstat(name + ".moved")
			must(t, err)
			if attr(t, fi).Nlink != 2 || fi.Mode().Type() != fileType(tc.mode) {
				t.Errorf("%s.moved: %v nlink %d", name, fi.Mode(), attr(t, fi).Nlink)
			}
			must(t, fsys.Remove(name))
			must(t, fsys.Remove(name+".moved"))
			if _, err := fsys.Lstat(name + ".moved"); err == nil {
				t.Errorf("%s still there after Remove", name)
			}
		}
	})
}

// fileType returns the fs.FileMode type bits of a mknod type.
func fileType(mode uint32) fs.FileMode {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	}
	return 0
}

// TestImageSpecialFiles: special files survive a clean reopen and a crash
// after fsync (the journal's replay), and fsck counts them and finds
// nothing wrong.
func TestImageSpecialFiles(t *testing.T) {
	dir := mkImage(t, 1<<20)
	fsys := openImage(t, dir)
	for _, n := range specialNodes {
		must(t, fsys.Mknod(n.name, n.mode, n.dev))
	}
	must(t, fsys.Mkdir("d", 0o755))
	must(t, fsys.Link("null", "d/null2"))
	must(t, fsys.Sync())
	crashed := crashCopy(t, dir)
	must(t, fsys.Close())

	for _, img := range []struct{ what, dir string }{{"reopen", dir}, {"crash", crashed}} {
		t.Run(img.what, func(t *testing.T) {
			rimg, err := meta.Open(img.dir, meta.OpenOptions{ReadOnly: true})
			must(t, err)
			rep, err := meta.Check(rimg, meta.CheckOptions{})
			rimg.Close()
			must(t, err)
			if len(rep.Findings) != 0 || rep.Special != 6 || rep.Files != 2 {
				t.Errorf("fsck: %d special files, %d regular, findings %v; want 6, 2 and none", rep.Special, rep.Files, rep.Findings)
			}
			fsys := openImage(t, img.dir)
			defer fsys.Close()
			for _, n := range specialNodes {
				if n.name == "null" {
					n.name = "d/null2" // and checkSpecial sees 2 links
				}
				fi, err := fsys.Lstat(n.name)
				must(t, err)
				a := attr(t, fi)
				if fi.Mode() != n.want || a.Rdev != n.rdev || fi.Size() != 0 {
					t.Errorf("%s: mode %v rdev %#x size %d, want %v %#x 0", n.name, fi.Mode(), a.Rdev, fi.Size(), n.want, n.rdev)
				}
			}
			// The image takes new ones after the reopen too.
			must(t, fsys.Mknod("later", syscall.S_IFIFO|0o600, 0))
		})
	}
}

// TestImageWithoutSpecialFiles: an image made before special files were
// part of the format (no IncompatSpecialFiles) takes regular files from
// Mknod, and refuses the rest with EOPNOTSUPP rather than writing records
// an older holefs would call damaged.
func TestImageWithoutSpecialFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	if _, err := meta.Create(dir, meta.CreateOptions{Blocks: 256, Incompat: meta.IncompatReflink}); err != nil {
		t.Fatal(err)
	}
	fsys := openImage(t, dir)
	defer fsys.Close()
	must(t, fsys.Mknod("reg", syscall.S_IFREG|0o600, 0))
	for _, mode := range []uint32{syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK} {
		wantErrno(t, fsys.Mknod("special", mode|0o600, 0), syscall.EOPNOTSUPP, "Mknod on an image without special files")
	}
	if _, err := fsys.Lstat("special"); err == nil {
		t.Error("a refused Mknod left a name")
	}
}

// TestPassthroughSpecialFiles: special files made through the FS are made
// in the backing directory (mknod(2) there), with their modes and device
// numbers; chmod reaches them; a reopen loads them back.
func TestPassthroughSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	nodes := []specialNode{specialNodes[0], specialNodes[2]} // a FIFO, a socket
	if os.Geteuid() == 0 {
		nodes = append(nodes, specialNodes[3], specialNodes[5]) // devices need CAP_MKNOD there
	}
	fsys := openPT(t, dir, holefs.Options{})
	for _, n := range nodes {
		must(t, fsys.Mknod(n.name, n.mode, n.dev))
	}
	must(t, fsys.Chmod("fifo", 0o604))
	nodes[0].mode, nodes[0].want = syscall.S_IFIFO|0o604, fs.ModeNamedPipe|0o604
	for _, n := range nodes {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(dir, n.name), &st))
		if st.Mode != n.mode&syscall.S_IFMT|uint32(n.want.Perm()) || st.Rdev != n.rdev {
			t.Errorf("backing %s: mode %#o rdev %#x, want %#o %#x", n.name, st.Mode, st.Rdev, n.mode&syscall.S_IFMT|uint32(n.want.Perm()), n.rdev)
		}
	}
	must(t, fsys.Close())
	fsys = openPT(t, dir, holefs.Options{})
	for _, n := range nodes {
		checkSpecial(t, fsys, n)
	}
	must(t, fsys.Remove("fifo"))
	if _, err := os.Lstat(filepath.Join(dir, "fifo")); !os.IsNotExist(err) {
		t.Errorf("backing FIFO after Remove: %v", err)
	}
}
