package holefs_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

func TestOpenFlags(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		writeAt(t, f, []byte("hello, world"), 0)
		if err := fsys.Mkdir("d", 0o755); err != nil {
			t.Fatal(err)
		}
		var err error

		// O_CREATE|O_EXCL on an existing name, file or directory.
		for _, name := range []string{"f", "d"} {
			_, err := fsys.OpenFile(name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL, 0o644)
			wantErrno(t, err, syscall.EEXIST, "O_CREATE|O_EXCL of existing "+name)
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("O_EXCL on %s: %v does not match fs.ErrExist", name, err)
			}
		}
		// Missing file, missing directory on the way.
		for _, name := range []string{"missing", "nodir/f"} {
			_, err := fsys.OpenFile(name, syscall.O_RDONLY, 0)
			wantErrno(t, err, syscall.ENOENT, "open "+name)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("open %s: %v does not match fs.ErrNotExist", name, err)
			}
		}
		_, err = fsys.OpenFile("nodir/f", syscall.O_RDWR|syscall.O_CREAT, 0o644)
		wantErrno(t, err, syscall.ENOENT, "create in a missing directory")
		_, err = fsys.OpenFile("f/x", syscall.O_RDONLY, 0)
		wantErrno(t, err, syscall.ENOTDIR, "open through a file")

		// O_CREATE without O_EXCL opens the existing file untouched.
		g := openFile(t, fsys, "f", syscall.O_RDWR|syscall.O_CREAT)
		if got := string(contents(t, g)); got != "hello, world" {
			t.Errorf("O_CREATE of existing file: content %q", got)
		}
		// O_EXCL creates a new file.
		e := openFile(t, fsys, "excl", syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL)
		if size(t, e) != 0 {
			t.Errorf("new file size %d", size(t, e))
		}

		// O_TRUNC empties the file for every handle.
		tr := openFile(t, fsys, "f", syscall.O_WRONLY|syscall.O_TRUNC)
		if size(t, tr) != 0 || size(t, g) != 0 {
			t.Errorf("after O_TRUNC: sizes %d, %d", size(t, tr), size(t, g))
		}
		if n, err := g.ReadAt(make([]byte, 4), 0); n != 0 || err != io.EOF {
			t.Errorf("read after O_TRUNC = %d, %v", n, err)
		}

		// O_APPEND: Write goes to the end whatever the position.
		writeAt(t, g, []byte("0123456789"), 0)
		a := openFile(t, fsys, "f", syscall.O_WRONLY|syscall.O_APPEND)
		for _, s := range []string{"ab", "cd"} {
			if _, err := a.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if n, err := a.Write([]byte(s)); n != 2 || err != nil {
				t.Fatalf("append Write = %d, %v", n, err)
			}
		}
		if got := string(contents(t, g)); got != "0123456789abcd" {
			t.Errorf("after appends: %q", got)
		}
		if pos, _ := a.Seek(0, io.SeekCurrent); pos != 14 {
			t.Errorf("position after append = %d, want 14", pos)
		}
		// WriteAt on an O_APPEND file fails, as documented (like os.File),
		// rather than writing somewhere else than asked.
		_, err = a.WriteAt([]byte("zz"), 0)
		wantErrno(t, err, syscall.EINVAL, "WriteAt on O_APPEND")
		if got := string(contents(t, g)); got != "0123456789abcd" {
			t.Errorf("after WriteAt on O_APPEND: %q", got)
		}

		// A directory opens read-only only; a file through O_RDONLY is not writable.
		for _, flag := range []int{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDWR | syscall.O_CREAT} {
			_, err := fsys.OpenFile("d", flag, 0o644)
			wantErrno(t, err, syscall.EISDIR, "open directory for writing")
		}
		r := openFile(t, fsys, "f", syscall.O_RDONLY)
		_, err = r.WriteAt([]byte("x"), 0)
		wantErrno(t, err, syscall.EBADF, "WriteAt on O_RDONLY")
		_, err = r.Write([]byte("x"))
		wantErrno(t, err, syscall.EBADF, "Write on O_RDONLY")
		_, err = tr.ReadAt(make([]byte, 1), 0)
		wantErrno(t, err, syscall.EBADF, "ReadAt on O_WRONLY")
		err = r.Truncate(0)
		wantErrno(t, err, syscall.EINVAL, "Truncate on O_RDONLY (ftruncate: EINVAL)")
		if got := string(contents(t, g)); got != "0123456789abcd" {
			t.Errorf("failed writes changed the file: %q", got)
		}

		// A closed handle is EBADF for everything, including a second Close.
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = r.ReadAt(make([]byte, 1), 0)
		wantErrno(t, err, syscall.EBADF, "ReadAt after Close")
		wantErrno(t, r.Close(), syscall.EBADF, "second Close")
		wantErrno(t, r.Sync(), syscall.EBADF, "Sync after Close")
	})
}

func TestMkdirRemove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		for _, d := range []string{"a", "a/b", "e"} {
			if err := fsys.Mkdir(d, 0o755); err != nil {
				t.Fatalf("Mkdir(%s): %v", d, err)
			}
		}
		create(t, fsys, "a/b/file").Close()
		create(t, fsys, "top").Close()

		tests := []struct {
			name  string
			op    func() error
			errno syscall.Errno // 0: must succeed
		}{
			{"mkdir existing dir", func() error { return fsys.Mkdir("a", 0o755) }, syscall.EEXIST},
			{"mkdir over file", func() error { return fsys.Mkdir("top", 0o755) }, syscall.EEXIST},
			{"mkdir root", func() error { return fsys.Mkdir("/", 0o755) }, syscall.EEXIST},
			{"mkdir missing parent", func() error { return fsys.Mkdir("x/y", 0o755) }, syscall.ENOENT},
			{"mkdir under file", func() error { return fsys.Mkdir("top/y", 0o755) }, syscall.ENOTDIR},
			{"remove non-empty dir", func() error { return fsys.Remove("a") }, syscall.ENOTEMPTY},
			{"remove missing", func() error { return fsys.Remove("nothing") }, syscall.ENOENT},
			{"remove root", func() error { return fsys.Remove("/") }, syscall.EBUSY},
			{"remove file", func() error { return fsys.Remove("a/b/file") }, 0},
			{"remove emptied dir", func() error { return fsys.Remove("a/b") }, 0},
			{"remove empty dir", func() error { return fsys.Remove("e") }, 0},
			{"remove removed", func() error { return fsys.Remove("e") }, syscall.ENOENT},
		}
		for _, tc := range tests {
			err := tc.op()
			if tc.errno == 0 {
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
				continue
			}
			if !errors.Is(err, tc.errno) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.errno)
			}
		}
		ents, err := fsys.ReadDir("/")
		if err != nil {
			t.Fatal(err)
		}
		if got := names(ents); !slices.Equal(got, []string{"a", "top"}) {
			t.Errorf("root after removes: %v", got)
		}
		// nlink of a directory: 2 + subdirectories.
		fsys.Mkdir("a/s1", 0o755)
		fsys.Mkdir("a/s2", 0o755)
		fi, _ := fsys.Stat("a")
		if n := attr(t, fi).Nlink; n != 4 {
			t.Errorf("nlink of dir with 2 subdirs = %d, want 4", n)
		}
		fsys.Remove("a/s1")
		fi, _ = fsys.Stat("a")
		if n := attr(t, fi).Nlink; n != 3 {
			t.Errorf("nlink after rmdir of one = %d, want 3", n)
		}
	})
}

func names(ents []fs.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestUnlinkOpen checks POSIX's unlink of an open file: the name goes at
// once, the handle keeps reading and writing, and the blocks are freed only
// when the last handle (or view) closes.
func TestUnlinkOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		skipSharedSpace(t, backend)
		fsys := newFS(t, holefs.Options{Backend: backend, SizeBytes: 16 << 20})
		_, _, free0 := fsys.Statfs()
		f := create(t, fsys, "f")
		data := pattern(1, 10*pg)
		writeAt(t, f, data, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		_, _, free1 := fsys.Statfs()
		if free0-free1 != 10 {
			t.Fatalf("10-page file uses %d blocks", free0-free1)
		}
		g := openFile(t, fsys, "f", syscall.O_RDONLY)
		v, err := g.Mmap(0, 10*pg, false)
		if err != nil {
			t.Fatal(err)
		}

		if err := fsys.Remove("f"); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat("f"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat after unlink: %v", err)
		}
		fi, _ := f.Stat()
		if n := attr(t, fi).Nlink; n != 0 {
			t.Errorf("nlink of unlinked open file = %d", n)
		}
		// The handle works: read and write, even allocate more.
		writeAt(t, f, []byte("more"), 10*pg)
		data = append(data, "more"...)
		checkContent(t, f, data, "unlinked file")
		dropCache(t, f)
		checkContent(t, g, data, "unlinked file from the device")
		// A new file of the same name is a different file.
		h := create(t, fsys, "f")
		if size(t, h) != 0 {
			t.Errorf("recreated file has size %d", size(t, h))
		}
		h.Close()
		fsys.Remove("f")

		_, _, free2 := fsys.Statfs()
		if free0-free2 != 11 {
			t.Errorf("unlinked open file holds %d blocks, want 11", free0-free2)
		}
		for i, c := range []func() error{f.Close, g.Close} {
			if err := c(); err != nil {
				t.Fatal(err)
			}
			if _, _, free := fsys.Statfs(); free != free2 {
				t.Errorf("blocks freed after close %d while a view still maps the file: free %d, want %d", i, free, free2)
			}
		}
		// The view still reads the file.
		buf := make([]byte, 8)
		if _, err := v.ReadAt(buf, 3*pg); err != nil || string(buf) != string(data[3*pg:3*pg+8]) {
			t.Errorf("view of unlinked file: %q, %v", buf, err)
		}
		if err := v.Unmap(); err != nil {
			t.Fatal(err)
		}
		if _, _, free := fsys.Statfs(); free != free0 {
			t.Errorf("after last close: free %d, want %d", free, free0)
		}
	})
}

func TestRename(t *testing.T) {
	type setup struct{ dirs, files []string }
	base := setup{
		dirs:  []string{"d", "d/sub", "e", "full", "full/x"},
		files: []string{"a", "b", "d/f"},
	}
	tests := []struct {
		name     string
		from, to string
		flags    uint32
		errno    syscall.Errno
		// after a success: names that must exist with the given content
		// ("dir" for a directory), and names that must not exist
		want map[string]string
		gone []string
	}{
		{name: "file to new name", from: "a", to: "c", want: map[string]string{"c": "a"}, gone: []string{"a"}},
		{name: "replace file", from: "a", to: "b", want: map[string]string{"b": "a"}, gone: []string{"a"}},
		{name: "file into dir", from: "a", to: "d/a", want: map[string]string{"d/a": "a", "d/f": "d/f"}, gone: []string{"a"}},
		{name: "dir to new name", from: "d", to: "z", want: map[string]string{"z/f": "d/f", "z/sub": "dir"}, gone: []string{"d"}},
		{name: "dir over empty dir", from: "d", to: "e", want: map[string]string{"e/f": "d/f"}, gone: []string{"d"}},
		{name: "same file", from: "a", to: "a", want: map[string]string{"a": "a"}},
		{name: "noreplace new", from: "a", to: "c", flags: holefs.RenameNoReplace, want: map[string]string{"c": "a"}, gone: []string{"a"}},
		{name: "noreplace existing", from: "a", to: "b", flags: holefs.RenameNoReplace, errno: syscall.EEXIST},
		{name: "exchange files", from: "a", to: "b", flags: holefs.RenameExchange, want: map[string]string{"a": "b", "b": "a"}},
		{name: "exchange dir and file", from: "d", to: "a", flags: holefs.RenameExchange, want: map[string]string{"d": "a", "a/f": "d/f"}},
		{name: "exchange across dirs", from: "d/f", to: "e", flags: holefs.RenameExchange, want: map[string]string{"e": "d/f", "d/f": "dir"}},
		{name: "exchange missing target", from: "a", to: "c", flags: holefs.RenameExchange, errno: syscall.ENOENT},
		{name: "both flags", from: "a", to: "b", flags: holefs.RenameExchange | holefs.RenameNoReplace, errno: syscall.EINVAL},
		{name: "unknown flag", from: "a", to: "b", flags: 1 << 5, errno: syscall.EINVAL},
		{name: "dir into itself", from: "d", to: "d/sub/d", errno: syscall.EINVAL},
		{name: "dir onto own child", from: "d", to: "d/sub", errno: syscall.EINVAL},
		{name: "exchange dir with own child", from: "d", to: "d/sub", flags: holefs.RenameExchange, errno: syscall.EINVAL},
		{name: "file over dir", from: "a", to: "e", errno: syscall.EISDIR},
		{name: "dir over non-empty dir", from: "d", to: "full", errno: syscall.ENOTEMPTY},
		{name: "dir over file", from: "d", to: "a", errno: syscall.ENOTDIR},
		{name: "missing source", from: "nothing", to: "c", errno: syscall.ENOENT},
		{name: "missing target dir", from: "a", to: "nodir/a", errno: syscall.ENOENT},
		{name: "target parent is a file", from: "a", to: "b/c", errno: syscall.ENOTDIR},
		{name: "rename root", from: "/", to: "r", errno: syscall.EBUSY},
	}
	for _, backend := range backends {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				fsys := newFS(t, holefs.Options{Backend: backend})
				for _, d := range base.dirs {
					if err := fsys.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				for _, name := range base.files {
					f := create(t, fsys, name)
					writeAt(t, f, []byte(name), 0)
					f.Close()
				}
				rootBefore, _ := fsys.Stat("/")
				err := fsys.Rename2(tc.from, tc.to, tc.flags)
				if tc.errno != 0 {
					wantErrno(t, err, tc.errno, "Rename2")
					var pe *fs.PathError
					errors.As(err, &pe)
					if pe.Op != "rename" || !strings.Contains(pe.Path, tc.from) || !strings.Contains(pe.Path, tc.to) {
						t.Errorf("PathError Op %q Path %q", pe.Op, pe.Path)
					}
					// Nothing changed.
					for _, name := range base.files {
						if got, err := fsys.ReadFile(name); err != nil || string(got) != name {
							t.Errorf("after failed rename %s reads %q, %v", name, got, err)
						}
					}
					rootAfter, _ := fsys.Stat("/")
					if attr(t, rootBefore).Nlink != attr(t, rootAfter).Nlink {
						t.Errorf("failed rename changed root nlink")
					}
					return
				}
				if err != nil {
					t.Fatalf("Rename2: %v", err)
				}
				for name, content := range tc.want {
					fi, err := fsys.Lstat(name)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					if content == "dir" {
						if !fi.IsDir() {
							t.Errorf("%s is not a directory", name)
						}
						continue
					}
					if got, err := fsys.ReadFile(name); err != nil || string(got) != content {
						t.Errorf("%s reads %q, %v; want %q", name, got, err, content)
					}
				}
				for _, name := range tc.gone {
					if _, err := fsys.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s still exists: %v", name, err)
					}
				}
				checkDirLinks(t, fsys, "/")
			})
		}
	}
}

// checkDirLinks checks that every directory's nlink is 2 plus its
// subdirectories and that ".." leads back to the parent.
func checkDirLinks(t *testing.T, fsys *holefs.FS, dir string) {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	subdirs := 0
	for _, e := range ents {
		if e.IsDir() {
			subdirs++
			sub := strings.TrimPrefix(dir+"/"+e.Name(), "//")
			up, err := fsys.Stat(sub + "/..")
			if err != nil {
				t.Fatal(err)
			}
			me, _ := fsys.Stat(dir)
			if attr(t, up).Ino != attr(t, me).Ino {
				t.Errorf("%s/.. is inode %d, want %d", sub, attr(t, up).Ino, attr(t, me).Ino)
			}
			checkDirLinks(t, fsys, sub)
		}
	}
	fi, _ := fsys.Stat(dir)
	if n := attr(t, fi).Nlink; n != uint32(2+subdirs) {
		t.Errorf("nlink of %s = %d, want %d", dir, n, 2+subdirs)
	}
}

func TestRenameOverOpenFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		skipSharedSpace(t, backend)
		fsys := newFS(t, holefs.Options{Backend: backend, SizeBytes: 16 << 20})
		_, _, free0 := fsys.Statfs()
		a := create(t, fsys, "a")
		writeAt(t, a, pattern(1, 2*pg), 0)
		b := create(t, fsys, "b")
		bdata := pattern(2, 3*pg)
		writeAt(t, b, bdata, 0)
		if err := fsys.Rename("a", "b"); err != nil {
			t.Fatal(err)
		}
		// The replaced file lives on in its handle.
		checkContent(t, b, bdata, "replaced file through its handle")
		if _, _, free := fsys.Statfs(); free0-free != 5 {
			t.Errorf("blocks in use with replaced file open: %d, want 5", free0-free)
		}
		b.Close()
		if _, _, free := fsys.Statfs(); free0-free != 2 {
			t.Errorf("blocks in use after closing replaced file: %d, want 2", free0-free)
		}
		// Rename over a closed file frees its blocks at once; a is still
		// open, so its blocks stay until its Close.
		c := create(t, fsys, "c")
		writeAt(t, c, pattern(3, 4*pg), 0)
		c.Close()
		if err := fsys.Rename("c", "b"); err != nil {
			t.Fatal(err)
		}
		if _, _, free := fsys.Statfs(); free0-free != 6 {
			t.Errorf("blocks in use after rename over an open file: %d, want 6", free0-free)
		}
		a.Close()
		if _, _, free := fsys.Statfs(); free0-free != 4 {
			t.Errorf("blocks in use after closing it: %d, want 4", free0-free)
		}
	})
}

func TestLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		writeAt(t, f, []byte("data"), 0)
		fsys.Mkdir("d", 0o755)
		nlink := func(name string) uint32 {
			t.Helper()
			fi, err := fsys.Lstat(name)
			if err != nil {
				t.Fatal(err)
			}
			return attr(t, fi).Nlink
		}
		if n := nlink("f"); n != 1 {
			t.Fatalf("nlink = %d", n)
		}
		if err := fsys.Link("f", "d/g"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Link("f", "h"); err != nil {
			t.Fatal(err)
		}
		if n := nlink("f"); n != 3 {
			t.Errorf("nlink after 2 links = %d", n)
		}
		fi1, _ := fsys.Stat("f")
		fi2, _ := fsys.Stat("d/g")
		if attr(t, fi1).Ino != attr(t, fi2).Ino {
			t.Errorf("links have different inodes")
		}
		// Writes through one name show through the other.
		writeAt(t, f, []byte("DATA"), 0)
		if got, _ := fsys.ReadFile("d/g"); string(got) != "DATA" {
			t.Errorf("d/g reads %q", got)
		}
		// A rename of one link onto another does nothing.
		if err := fsys.Rename("f", "h"); err != nil {
			t.Fatal(err)
		}
		if n := nlink("f"); n != 3 {
			t.Errorf("nlink after rename between links = %d", n)
		}
		fsys.Remove("f")
		if n := nlink("h"); n != 2 {
			t.Errorf("nlink after removing one = %d", n)
		}
		fi, _ := f.Stat()
		if n := attr(t, fi).Nlink; n != 2 {
			t.Errorf("nlink via handle = %d", n)
		}
		// Links to symlinks link the symlink itself.
		fsys.Symlink("h", "s")
		if err := fsys.Link("s", "s2"); err != nil {
			t.Fatal(err)
		}
		if fi, _ := fsys.Lstat("s2"); fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("link to symlink is %v", fi.Mode())
		}

		wantErrno(t, fsys.Link("d", "d2"), syscall.EPERM, "link of a directory")
		wantErrno(t, fsys.Link("h", "d/g"), syscall.EEXIST, "link onto existing")
		wantErrno(t, fsys.Link("nothing", "x"), syscall.ENOENT, "link of missing")
		wantErrno(t, fsys.Link("h", "nodir/x"), syscall.ENOENT, "link into missing dir")
	})
}

func TestSymlink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		fsys.Mkdir("d", 0o755)
		f := create(t, fsys, "d/f")
		writeAt(t, f, []byte("target data"), 0)
		for _, l := range [][2]string{
			{"d/f", "abs"},      // relative to the root (the link's directory)
			{"f", "d/rel"},      // relative to the link's directory
			{"../d/f", "d/up"},  // with ..
			{"/d/f", "slash"},   // absolute
			{"d", "dirlink"},    // to a directory
			{"nowhere", "dang"}, // dangling
			{"loop2", "loop1"},
			{"loop1", "loop2"},
			{"self", "self"},
		} {
			if err := fsys.Symlink(l[0], l[1]); err != nil {
				t.Fatalf("Symlink(%q, %q): %v", l[0], l[1], err)
			}
		}
		for _, name := range []string{"abs", "d/rel", "d/up", "slash", "dirlink/f", "dirlink/../d/rel", "/d/../abs"} {
			got, err := readFile(fsys, name)
			if err != nil || string(got) != "target data" {
				t.Errorf("ReadFile(%s) = %q, %v", name, got, err)
			}
		}
		if got, err := fsys.Readlink("d/up"); err != nil || got != "../d/f" {
			t.Errorf("Readlink = %q, %v", got, err)
		}
		fi, err := fsys.Lstat("abs")
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 || fi.Size() != int64(len("d/f")) || fi.Name() != "abs" {
			t.Errorf("Lstat(abs) = %v, %v", fi, err)
		}
		fi, err = fsys.Stat("abs")
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len("target data")) {
			t.Errorf("Stat(abs) = %v, %v", fi, err)
		}
		if fi, err := fsys.Stat("dirlink"); err != nil || !fi.IsDir() {
			t.Errorf("Stat(dirlink) = %v, %v", fi, err)
		}
		if fi, err := fsys.Lstat("dang"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("Lstat(dang) = %v, %v", fi, err)
		}
		_, err = fsys.Stat("dang")
		wantErrno(t, err, syscall.ENOENT, "Stat of a dangling symlink")
		for _, name := range []string{"loop1", "self", "loop1/x"} {
			_, err = fsys.Stat(name)
			wantErrno(t, err, syscall.ELOOP, "Stat "+name)
			_, err = fsys.OpenFile(name, syscall.O_RDONLY, 0)
			wantErrno(t, err, syscall.ELOOP, "open "+name)
		}
		_, err = fsys.Readlink("d/f")
		wantErrno(t, err, syscall.EINVAL, "Readlink of a file")
		wantErrno(t, fsys.Symlink("x", "abs"), syscall.EEXIST, "Symlink onto existing")
		wantErrno(t, fsys.Symlink("", "empty"), syscall.ENOENT, "Symlink with empty target")
		// Removing a symlink removes the link, not the target; a symlink to
		// a directory is removed like a file.
		if err := fsys.Remove("dirlink"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Remove("abs"); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat("d/f"); err != nil {
			t.Errorf("target gone with its symlink: %v", err)
		}
		// 40 links in a chain resolve; 41 do not (Linux's MAXSYMLINKS).
		prev := "d/f"
		for i := range 41 {
			name := "chain" + string(rune('A'+i/26)) + string(rune('a'+i%26))
			fsys.Symlink(prev, name)
			_, err := fsys.Stat(name)
			if i < 40 && err != nil {
				t.Fatalf("chain of %d links: %v", i+1, err)
			}
			if i == 40 {
				wantErrno(t, err, syscall.ELOOP, "chain of 41 links")
			}
			prev = name
		}
	})
}

func TestNameTooLong(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	ok := strings.Repeat("n", 255)
	long := strings.Repeat("n", 256)
	create(t, fsys, ok).Close()
	if _, err := fsys.Stat(ok); err != nil {
		t.Errorf("255-byte name: %v", err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"create", func() error { _, err := fsys.Create(long); return err }},
		{"open", func() error { _, err := fsys.OpenFile(long, syscall.O_RDONLY, 0); return err }},
		{"stat", func() error { _, err := fsys.Stat(long + "/x"); return err }},
		{"mkdir", func() error { return fsys.Mkdir(long, 0o755) }},
		{"symlink", func() error { return fsys.Symlink("x", long) }},
		{"rename", func() error { return fsys.Rename(ok, long) }},
		{"link", func() error { return fsys.Link(ok, long) }},
		{"symlink target", func() error { return fsys.Symlink(strings.Repeat("a/", 2048), "s") }},
	}
	for _, tc := range tests {
		wantErrno(t, tc.op(), syscall.ENAMETOOLONG, tc.name)
	}
}

func TestReadDirSorted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		fsys.Mkdir("d", 0o755)
		want := []string{"A", "B", "a", "b10", "b2", "dir", "z"}
		for _, i := range []int{2, 0, 4, 3, 1} {
			create(t, fsys, "d/"+want[i]).Close()
		}
		if err := fsys.Mkdir("d/dir", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Symlink("a", "d/z"); err != nil {
			t.Fatal(err)
		}
		// Remove one in the middle and put it back, to catch a cached order.
		fsys.Remove("d/a")
		create(t, fsys, "d/a").Close()
		ents, err := fsys.ReadDir("d")
		if err != nil {
			t.Fatal(err)
		}
		if got := names(ents); !slices.Equal(got, want) {
			t.Fatalf("ReadDir = %v, want %v", got, want)
		}
		for _, e := range ents {
			wantDir := e.Name() == "dir"
			wantLink := e.Name() == "z"
			if e.IsDir() != wantDir || (e.Type()&fs.ModeSymlink != 0) != wantLink {
				t.Errorf("%s: type %v", e.Name(), e.Type())
			}
			info, err := e.Info()
			if err != nil || info.Name() != e.Name() || info.Mode().Type() != e.Type() {
				t.Errorf("%s: Info() = %v, %v", e.Name(), info, err)
			}
		}
		if info, _ := ents[5].Info(); info.Mode().Perm() != 0o700 {
			t.Errorf("dir perm %v", info.Mode().Perm())
		}
		// ReadDir of a file or a missing dir.
		_, err = fsys.ReadDir("d/a")
		wantErrno(t, err, syscall.ENOTDIR, "ReadDir of a file")
		_, err = fsys.ReadDir("nothing")
		wantErrno(t, err, syscall.ENOENT, "ReadDir of a missing dir")

		// File.ReadDir in chunks of 3, then io.EOF.
		d, err := fsys.Open("d")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rd := d.(fs.ReadDirFile)
		var got []string
		for {
			ents, err := rd.ReadDir(3)
			if err == io.EOF {
				if len(ents) != 0 {
					t.Errorf("ReadDir(3) returned %d entries with io.EOF", len(ents))
				}
				break
			}
			if err != nil || len(ents) == 0 || len(ents) > 3 {
				t.Fatalf("ReadDir(3) = %d entries, %v", len(ents), err)
			}
			got = append(got, names(ents)...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("chunked ReadDir = %v, want %v", got, want)
		}
	})
}

// TestStatBlocks checks st_blocks: 512-byte units of the blocks the file
// owns, growing with written data and fallocate and shrinking with punch
// and truncate; a sparse file's blocks count only what is backed.
func TestStatBlocks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		blocks := func() int64 {
			t.Helper()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			return attr(t, fi).Blocks
		}
		steps := []struct {
			name string
			op   func() error
			want int64 // 512-byte units
		}{
			{"empty", func() error { return nil }, 0},
			{"write 1 byte", func() error { _, err := f.WriteAt([]byte{1}, 0); return err }, 8},
			{"write 2 pages", func() error { _, err := f.WriteAt(pattern(1, 2*pg), pg); return err }, 24},
			{"sparse write far away", func() error { _, err := f.WriteAt([]byte{1}, 100*pg+5); return err }, 32},
			{"sync changes nothing", f.Sync, 32},
			{"punch page 1", func() error { return f.Fallocate(punch, pg, pg) }, 24},
			{"punch partial pages only", func() error { return f.Fallocate(punch, 10, 100) }, 24},
			{"fallocate 4 pages keep size", func() error { return f.Fallocate(keep, 200*pg, 4*pg) }, 56},
			{"truncate to 2 pages", func() error { return f.Truncate(2*pg - 1) }, 8},
			{"truncate up", func() error { return f.Truncate(50 * pg) }, 8},
		}
		for _, s := range steps {
			if err := s.op(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := blocks(); got != s.want {
				t.Errorf("after %s: Blocks = %d, want %d", s.name, got, s.want)
			}
		}
		if size(t, f) != 50*pg {
			t.Errorf("size %d", size(t, f))
		}
	})
}

// TestPathErrors checks that failing calls return *fs.PathError with the
// right Op and Path, wrapping the errno Linux would return.
func TestPathErrors(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	fsys.Mkdir("d", 0o755)
	f := create(t, fsys, "d/f")
	writeAt(t, f, []byte("x"), 0)
	ro := openFile(t, fsys, "d/f", syscall.O_RDONLY)
	dir, err := fsys.OpenFile("d", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	tests := []struct {
		call  string
		fn    func() error
		op    string
		path  string
		errno syscall.Errno
	}{
		{"open missing", func() error { _, err := fsys.OpenFile("d/nope", syscall.O_RDONLY, 0); return err }, "open", "d/nope", syscall.ENOENT},
		{"create excl", func() error {
			_, err := fsys.OpenFile("d/f", syscall.O_CREAT|syscall.O_EXCL|syscall.O_RDWR, 0o644)
			return err
		}, "open", "d/f", syscall.EEXIST},
		{"open dir rw", func() error { _, err := fsys.OpenFile("d", syscall.O_RDWR, 0); return err }, "open", "d", syscall.EISDIR},
		{"mkdir", func() error { return fsys.Mkdir("d", 0o755) }, "mkdir", "d", syscall.EEXIST},
		{"remove", func() error { return fsys.Remove("d") }, "remove", "d", syscall.ENOTEMPTY},
		{"stat", func() error { _, err := fsys.Stat("d/f/g"); return err }, "stat", "d/f/g", syscall.ENOTDIR},
		{"lstat", func() error { _, err := fsys.Lstat("zz"); return err }, "lstat", "zz", syscall.ENOENT},
		{"readlink", func() error { _, err := fsys.Readlink("d/f"); return err }, "readlink", "d/f", syscall.EINVAL},
		{"readdir", func() error { _, err := fsys.ReadDir("d/f"); return err }, "readdir", "d/f", syscall.ENOTDIR},
		{"symlink", func() error { return fsys.Symlink("t", "d/f") }, "symlink", "d/f", syscall.EEXIST},
		{"write ro", func() error { _, err := ro.WriteAt([]byte("y"), 0); return err }, "write", "d/f", syscall.EBADF},
		{"read negative", func() error { _, err := f.ReadAt(make([]byte, 1), -1); return err }, "read", "d/f", syscall.EINVAL},
		{"write negative", func() error { _, err := f.WriteAt([]byte("y"), -1); return err }, "write", "d/f", syscall.EINVAL},
		{"write too big", func() error { _, err := f.WriteAt([]byte("y"), 1<<42); return err }, "write", "d/f", syscall.EFBIG},
		{"read dir", func() error { _, err := dir.ReadAt(make([]byte, 1), 0); return err }, "read", "d", syscall.EISDIR},
		{"readdir of file", func() error { _, err := f.ReadDir(-1); return err }, "readdir", "d/f", syscall.ENOTDIR},
		{"truncate negative", func() error { return f.Truncate(-1) }, "truncate", "d/f", syscall.EINVAL},
		{"truncate too big", func() error { return f.Truncate(1<<42 + 1) }, "truncate", "d/f", syscall.EFBIG},
		{"truncate dir", func() error { return dir.Truncate(0) }, "truncate", "d", syscall.EINVAL},
		{"fallocate ro", func() error { return ro.Fallocate(0, 0, 1) }, "fallocate", "d/f", syscall.EBADF},
		{"fadvise bad", func() error { return f.Fadvise(0, 0, 99) }, "fadvise", "d/f", syscall.EINVAL},
		{"seek negative", func() error { _, err := f.Seek(-1, io.SeekStart); return err }, "seek", "d/f", syscall.EINVAL},
		{"seek data past EOF", func() error { _, err := f.Seek(1, holefs.SeekData); return err }, "seek", "d/f", syscall.ENXIO},
		{"mmap unaligned", func() error { _, err := f.Mmap(1, pg, false); return err }, "mmap", "d/f", syscall.EINVAL},
		{"mmap writable ro", func() error { _, err := ro.Mmap(0, pg, true); return err }, "mmap", "d/f", syscall.EACCES},
		{"clone unaligned", func() error { return f.Clone(f, 1, pg, pg) }, "clone", "d/f", syscall.EINVAL},
		{"copy overlap", func() error { _, err := f.CopyRange(f, 0, 0, 1); return err }, "copy_file_range", "d/f", syscall.EINVAL},
		{"missing image", func() error { _, err := holefs.Open("/nonexistent/img", holefs.Options{}); return err }, "open", "/nonexistent/img", syscall.ENOENT},
		{"bad backend", func() error { _, err := holefs.Open("", holefs.Options{Backend: "zfs"}); return err }, "open", "(memory)", syscall.EINVAL},
	}
	for _, tc := range tests {
		err := tc.fn()
		wantErrno(t, err, tc.errno, tc.call)
		var pe *fs.PathError
		errors.As(err, &pe)
		if pe.Op != tc.op || pe.Path != tc.path {
			t.Errorf("%s: Op %q Path %q, want %q %q", tc.call, pe.Op, pe.Path, tc.op, tc.path)
		}
		// The errno is what errors.As finds: callers switch on it.
		var errno syscall.Errno
		if !errors.As(err, &errno) || errno != tc.errno {
			t.Errorf("%s: errors.As(Errno) = %v", tc.call, errno)
		}
	}
}

// readFile reads a file by any path (FS.ReadFile takes only io/fs paths).
func readFile(fsys *holefs.FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// TestDotNames checks paths whose last component is ".", ".." or the root:
// Linux resolves them in the path walk and refuses to create, remove or
// rename them, each syscall with its own errno; "file/." is ENOTDIR. None
// may act on the parent lexically ("a/." is not "a").
func TestDotNames(t *testing.T) {
	type op struct {
		name string
		fn   func(fsys *holefs.FS, p string) error
	}
	ops := []op{
		{"create", func(fsys *holefs.FS, p string) error {
			_, err := fsys.OpenFile(p, syscall.O_RDWR|syscall.O_CREAT, 0o644)
			return err
		}},
		{"mkdir", func(fsys *holefs.FS, p string) error { return fsys.Mkdir(p, 0o755) }},
		{"remove", func(fsys *holefs.FS, p string) error { return fsys.Remove(p) }},
		{"rename from", func(fsys *holefs.FS, p string) error { return fsys.Rename(p, "new") }},
		{"rename onto", func(fsys *holefs.FS, p string) error { return fsys.Rename("e", p) }},
		{"rename noreplace onto", func(fsys *holefs.FS, p string) error { return fsys.Rename2("e", p, holefs.RenameNoReplace) }},
		{"symlink", func(fsys *holefs.FS, p string) error { return fsys.Symlink("x", p) }},
		{"link", func(fsys *holefs.FS, p string) error { return fsys.Link("f", p) }},
	}
	// want[path][op]
	want := map[string][]syscall.Errno{
		//          create         mkdir           remove             rename from    rename onto    noreplace onto  symlink         link
		"a/.":  {syscall.EISDIR, syscall.EEXIST, syscall.EINVAL, syscall.EBUSY, syscall.EBUSY, syscall.EEXIST, syscall.EEXIST, syscall.EEXIST},
		".":    {syscall.EISDIR, syscall.EEXIST, syscall.EINVAL, syscall.EBUSY, syscall.EBUSY, syscall.EEXIST, syscall.EEXIST, syscall.EEXIST},
		"a/..": {syscall.EISDIR, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EBUSY, syscall.EBUSY, syscall.EEXIST, syscall.EEXIST, syscall.EEXIST},
		"/":    {syscall.EISDIR, syscall.EEXIST, syscall.EBUSY, syscall.EBUSY, syscall.EBUSY, syscall.EEXIST, syscall.EEXIST, syscall.EEXIST},
		"f/.":  {syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR},
		"f/..": {syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR, syscall.ENOTDIR},
	}
	for p, errs := range want {
		for i, o := range ops {
			fsys := newFS(t, holefs.Options{})
			fsys.Mkdir("a", 0o755)
			fsys.Mkdir("e", 0o755)
			create(t, fsys, "f").Close()
			err := o.fn(fsys, p)
			wantErrno(t, err, errs[i], o.name+" "+p)
			ents, _ := fsys.ReadDir("/")
			if got := names(ents); !slices.Equal(got, []string{"a", "e", "f"}) {
				t.Errorf("%s %q changed the tree: %v", o.name, p, got)
			}
		}
	}
	// Lookups resolve the dots.
	fsys := newFS(t, holefs.Options{})
	fsys.Mkdir("a", 0o755)
	create(t, fsys, "f").Close()
	for _, p := range []string{"a/.", "a/..", ".", "a/./../a", "/./a/"} {
		if fi, err := fsys.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("Stat(%q) = %v, %v", p, fi, err)
		}
	}
	for _, p := range []string{"f/.", "f/..", "f/./x"} {
		_, err := fsys.Stat(p)
		wantErrno(t, err, syscall.ENOTDIR, "Stat "+p)
	}
}

// TestTrailingSlashAndClosedStat: "f/" names a directory or nothing (ENOTDIR
// for a file, EISDIR when creating), and Stat of a closed file is EBADF.
func TestTrailingSlashAndClosedStat(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	f := create(t, fsys, "f")
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := fsys.Stat("f/")
	wantErrno(t, err, syscall.ENOTDIR, "Stat(f/)")
	if _, err := fsys.Stat("d/"); err != nil {
		t.Fatalf("Stat(d/) = %v", err)
	}
	_, err = fsys.OpenFile("g/", os.O_RDWR|os.O_CREATE, 0o644)
	wantErrno(t, err, syscall.EISDIR, "OpenFile(g/, O_CREATE)")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = f.Stat()
	wantErrno(t, err, syscall.EBADF, "Stat of a closed file")
}

func TestChmodChtimes(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	create(t, fsys, "f").Close()
	if err := fsys.Chmod("f", 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2021, 6, 7, 16, 52, 10, 0, time.UTC)
	if err := fsys.Chtimes("f", time.Time{}, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := fsys.Stat("f")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mode %v mtime %v, want -rw------- %v", fi.Mode(), fi.ModTime(), mtime)
	}
	wantErrno(t, fsys.Chmod("missing", 0o600), syscall.ENOENT, "Chmod(missing)")
}

// TestDirectoryHandleEdges: a directory cursor past the end reads nothing
// (it must not panic), fsync of a directory succeeds, readahead of zero
// bytes reads nothing.
func TestDirectoryHandleEdges(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	if err := fsys.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	create(t, fsys, "d/a").Close()
	d, err := fsys.OpenFile("d", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if ents, err := d.ReadDir(-1); err != nil || len(ents) != 0 {
		t.Fatalf("ReadDir past the end = %v, %v; want nothing", ents, err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync of a directory = %v, want nil", err)
	}
	f := create(t, fsys, "f")
	writeAt(t, f, pattern(5, 4*pg), 0)
	dropCache(t, f)
	before := fsys.CacheStats().FillPages
	if err := f.Readahead(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := fsys.CacheStats().FillPages - before; got != 0 {
		t.Fatalf("readahead of 0 bytes filled %d pages", got)
	}
}

// TestNameResolutionErrnos checks the library's open and namespace calls
// resolve names as Linux does (the full table, checked against tmpfs, is
// vfs's TestNamespaceErrnos): O_NOFOLLOW, O_DIRECTORY, O_CREATE through a
// dangling symlink, trailing slashes, PATH_MAX.
func TestNameResolutionErrnos(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		create(t, fsys, "f")
		for _, err := range []error{fsys.Mkdir("d", 0o755), fsys.Symlink("f", "l"), fsys.Symlink("nowhere", "dangling")} {
			if err != nil {
				t.Fatal(err)
			}
		}
		open := func(name string, flag int) error {
			f, err := fsys.OpenFile(name, flag, 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}
		tests := []struct {
			name string
			err  error
			want syscall.Errno
		}{
			{"O_NOFOLLOW on a symlink", open("l", syscall.O_RDONLY|syscall.O_NOFOLLOW), syscall.ELOOP},
			{"O_NOFOLLOW|O_CREATE on a symlink", open("/l", syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW), syscall.ELOOP},
			{"O_DIRECTORY on a file", open("f", syscall.O_RDONLY|syscall.O_DIRECTORY), syscall.ENOTDIR},
			{"O_CREATE|O_DIRECTORY", open("g", syscall.O_RDONLY|syscall.O_CREAT|syscall.O_DIRECTORY), syscall.EINVAL},
			{"O_CREATE|O_EXCL on a dangling symlink", open("dangling", syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL), syscall.EEXIST},
			{"path of PATH_MAX", open(strings.Repeat("d/../", 820)+"f", syscall.O_RDONLY), syscall.ENAMETOOLONG},
			{"path of PATH_MAX with its leading slash", open("/"+strings.Repeat("d/../", 818)+"fffff", syscall.O_RDONLY), syscall.ENAMETOOLONG},
			{"path of PATH_MAX-1 with its leading slash", open("/"+strings.Repeat("d/../", 818)+"ffff", syscall.O_RDONLY), syscall.ENOENT},
			{"remove file with trailing slash", fsys.Remove("f/"), syscall.ENOTDIR},
			{"rename file to trailing slash", fsys.Rename("f", "x/"), syscall.ENOTDIR},
			{"link to trailing slash", fsys.Link("f", "x/"), syscall.ENOENT},
			{"link dir over existing", fsys.Link("d", "f"), syscall.EEXIST},
		}
		for _, tc := range tests {
			wantErrno(t, tc.err, tc.want, tc.name)
		}
		// O_CREATE without O_EXCL through a dangling symlink creates its
		// target, as open(2) does.
		if err := open("dangling", syscall.O_RDWR|syscall.O_CREAT); err != nil {
			t.Fatalf("O_CREATE through a dangling symlink: %v", err)
		}
		if fi, err := fsys.Lstat("nowhere"); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("target of the dangling symlink after O_CREATE: %v, %v", fi, err)
		}
		// O_RDONLY|O_TRUNC truncates, as on Linux; of a directory it is
		// EISDIR.
		writeFile(t, fsys, "f", []byte("data"), false)
		if err := open("f", syscall.O_RDONLY|syscall.O_TRUNC); err != nil {
			t.Fatal(err)
		}
		if fi, err := fsys.Stat("f"); err != nil || fi.Size() != 0 {
			t.Errorf("after O_RDONLY|O_TRUNC: %v, %v; want size 0", fi, err)
		}
		wantErrno(t, open("d", syscall.O_RDONLY|syscall.O_TRUNC), syscall.EISDIR, "O_TRUNC of a directory")
	})
}

// TestRenameWhiteout: Rename2 with RenameWhiteout moves the file and
// leaves a whiteout (a character device 0:0, mode 0) at the old name,
// kept by an image across a reopen; a passthrough backend refuses it
// (EINVAL), and an image without special files (EOPNOTSUPP), both before
// moving anything.
func TestRenameWhiteout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		writeFile(t, fsys, "f", []byte("data"), false)
		err := fsys.Rename2("f", "g", holefs.RenameWhiteout)
		if backend == holefs.BackendPassthrough {
			wantErrno(t, err, syscall.EINVAL, "whiteout on passthrough")
			if _, err := fsys.Stat("f"); err != nil {
				t.Errorf("a refused whiteout rename moved the file: %v", err)
			}
			return
		}
		must(t, err)
		checkSpecial(t, fsys, specialNode{name: "f", mode: syscall.S_IFCHR, want: fs.ModeDevice | fs.ModeCharDevice})
		if got, err := fsys.ReadFile("g"); err != nil || string(got) != "data" {
			t.Errorf("renamed file: %q, %v", got, err)
		}
	})

	t.Run("image", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "img")
		must(t, holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 1 << 20}))
		fsys := openImage(t, dir)
		writeFile(t, fsys, "f", []byte("data"), false)
		must(t, fsys.Rename2("f", "g", holefs.RenameWhiteout))
		must(t, fsys.Close())
		fsys = openImage(t, dir)
		defer fsys.Close()
		checkSpecial(t, fsys, specialNode{name: "f", mode: syscall.S_IFCHR, want: fs.ModeDevice | fs.ModeCharDevice})
	})

	t.Run("image without special files", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "img")
		if _, err := meta.Create(dir, meta.CreateOptions{Blocks: 256, Incompat: meta.IncompatReflink}); err != nil {
			t.Fatal(err)
		}
		fsys := openImage(t, dir)
		defer fsys.Close()
		writeFile(t, fsys, "f", []byte("data"), false)
		wantErrno(t, fsys.Rename2("f", "g", holefs.RenameWhiteout), syscall.EOPNOTSUPP, "whiteout on an image without special files")
		if _, err := fsys.Stat("f"); err != nil {
			t.Errorf("a refused whiteout rename moved the file: %v", err)
		}
	})
}
