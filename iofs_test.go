package holefs_test

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/holefs/holefs"
)

// buildTree makes a tree of nested directories and files of several sizes
// (empty, sub-page, multi-page, sparse) and returns the file contents.
func buildTree(t *testing.T, fsys *holefs.FS) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"top.txt":            []byte("top"),
		"empty":              nil,
		"a/one":              pattern(1, 100),
		"a/b/two":            pattern(2, 3*pg+17),
		"a/b/c/three":        pattern(3, pg),
		"a/b/c/d/e/deep":     []byte("deep"),
		"x/sparse":           nil, // filled below
		"x/y/z/big":          pattern(4, 40*pg),
		"dots/.hidden":       []byte("h"),
		"dots/name.with.ext": []byte("e"),
	}
	for _, d := range []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "x", "x/y", "x/y/z", "dots", "emptydir"} {
		if err := fsys.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		f := create(t, fsys, name)
		if data != nil {
			writeAt(t, f, data, 0)
		}
		if name == "x/sparse" {
			writeAt(t, f, []byte("end"), 10*pg)
			files[name] = append(make([]byte, 10*pg), "end"...)
		}
		f.Close()
	}
	return files
}

func TestIOFS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		files := buildTree(t, fsys)
		var expected []string
		for name := range files {
			expected = append(expected, name)
		}
		expected = append(expected, "emptydir")
		if err := fstest.TestFS(fsys, expected...); err != nil {
			t.Fatal(err)
		}
		// Through the cache and through storage.
		if err := fsys.Sync(); err != nil {
			t.Fatal(err)
		}
		var ifs fs.FS = fsys
		for name, want := range files {
			got, err := fs.ReadFile(ifs, name)
			if err != nil || string(got) != string(want) {
				t.Errorf("fs.ReadFile(%s): %d bytes, %v; want %d", name, len(got), err, len(want))
			}
			fi, err := fs.Stat(ifs, name)
			if err != nil || fi.Size() != int64(len(want)) || !fi.Mode().IsRegular() || fi.Name() != name[lastSlash(name)+1:] {
				t.Errorf("fs.Stat(%s) = %v, %v", name, fi, err)
			}
		}
		ents, err := fs.ReadDir(ifs, ".")
		if err != nil {
			t.Fatal(err)
		}
		if got := names(ents); !slices.Equal(got, []string{"a", "dots", "empty", "emptydir", "top.txt", "x"}) {
			t.Errorf("fs.ReadDir(.) = %v", got)
		}
		var walked []string
		err = fs.WalkDir(ifs, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				walked = append(walked, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(walked)
		want := slices.Sorted(func(yield func(string) bool) {
			for name := range files {
				if !yield(name) {
					return
				}
			}
		})
		if !slices.Equal(walked, want) {
			t.Errorf("WalkDir = %v, want %v", walked, want)
		}
		// io/fs rules: invalid paths are ErrInvalid; missing is ErrNotExist.
		for _, bad := range []string{"/top.txt", "a/../top.txt", "a/", "", "./a"} {
			if _, err := fsys.Open(bad); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Open(%q): %v, want fs.ErrInvalid", bad, err)
			}
			if _, err := fsys.ReadFile(bad); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("ReadFile(%q): %v, want fs.ErrInvalid", bad, err)
			}
		}
		if _, err := fs.ReadFile(ifs, "a/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile of a missing file: %v", err)
		}
		// An fs.File opened from the FS is read-only.
		f, err := fsys.Open("top.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if w, ok := f.(io.Writer); ok {
			_, err := w.Write([]byte("x"))
			wantErrno(t, err, syscall.EBADF, "write to an io/fs file")
		}
	})
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// TestOpenDirReadDirFollowsInode checks that an open directory lists the
// directory it was opened on, even after a rename moved it and another
// directory took its name (getdents(2) reads the inode, not the path).
func TestOpenDirReadDirFollowsInode(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	fsys.Mkdir("d", 0o755)
	create(t, fsys, "d/mine").Close()
	d, err := fsys.OpenFile("d", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := fsys.Rename("d", "moved"); err != nil {
		t.Fatal(err)
	}
	fsys.Mkdir("d", 0o755)
	create(t, fsys, "d/other").Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ents); !slices.Equal(got, []string{"mine"}) {
		t.Errorf("open directory lists %v after a rename, want [mine]", got)
	}
	// Removed while open: empty, not an error (Linux returns no entries).
	e, err := fsys.OpenFile("d", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fsys.Remove("d/other")
	if err := fsys.Remove("d"); err != nil {
		t.Fatal(err)
	}
	ents, err = e.ReadDir(-1)
	if err != nil || len(ents) != 0 {
		t.Errorf("ReadDir of a removed open directory = %v, %v", names(ents), err)
	}
}

// TestDotDotAfterSymlink checks that ".." after a symlink to a directory
// goes to the parent of the symlink's target, as in Linux's path walk,
// not lexically to the symlink's own directory.
func TestDotDotAfterSymlink(t *testing.T) {
	fsys := newFS(t, holefs.Options{})
	for _, d := range []string{"d", "d/sub"} {
		fsys.Mkdir(d, 0o755)
	}
	f := create(t, fsys, "d/x")
	writeAt(t, f, []byte("d/x"), 0)
	g := create(t, fsys, "x")
	writeAt(t, g, []byte("x"), 0)
	if err := fsys.Symlink("d/sub", "link"); err != nil {
		t.Fatal(err)
	}
	got, err := readFile(fsys, "link/../x")
	if err != nil || string(got) != "d/x" {
		t.Errorf("link/../x reads %q, %v; want %q", got, err, "d/x")
	}
	fi, err := fsys.Stat("link/..")
	di, _ := fsys.Stat("d")
	if err != nil || attr(t, fi).Ino != attr(t, di).Ino {
		t.Errorf("Stat(link/..) is not d: %v", err)
	}
	// Paths without symlinks resolve as before, extra slashes and dots included.
	for _, p := range []string{"d/sub/../x", "/d//./x", "./d/x"} {
		if got, err := readFile(fsys, p); err != nil || string(got) != "d/x" {
			t.Errorf("%s reads %q, %v", p, got, err)
		}
	}
}
