package vfs

import (
	"bytes"
	"io"
	"os"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/pagecache"
)

// TestMain turns the lock-order checker on and checks that every FS.Close
// stopped the cache's goroutines.
func TestMain(m *testing.M) {
	lockcheck.Enable()
	goleak.VerifyTestMain(m)
}

const pg = pageSize

type testFS struct {
	*FS
	dev blockdev.Device
}

// newExtentFS returns an extentfs filesystem on a memory device of nblocks
// blocks, closed when the test ends.
func newExtentFS(t testing.TB, nblocks int64, copts pagecache.Options, hooks *Hooks) testFS {
	t.Helper()
	dev := blockdev.NewMemory(nblocks)
	f := New(Backend{Store: extentfs.New(nblocks), Device: dev}, copts, hooks)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return testFS{f, dev}
}

func newMemFS(t testing.TB, npages int64, hooks *Hooks) testFS {
	t.Helper()
	f := New(Backend{Store: memfs.New(npages), Memory: true}, pagecache.Options{}, hooks)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return testFS{FS: f}
}

// open creates (if needed) and opens path read-write.
func (f testFS) open(t testing.TB, path string) *File {
	t.Helper()
	in, _, err := f.Create(path, 0o644, false)
	if err != nil {
		t.Fatalf("Create(%s): %v", path, err)
	}
	h, err := f.Open(in, os.O_RDWR)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i/pg*7+i*13) ^ seed | 1
	}
	return p
}

func mustWrite(t testing.TB, h *File, p []byte, off int64) {
	t.Helper()
	if n, _, err := h.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d, %d) = %d, %v", len(p), off, n, err)
	}
}

// drop writes the file back and drops its clean pages.
func drop(t testing.TB, h *File) {
	t.Helper()
	if err := h.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := h.Fadvise(0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("Fadvise: %v", err)
	}
}

func readAll(t testing.TB, h *File) []byte {
	t.Helper()
	size := h.Inode().Stat().Size
	buf := make([]byte, size+1)
	n, err := h.ReadAt(buf, 0)
	if err != io.EOF || int64(n) != size {
		t.Fatalf("ReadAt(whole file) = %d, %v; size %d", n, err, size)
	}
	return buf[:n]
}

func checkData(t testing.TB, h *File, want []byte, what string) {
	t.Helper()
	if got := readAll(t, h); !bytes.Equal(got, want) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
		}
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: first difference at byte %d: %#x, want %#x", what, i, got[i], want[i])
	}
}
