package holefs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// openPT opens a passthrough filesystem on dir, closed when the test ends.
func openPT(t *testing.T, dir string, opts holefs.Options) *holefs.FS {
	t.Helper()
	opts.Backend, opts.BackingDir = holefs.BackendPassthrough, dir
	fsys, err := holefs.Open("", opts)
	if err != nil {
		t.Fatalf("Open(passthrough %s): %v", dir, err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

func readBacking(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read backing file: %v", err)
	}
	return b
}

// TestPassthroughLoad opens a directory that already holds a tree: files,
// a directory, a symlink, a hard link and a FIFO.
func TestPassthroughLoad(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must(t, os.WriteFile(filepath.Join(dir, "a"), []byte("hello"), 0o640))
	must(t, os.Chtimes(filepath.Join(dir, "a"), mtime, mtime))
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o750))
	must(t, os.Symlink("../a", filepath.Join(dir, "d", "l")))
	must(t, os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "d", "h")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	fsys := openPT(t, dir, holefs.Options{})

	for _, tc := range []struct {
		name, content string
		mode          fs.FileMode
		nlink         uint32
	}{
		{"a", "hello", 0o640, 2},
		{"d/h", "hello", 0o640, 2},
		{"d/l", "hello", 0o640, 2}, // followed
	} {
		b, err := fsys.ReadFile(tc.name)
		if err != nil || string(b) != tc.content {
			t.Errorf("ReadFile(%s) = %q, %v", tc.name, b, err)
		}
		fi, err := fsys.Stat(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode || attr(t, fi).Nlink != tc.nlink || !fi.ModTime().Equal(mtime) {
			t.Errorf("Stat(%s): mode %v nlink %d mtime %v", tc.name, fi.Mode(), attr(t, fi).Nlink, fi.ModTime())
		}
	}
	a, _ := fsys.Stat("a")
	h, _ := fsys.Stat("d/h")
	if attr(t, a).Ino != attr(t, h).Ino {
		t.Error("hard links loaded as two inodes")
	}
	if target, err := fsys.Readlink("d/l"); err != nil || target != "../a" {
		t.Errorf("Readlink = %q, %v", target, err)
	}
	if fi, err := fsys.Stat("d"); err != nil || fi.Mode() != fs.ModeDir|0o750 || attr(t, fi).Nlink != 2 {
		t.Errorf("Stat(d) = %v, %v", fi, err)
	}
	ents, err := fsys.ReadDir(".")
	if err != nil || fmt.Sprint(names(ents)) != "[a d fifo]" {
		t.Errorf("ReadDir(.) = %v, %v", names(ents), err)
	}
	if fi, err := fsys.Lstat("fifo"); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("Lstat(fifo) = %v, %v", fi, err)
	}
}

// TestPassthroughMirror: every namespace and attribute change made through
// the FS is made in the backing directory, under the same names.
func TestPassthroughMirror(t *testing.T) {
	dir := t.TempDir()
	fsys := openPT(t, dir, holefs.Options{})
	bpath := func(name string) string { return filepath.Join(dir, name) }
	mtime := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		op    func() error
		check func() error
	}{
		{"create and write", func() error {
			f, err := fsys.OpenFile("f", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o604)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte("data"), 5000); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			return f.Close()
		}, func() error {
			fi, err := os.Stat(bpath("f"))
			if err != nil || fi.Mode() != 0o604 || fi.Size() != 5004 {
				return fmt.Errorf("backing f: %v, %v", fi, err)
			}
			if b := readBacking(t, bpath("f")); string(b[5000:]) != "data" || bytes.ContainsFunc(b[:5000], func(r rune) bool { return r != 0 }) {
				return fmt.Errorf("backing f holds %q", b)
			}
			return nil
		}},
		{"mkdir", func() error { return fsys.Mkdir("d", 0o711) }, func() error {
			fi, err := os.Stat(bpath("d"))
			if err != nil || fi.Mode() != fs.ModeDir|0o711 {
				return fmt.Errorf("backing d: %v, %v", fi, err)
			}
			return nil
		}},
		{"symlink", func() error { return fsys.Symlink("../f", "d/l") }, func() error {
			if target, err := os.Readlink(bpath("d/l")); err != nil || target != "../f" {
				return fmt.Errorf("backing d/l -> %q, %v", target, err)
			}
			return nil
		}},
		{"link", func() error { return fsys.Link("f", "d/f2") }, func() error {
			a, _ := os.Stat(bpath("f"))
			b, err := os.Stat(bpath("d/f2"))
			if err != nil || !os.SameFile(a, b) {
				return fmt.Errorf("backing d/f2 is not f: %v", err)
			}
			return nil
		}},
		{"rename into a directory", func() error { return fsys.Rename("f", "d/g") }, func() error {
			if _, err := os.Lstat(bpath("f")); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("backing f still there: %v", err)
			}
			_, err := os.Stat(bpath("d/g"))
			return err
		}},
		{"rename over a file", func() error { return fsys.Rename("d/f2", "d/g") }, func() error {
			// Two names of one file: nothing happens, as POSIX says.
			_, err1 := os.Stat(bpath("d/f2"))
			_, err2 := os.Stat(bpath("d/g"))
			return errors.Join(err1, err2)
		}},
		{"exchange", func() error { return fsys.Rename2("d/l", "d/g", holefs.RenameExchange) }, func() error {
			if target, err := os.Readlink(bpath("d/g")); err != nil || target != "../f" {
				return fmt.Errorf("backing d/g -> %q, %v", target, err)
			}
			fi, err := os.Lstat(bpath("d/l"))
			if err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("backing d/l: %v, %v", fi, err)
			}
			return nil
		}},
		{"chmod", func() error { return fsys.Chmod("d/l", 0o600) }, func() error {
			if fi, err := os.Lstat(bpath("d/l")); err != nil || fi.Mode() != 0o600 {
				return fmt.Errorf("backing d/l: %v, %v", fi, err)
			}
			return nil
		}},
		{"chtimes after a write", func() error {
			f, err := fsys.OpenFile("d/l", os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("x"), 0); err != nil {
				return err
			}
			// The dirty page is written back first: its writeback would
			// move the time again.
			return fsys.Chtimes("d/l", time.Time{}, mtime)
		}, func() error {
			if fi, err := os.Lstat(bpath("d/l")); err != nil || !fi.ModTime().Equal(mtime) {
				return fmt.Errorf("backing d/l: mtime %v, %v", fi.ModTime(), err)
			}
			return nil
		}},
		{"remove", func() error { return errors.Join(fsys.Remove("d/g"), fsys.Remove("d/l"), fsys.Remove("d/f2")) }, func() error {
			ents, err := os.ReadDir(bpath("d"))
			if err != nil || len(ents) != 0 {
				return fmt.Errorf("backing d holds %v, %v", ents, err)
			}
			return nil
		}},
		{"rmdir", func() error { return fsys.Remove("d") }, func() error {
			if _, err := os.Lstat(bpath("d")); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("backing d still there: %v", err)
			}
			return nil
		}},
	} {
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := tc.check(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

// TestPassthroughBackingErrors: an operation the backing filesystem
// refuses fails with its errno, and changes nothing in either tree.
func TestPassthroughBackingErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outside func(dir string) error // the backing directory changed behind the FS
		op      func(fsys *holefs.FS) error
		errno   syscall.Errno
		names   string // the FS's root listing after
	}{
		{"create over an outside file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) },
			func(fsys *holefs.FS) error { _, err := fsys.OpenFile("new", os.O_RDWR|os.O_CREATE, 0o644); return err },
			syscall.EEXIST, "[d f]"},
		{"mkdir over an outside file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) },
			func(fsys *holefs.FS) error { return fsys.Mkdir("new", 0o755) },
			syscall.EEXIST, "[d f]"},
		{"rename onto an outside file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) },
			func(fsys *holefs.FS) error { return fsys.Rename("f", "new") },
			syscall.EEXIST, "[d f]"},
		{"rmdir of a directory holding an outside file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o644) },
			func(fsys *holefs.FS) error { return fsys.Remove("d") },
			syscall.ENOTEMPTY, "[d f]"},
		{"unlink of an entry replaced from outside", func(dir string) error {
			return errors.Join(os.Remove(filepath.Join(dir, "f")), os.WriteFile(filepath.Join(dir, "f"), []byte("theirs"), 0o644))
		}, func(fsys *holefs.FS) error { return fsys.Remove("f") },
			syscall.ESTALE, "[d f]"},
		{"rename of an entry replaced from outside", func(dir string) error {
			return errors.Join(os.Remove(filepath.Join(dir, "f")), os.WriteFile(filepath.Join(dir, "f"), []byte("theirs"), 0o644))
		}, func(fsys *holefs.FS) error { return fsys.Rename("f", "g") },
			syscall.ESTALE, "[d f]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("ours"), 0o644))
			must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
			fsys := openPT(t, dir, holefs.Options{})
			must(t, tc.outside(dir))
			before := backingTree(t, dir)
			wantErrno(t, tc.op(fsys), tc.errno, tc.name)
			if ents, err := fsys.ReadDir("."); err != nil || fmt.Sprint(names(ents)) != tc.names {
				t.Errorf("the FS's root after: %v, %v; want %s", names(ents), err, tc.names)
			}
			if after := backingTree(t, dir); after != before {
				t.Errorf("backing tree changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// backingTree describes a backing directory: every path with its inode
// and content.
func backingTree(t *testing.T, dir string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%s:%d", p[len(dir):], fi.Sys().(*syscall.Stat_t).Ino)
		if fi.Mode().IsRegular() {
			fmt.Fprintf(&sb, "=%q", readBacking(t, p))
		}
		sb.WriteString(" ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// TestPassthroughMountErrors uses a small tmpfs mounted inside the backing
// directory (root only): a write that does not fit fails with ENOSPC
// before anything is written, and a rename across the mount with EXDEV.
func TestPassthroughMountErrors(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	must(t, os.Mkdir(small, 0o755))
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	fsys := openPT(t, dir, holefs.Options{})
	f, err := fsys.Create("small/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.WriteAt(make([]byte, 1<<20), 0)
	wantErrno(t, err, syscall.ENOSPC, "1 MiB write into a 64 KiB tmpfs")
	if n != 0 || size(t, f) != 0 {
		t.Errorf("failed write wrote %d bytes, size %d", n, size(t, f))
	}
	writeAt(t, f, []byte("fits"), 0)
	wantErrno(t, fsys.Rename("small/f", "f"), syscall.EXDEV, "rename across the mount")
	if _, err := fsys.Stat("small/f"); err != nil {
		t.Errorf("after EXDEV: %v", err)
	}
	if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after EXDEV, f: %v", err)
	}
	must(t, f.Sync())
	if b := readBacking(t, filepath.Join(small, "f")); string(b) != "fits" {
		t.Errorf("backing small/f = %q", b)
	}
}

// TestPassthroughImmutable: a directory the backing filesystem refuses to
// change (chattr +i, root on ext4) fails creation with EPERM, and nothing
// appears in the FS.
func TestPassthroughImmutable(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	const fsImmutableFL = 0x10 // FS_IMMUTABLE_FL of linux/fs.h
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, fsImmutableFL); err != nil {
		t.Skipf("cannot make a directory immutable (%v): needs root and ext4 or xfs", err)
	}
	// Before the temporary directory's removal, which runs last.
	t.Cleanup(func() { unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, 0) })
	fsys := openPT(t, dir, holefs.Options{})
	_, err = fsys.Create("d/f")
	wantErrno(t, err, syscall.EPERM, "create in an immutable directory")
	wantErrno(t, fsys.Mkdir("d/e", 0o755), syscall.EPERM, "mkdir in an immutable directory")
	if ents, err := fsys.ReadDir("d"); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir(d) = %v, %v", names(ents), err)
	}
}

// TestPassthroughOpenErrors covers Open's own refusals.
func TestPassthroughOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	openPT(t, dir, holefs.Options{})
	for _, tc := range []struct {
		name  string
		opts  holefs.Options
		errno syscall.Errno
	}{
		{"no directory", holefs.Options{}, syscall.EINVAL},
		{"missing directory", holefs.Options{BackingDir: filepath.Join(dir, "missing")}, syscall.ENOENT},
		{"not a directory", holefs.Options{BackingDir: file}, syscall.ENOTDIR},
		{"in use", holefs.Options{BackingDir: dir}, syscall.EBUSY},
		{"lock mode none", holefs.Options{BackingDir: t.TempDir(), LockMode: holefs.LockNone}, syscall.EINVAL},
	} {
		tc.opts.Backend = holefs.BackendPassthrough
		fsys, err := holefs.Open("", tc.opts)
		if err == nil {
			fsys.Close()
		}
		wantErrno(t, err, tc.errno, tc.name)
	}
	// An image path is not a backing directory.
	_, err := holefs.Open(dir, holefs.Options{Backend: holefs.BackendPassthrough, BackingDir: dir})
	wantErrno(t, err, syscall.EINVAL, "image path with passthrough")
}

// TestPassthroughSize: the backing file is always as long as the file,
// though writeback writes whole pages.
func TestPassthroughSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(fsys *holefs.FS, f *holefs.File) error
		size int64
	}{
		{"write ending mid-page", func(_ *holefs.FS, f *holefs.File) error { _, err := f.WriteAt([]byte("abc"), 10000); return err }, 10003},
		{"truncate up", func(_ *holefs.FS, f *holefs.File) error { return f.Truncate(3*pg + 7) }, 3*pg + 7},
		{"truncate down mid-page", func(_ *holefs.FS, f *holefs.File) error { return f.Truncate(pg + 1) }, pg + 1},
		{"allocate past EOF", func(_ *holefs.FS, f *holefs.File) error { return f.Fallocate(0, 2*pg, 5*pg+9) }, 7*pg + 9},
		{"allocate past EOF, keep size", func(_ *holefs.FS, f *holefs.File) error { return f.Fallocate(unix.FALLOC_FL_KEEP_SIZE, 2*pg, 9*pg) }, 2 * pg},
		{"punch the unwritten last page", func(_ *holefs.FS, f *holefs.File) error {
			if _, err := f.WriteAt(pattern(3, 3*pg-10), 2*pg); err != nil {
				return err
			}
			return f.Fallocate(punch, 4*pg, pg-10)
		}, 5*pg - 10},
		{"direct write past EOF", func(fsys *holefs.FS, _ *holefs.File) error {
			d, err := fsys.OpenFile("f", os.O_RDWR|syscall.O_DIRECT, 0)
			if err != nil {
				return err
			}
			defer d.Close()
			_, err = d.WriteAt(pattern(4, 2*pg), 4*pg)
			return err
		}, 6 * pg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fsys := openPT(t, dir, holefs.Options{})
			f := create(t, fsys, "f")
			writeAt(t, f, pattern(1, 2*pg), 0)
			must(t, tc.op(fsys, f))
			if got := size(t, f); got != tc.size {
				t.Fatalf("size %d, want %d", got, tc.size)
			}
			must(t, f.Sync())
			if b := readBacking(t, filepath.Join(dir, "f")); !bytes.Equal(b, contents(t, f)) {
				t.Errorf("backing file of %d bytes differs from the file's %d", len(b), tc.size)
			}
		})
	}
}

// TestPassthroughUnsupported: on tmpfs, which has no zero range, collapse
// or insert, they fail with EOPNOTSUPP before anything changes: the dirty
// pages of the range are still there.
func TestPassthroughUnsupported(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "holefs-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fsys := openPT(t, dir, holefs.Options{})
	f := create(t, fsys, "f")
	data := pattern(5, 8*pg)
	writeAt(t, f, data, 0)
	for _, mode := range []uint32{unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
		unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE} {
		wantErrno(t, f.Fallocate(mode, pg, 2*pg), syscall.EOPNOTSUPP, fmt.Sprintf("fallocate mode %#x on tmpfs", mode))
		checkContent(t, f, data, fmt.Sprintf("after refused mode %#x", mode))
	}
	must(t, f.Fallocate(punch, pg, pg))
	clear(data[pg : 2*pg])
	dropCache(t, f)
	checkContent(t, f, data, "after punch, from the backing file")
	if b := readBacking(t, filepath.Join(dir, "f")); !bytes.Equal(b, data) {
		t.Error("backing file differs")
	}
}

// TestPassthroughOutsideChange: changes made to a backing file by another
// program are seen on open and by the periodic revalidation, and the FS
// never writes its own older dirty pages over them: those are dropped and
// reported (ESTALE) at the next fsync of each handle.
func TestPassthroughOutsideChange(t *testing.T) {
	theirs := []byte("written from outside")
	outside := func(t *testing.T, dir string) {
		t.Helper()
		must(t, os.WriteFile(filepath.Join(dir, "f"), theirs, 0o644))
	}
	t.Run("open", func(t *testing.T) {
		dir := t.TempDir()
		fsys := openPT(t, dir, holefs.Options{RevalidateInterval: -1})
		f := create(t, fsys, "f")
		writeAt(t, f, pattern(1, 3*pg), 0)
		must(t, f.Sync())
		v, err := f.Mmap(0, pg, false)
		must(t, err)
		defer v.Unmap()
		buf := make([]byte, 5)
		_, err = v.ReadAt(buf, 0) // the page is cached and mapped
		must(t, err)
		outside(t, dir)
		g := openFile(t, fsys, "f", os.O_RDONLY)
		checkContent(t, g, theirs, "new handle")
		checkContent(t, f, theirs, "old handle")
		if _, err := v.ReadAt(buf, 0); err != nil || string(buf) != string(theirs[:5]) {
			t.Errorf("mapped view after revalidation: %q, %v", buf, err)
		}
		must(t, f.Sync()) // nothing was dirty: no error
	})
	t.Run("periodic", func(t *testing.T) {
		dir := t.TempDir()
		fsys := openPT(t, dir, holefs.Options{RevalidateInterval: 10 * time.Millisecond})
		f := create(t, fsys, "f")
		writeAt(t, f, pattern(1, 3*pg), 0)
		must(t, f.Sync())
		_ = contents(t, f) // cached
		outside(t, dir)
		// The periodic revalidation shrinks the file from 3 pages to
		// len(theirs) bytes at a moment of its own, so a read sized by an
		// earlier stat (contents) may see the file shrink in between: each
		// read asks for more than either size and takes what it got up to
		// EOF, whichever side of the revalidation it fell on.
		buf := make([]byte, 4*pg)
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := f.ReadAt(buf, 0)
			if err != io.EOF {
				t.Fatalf("ReadAt(%d bytes past EOF) = %d, %v; want io.EOF", len(buf), n, err)
			}
			if bytes.Equal(buf[:n], theirs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the outside change was not seen in 10 s: read %d bytes", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("dirty pages dropped and reported", func(t *testing.T) {
		dir := t.TempDir()
		fsys := openPT(t, dir, holefs.Options{RevalidateInterval: -1})
		f := create(t, fsys, "f")
		g := openFile(t, fsys, "f", os.O_RDWR)
		writeAt(t, f, pattern(1, 3*pg), 0)
		must(t, f.Sync())
		writeAt(t, f, pattern(2, pg), pg) // dirty
		outside(t, dir)
		h := openFile(t, fsys, "f", os.O_RDONLY) // revalidates
		checkContent(t, h, theirs, "after revalidation")
		for _, handle := range []*holefs.File{f, g} {
			wantErrno(t, handle.Sync(), syscall.ESTALE, "fsync after dirty pages were dropped")
			must(t, handle.Sync()) // reported once per handle
		}
		if b := readBacking(t, filepath.Join(dir, "f")); !bytes.Equal(b, theirs) {
			t.Errorf("backing file = %q, want the outside change", b)
		}
	})
	t.Run("writeback refused", func(t *testing.T) {
		dir := t.TempDir()
		fsys := openPT(t, dir, holefs.Options{RevalidateInterval: -1})
		f := create(t, fsys, "f")
		writeAt(t, f, pattern(1, 3*pg), 0)
		must(t, f.Sync())
		writeAt(t, f, pattern(2, pg), pg) // dirty
		outside(t, dir)
		wantErrno(t, f.Sync(), syscall.ESTALE, "fsync of a page older than an outside change")
		if b := readBacking(t, filepath.Join(dir, "f")); !bytes.Equal(b, theirs) {
			t.Errorf("backing file = %q: the stale page was written over the outside change", b)
		}
		g := openFile(t, fsys, "f", os.O_RDONLY)
		checkContent(t, g, theirs, "after revalidation")
	})
}

// TestPassthroughUnlinkOpen: an unlinked open file's backing file is
// unlinked at once and lives on, open, until the last handle closes; a
// rename over an open file does the same to the replaced file.
func TestPassthroughUnlinkOpen(t *testing.T) {
	dir := t.TempDir()
	fsys := openPT(t, dir, holefs.Options{})
	f := create(t, fsys, "f")
	data := pattern(1, 3*pg)
	writeAt(t, f, data, 0)
	must(t, fsys.Remove("f"))
	if _, err := os.Lstat(filepath.Join(dir, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("backing f after unlink: %v", err)
	}
	g := create(t, fsys, "g")
	writeAt(t, g, pattern(2, pg), 0)
	create(t, fsys, "h")
	must(t, fsys.Rename("h", "g"))
	writeAt(t, f, []byte("more"), 3*pg)
	data = append(data, "more"...)
	dropCache(t, f)
	checkContent(t, f, data, "unlinked file from its backing file")
	checkContent(t, g, pattern(2, pg), "replaced file from its backing file")
	if n := deletedFds(t, dir); n != 2 {
		t.Errorf("%d unlinked backing files open, want 2", n)
	}
	f.Close()
	g.Close()
	if n := deletedFds(t, dir); n != 0 {
		t.Errorf("%d unlinked backing files still open after the last close", n)
	}
}

// deletedFds counts this process's descriptors of unlinked files in dir.
func deletedFds(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil &&
			strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			n++
		}
	}
	return n
}
