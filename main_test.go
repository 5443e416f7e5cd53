package holefs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on (an out-of-order acquisition
// panics where it happens) and checks that every FS.Close stopped the
// filesystem's background goroutines.
func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	goleak.VerifyTestMain(m)
}

const pg = 4096

var backends = []string{holefs.BackendExtent, holefs.BackendMemory, holefs.BackendPassthrough}

// newFS opens an in-memory filesystem, or a passthrough one over a fresh
// directory, that is closed when the test ends.
func newFS(t testing.TB, opts holefs.Options) *holefs.FS {
	t.Helper()
	if opts.Backend == holefs.BackendPassthrough && opts.BackingDir == "" {
		opts.BackingDir = t.TempDir()
	}
	fsys, err := holefs.Open("", opts)
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := fsys.Close(); err != nil {
			t.Errorf("FS.Close: %v", err)
		}
	})
	return fsys
}

// newFaultyFS opens an extentfs filesystem on a fault-injecting memory
// device of nblocks blocks.
func newFaultyFS(t testing.TB, nblocks int64) (*holefs.FS, *blockdev.Faulty) {
	t.Helper()
	dev := blockdev.NewFaulty(blockdev.NewMemory(nblocks), blockdev.FaultOptions{})
	return newFS(t, holefs.Options{Backend: holefs.BackendExtent, Device: dev}), dev
}

// skipSharedSpace skips a test that counts free blocks on passthrough,
// whose Statfs is the backing filesystem's: every other program using it
// moves the count too (passthrough_test.go checks the same semantics
// there through the backing files themselves).
func skipSharedSpace(t *testing.T, backend string) {
	if backend == holefs.BackendPassthrough {
		t.Skip("passthrough: free space is the backing filesystem's, shared with other programs")
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// create opens name read-write, creating and truncating it, and closes the
// handle when the test ends (a second Close is harmless there).
func create(t testing.TB, fsys *holefs.FS, name string) *holefs.File {
	t.Helper()
	return openFile(t, fsys, name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC)
}

func openFile(t testing.TB, fsys *holefs.FS, name string, flag int) *holefs.File {
	t.Helper()
	f, err := fsys.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatalf("OpenFile(%q, %#x): %v", name, flag, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func writeAt(t testing.TB, f *holefs.File, p []byte, off int64) {
	t.Helper()
	n, err := f.WriteAt(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

// pattern returns n bytes that differ from page to page and from byte to
// byte, tagged by seed, never zero.
func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i/pg*7+i*13) ^ seed | 1
	}
	return p
}

func size(t testing.TB, f *holefs.File) int64 {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	return fi.Size()
}

func attr(t testing.TB, fi fs.FileInfo) *holefs.Attr {
	t.Helper()
	a, ok := fi.Sys().(*holefs.Attr)
	if !ok {
		t.Fatalf("Sys() = %T, want *holefs.Attr", fi.Sys())
	}
	return a
}

// contents reads the whole file through ReadAt.
func contents(t testing.TB, f *holefs.File) []byte {
	t.Helper()
	n := size(t, f)
	buf := make([]byte, n+1)
	got, err := f.ReadAt(buf, 0)
	if err != io.EOF || int64(got) != n {
		t.Fatalf("ReadAt(whole file of %d bytes) = %d, %v; want %d, io.EOF", n, got, err, n)
	}
	return buf[:n]
}

// dropCache writes the file back and drops its clean pages, so the next
// read comes from storage (the device for extentfs) and not the cache.
func dropCache(t testing.TB, f *holefs.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := f.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("Fadvise(DONTNEED): %v", err)
	}
}

// checkContent compares the file with want, reporting the first difference.
func checkContent(t testing.TB, f *holefs.File, want []byte, what string) {
	t.Helper()
	got := contents(t, f)
	if len(got) != len(want) {
		t.Fatalf("%s: size %d, want %d", what, len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: first difference at byte %d (page %d): got %#x, want %#x", what, i, i/pg, got[i], want[i])
	}
}

// wantErrno checks that err is a *fs.PathError wrapping errno.
func wantErrno(t testing.TB, err error, errno syscall.Errno, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: err = nil, want %v", what, errno)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: err = %#v (%v), not a *fs.PathError", what, err, err)
	}
	if !errors.Is(err, errno) {
		t.Fatalf("%s: err = %v, want %v (%d)", what, err, errno, errno)
	}
}
