package fuse

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// forEachModeAndFS runs fn in a subtest per cache mode and per kind of
// filesystem (in memory, an image), each with its own mount.
func forEachModeAndFS(t *testing.T, opts Options, fn func(t *testing.T, m *mounted)) {
	for _, mode := range []CacheMode{CacheWriteback, CacheWritethrough, CacheDirect} {
		for _, kind := range []string{"memory", "image"} {
			t.Run(mode.String()+"/"+kind, func(t *testing.T) {
				o := opts
				o.Cache = mode
				if kind == "memory" {
					fn(t, mountFS(t, o))
					return
				}
				fn(t, mountOn(t, openImage(t), o))
			})
		}
	}
}

// openImage makes a small image in a temporary directory and opens it.
func openImage(t testing.TB) *holefs.FS {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img")
	if err := holefs.Mkfs(img, holefs.MkfsOptions{SizeBytes: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	fsys, err := holefs.Open(img, holefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// libraryFile writes a file through the library, so that the kernel has
// none of its pages cached.
func libraryFile(t testing.TB, m *mounted, name string, data []byte) {
	t.Helper()
	f, err := m.fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteOnlyHandles: writes through descriptors opened without read
// access land where they were aimed, in every cache mode. With the
// writeback cache the kernel fills a page it only partly overwrites by
// reading it through the writing handle, and it handles O_APPEND itself,
// sending the writes back at the offsets it chose, possibly through
// another open of the same file.
func TestWriteOnlyHandles(t *testing.T) {
	old := bytes.Repeat([]byte("a"), 2*pg+5)
	tests := []struct {
		name string
		// do changes the file at path; want is its content after, from old.
		do   func(t *testing.T, path string)
		want func() []byte
	}{
		{"O_WRONLY pwrite into an uncached page", func(t *testing.T, path string) {
			fd, closeFD := openW(t, path, unix.O_WRONLY)
			pwrite(t, fd, []byte("0123456789"), 100)
			closeFD()
		}, func() []byte { return splice(old, 100, []byte("0123456789")) }},
		{"O_WRONLY pwrite past the end", func(t *testing.T, path string) {
			fd, closeFD := openW(t, path, unix.O_WRONLY)
			pwrite(t, fd, []byte("xy"), int64(len(old))+10)
			closeFD()
		}, func() []byte { return splice(old, len(old)+10, []byte("xy")) }},
		{"sh echo >>", func(t *testing.T, path string) {
			if out, err := exec.Command("sh", "-c", `echo hello >> "$0"`, path).CombinedOutput(); err != nil {
				t.Fatalf("sh: %v: %s", err, out)
			}
		}, func() []byte { return append(bytes.Clone(old), "hello\n"...) }},
		{"O_APPEND after dropping the cache", func(t *testing.T, path string) {
			// Read the file into the kernel's cache, then drop it.
			if _, err := os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
			fd, closeFD := openW(t, path, unix.O_WRONLY|unix.O_APPEND)
			if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
			pwrite(t, fd, []byte("tail"), 0) // O_APPEND: the offset is ignored
			pwrite(t, fd, []byte("!"), 0)
			closeFD()
		}, func() []byte { return append(bytes.Clone(old), "tail!"...) }},
		{"pwrite written back while an O_APPEND descriptor is open", func(t *testing.T, path string) {
			rw, closeRW := openW(t, path, unix.O_RDWR)
			app, closeApp := openW(t, path, unix.O_WRONLY|unix.O_APPEND)
			pwrite(t, rw, []byte("head"), 0)
			if err := unix.Fsync(rw); err != nil {
				t.Fatal(err)
			}
			pwrite(t, app, []byte("end"), 0)
			closeApp()
			closeRW()
		}, func() []byte { return append(splice(old, 0, []byte("head")), "end"...) }},
	}
	forEachModeAndFS(t, Options{}, func(t *testing.T, m *mounted) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				name := "f" + string(rune('0'+i))
				libraryFile(t, m, name, old)
				tc.do(t, m.path(name))
				want := tc.want()
				if got, err := os.ReadFile(m.path(name)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("through the mount: %q, %v; want %q", shorten(got), err, shorten(want))
				}
				if got, err := m.fsys.ReadFile(name); err != nil || !bytes.Equal(got, want) {
					t.Errorf("through the library: %q, %v; want %q", shorten(got), err, shorten(want))
				}
			})
		}
	})
}

// TestWriteOnlyNoRead: a descriptor opened write-only reads nothing, in
// every cache mode, though the server's handle may read for the kernel.
func TestWriteOnlyNoRead(t *testing.T) {
	forEachModeAndFS(t, Options{}, func(t *testing.T, m *mounted) {
		libraryFile(t, m, "f", []byte("secret"))
		fd := openT(t, m.path("f"), unix.O_WRONLY, 0)
		_, err := unix.Pread(fd, make([]byte, 8), 0)
		wantErrno(t, err, syscall.EBADF, "pread through O_WRONLY")
	})
}

// openW opens a file for the test to close with the returned function,
// which reports close's error (close reports a failed writeback on FUSE).
// Should the test end first, the descriptor is closed then, before the
// mount goes.
func openW(t testing.TB, path string, flags int) (int, func()) {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	open := true
	t.Cleanup(func() {
		if open {
			_ = unix.Close(fd)
		}
	})
	return fd, func() {
		t.Helper()
		open = false
		if err := unix.Close(fd); err != nil {
			t.Fatalf("close %s: %v", path, err)
		}
	}
}

// splice returns a copy of b with p written at off, zero-filled past b's
// end.
func splice(b []byte, off int, p []byte) []byte {
	out := bytes.Clone(b)
	if end := off + len(p); end > len(out) {
		out = append(out, make([]byte, end-len(out))...)
	}
	copy(out[off:], p)
	return out
}

// shorten abbreviates long contents in messages.
func shorten(b []byte) []byte {
	if len(b) <= 64 {
		return b
	}
	return append(append(bytes.Clone(b[:24]), "..."...), b[len(b)-24:]...)
}

func init() { helpers["mapstore"] = mapStoreHelper }

// mapStoreHelper stores "XY" at the start of the file at path through a
// shared mapping of a descriptor opened O_RDWR|O_APPEND, and writes it
// back (msync).
func mapStoreHelper(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(mem, "XY")
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		return err
	}
	if err := unix.Munmap(mem); err != nil {
		return err
	}
	return unix.Close(fd)
}

// TestMappedStoresThroughAppendHandle: stores through a shared mapping of
// a descriptor opened with O_APPEND land where they were made, in every
// cache mode, not at the end of the file: the kernel writes the pages
// back at their offsets through that handle. (In a child process: the
// test binary must not fault on the mount it serves.)
func TestMappedStoresThroughAppendHandle(t *testing.T) {
	forEachModeAndFS(t, Options{}, func(t *testing.T, m *mounted) {
		libraryFile(t, m, "f", []byte("abcdefgh"))
		runChild(t, "mapstore", m.path("f"))
		want := []byte("XYcdefgh")
		if got, err := os.ReadFile(m.path("f")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("through the mount: %q, %v; want %q", got, err, want)
		}
		if got, err := m.fsys.ReadFile("f"); err != nil || !bytes.Equal(got, want) {
			t.Errorf("through the library: %q, %v; want %q", got, err, want)
		}
	})
}
