package vfs

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/pagecache"
)

// TestErrorsAreErrnos checks the package's contract: failures are bare
// syscall.Errno values (the root package wraps them), never other errors
// that callers could only map to EIO.
func TestErrorsAreErrnos(t *testing.T) {
	f := newExtentFS(t, 64, pagecache.Options{}, nil)
	h := f.open(t, "f")
	mustWrite(t, h, pattern(1, 2*pg), 0)
	if err := f.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := f.Open(f.Root(), os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ro, err := f.Open(h.in, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	direct, err := f.Open(h.in, os.O_RDWR|syscall.O_DIRECT)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	big := f.open(t, "big")
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"create in missing dir", func() error { _, _, err := f.Create("x/y", 0o644, false); return err }(), syscall.ENOENT},
		{"create excl", func() error { _, _, err := f.Create("f", 0o644, true); return err }(), syscall.EEXIST},
		{"lookup", func() error { _, err := f.Lookup("nope", true); return err }(), syscall.ENOENT},
		{"mkdir", f.Mkdir("d", 0o755), syscall.EEXIST},
		{"rmdir file", f.Rmdir("f"), syscall.ENOTDIR},
		{"unlink dir", f.Unlink("d"), syscall.EISDIR},
		{"rename flags", f.Rename("f", "g", 8), syscall.EINVAL},
		{"link dir", f.Link("d", "e"), syscall.EPERM},
		{"open dir rw", func() error { _, err := f.Open(f.Root(), os.O_RDWR); return err }(), syscall.EISDIR},
		{"readdir file", func() error { _, err := f.ReadDir("f"); return err }(), syscall.ENOTDIR},
		{"read dir", func() error { _, err := root.ReadAt(make([]byte, 1), 0); return err }(), syscall.EISDIR},
		{"write ro", func() error { _, _, err := ro.WriteAt([]byte("x"), 0); return err }(), syscall.EBADF},
		{"fallocate ro", ro.Fallocate(0, 0, 1), syscall.EBADF},
		{"fallocate dir", root.Fallocate(0, 0, 1), syscall.EBADF},
		{"fallocate mode", h.Fallocate(1<<20, 0, 1), syscall.EOPNOTSUPP},
		{"truncate dir", root.Truncate(0), syscall.EINVAL},
		{"truncate ro", ro.Truncate(0), syscall.EINVAL},
		{"seek data ENXIO", func() error { _, err := h.SeekDataHole(10*pg, SeekData); return err }(), syscall.ENXIO},
		{"direct unaligned", func() error { _, _, err := direct.WriteAt([]byte("x"), 0); return err }(), syscall.EINVAL},
		{"copy overlap", func() error { _, err := h.CopyRange(h, 0, 1, pg); return err }(), syscall.EINVAL},
		{"copy into ro", func() error { _, err := h.CopyRange(ro, 0, 0, 1); return err }(), syscall.EBADF},
		{"enospc", func() error { _, _, err := big.WriteAt(make([]byte, 100*pg), 0); return err }(), syscall.ENOSPC},
		{"fadvise", h.Fadvise(0, 0, 1234), syscall.EINVAL},
		{"mmap dir", func() error { _, err := root.Mmap(0, pg, false); return err }(), syscall.ENODEV},
	}
	for _, tc := range tests {
		e, ok := tc.err.(syscall.Errno)
		if !ok || e != tc.want {
			t.Errorf("%s: err = %#v (%v), want bare %v", tc.name, tc.err, tc.err, tc.want)
		}
	}
}

// TestTwoFileOpsBothDirections runs copy_file_range between two files in
// both directions at once, and within each file: lockTwo must take the two
// inode locks in one global order (the checker panics otherwise, and a
// wrong order can deadlock), and every copy must be whole.
func TestTwoFileOpsBothDirections(t *testing.T) {
	f := newExtentFS(t, 4096, pagecache.Options{}, nil)
	a, b := f.open(t, "a"), f.open(t, "b")
	pa, pb := bytes.Repeat([]byte{'a'}, 4*pg), bytes.Repeat([]byte{'b'}, 4*pg)
	mustWrite(t, a, pa, 0)
	mustWrite(t, b, pb, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(src, dst *File, srcOff, dstOff int64) {
		defer wg.Done()
		for range 50 {
			n, err := src.CopyRange(dst, srcOff, dstOff, 2*pg)
			if err != nil || n != 2*pg {
				errs <- fmt.Errorf("CopyRange = %d, %v", n, err)
				return
			}
		}
	}
	wg.Add(4)
	go run(a, b, 0, 4*pg)
	go run(b, a, 0, 4*pg)
	go run(a, a, 0, 6*pg)
	go run(b, b, 2*pg, 8*pg)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// No copy writes a range another copy reads, so the result is exact.
	rep := func(c byte, pages int) []byte { return bytes.Repeat([]byte{c}, pages*pg) }
	wantA := slicesConcat(rep('a', 4), rep('b', 2), rep('a', 2))
	wantB := slicesConcat(rep('b', 4), rep('a', 2), rep(0, 2), rep('b', 2))
	checkData(t, a, wantA, "a")
	checkData(t, b, wantB, "b")
}

func slicesConcat(s ...[]byte) []byte { return bytes.Join(s, nil) }

// TestSeekDataHoleDirty checks SEEK_DATA/SEEK_HOLE's view of dirty pages:
// a page written but not yet written back is data even over a hole or an
// unwritten extent, and stays data after writeback.
func TestSeekDataHoleDirty(t *testing.T) {
	f := newExtentFS(t, 64, pagecache.Options{}, nil)
	h := f.open(t, "f")
	if err := h.Fallocate(unix.FALLOC_FL_KEEP_SIZE, 0, 8*pg); err != nil {
		t.Fatal(err)
	}
	if err := h.Truncate(16 * pg); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, []byte("x"), 3*pg+7)  // dirty over unwritten
	mustWrite(t, h, []byte("y"), 12*pg+1) // dirty over a hole
	for _, synced := range []bool{false, true} {
		if synced {
			drop(t, h)
		}
		for _, c := range []struct {
			whence   int
			off, end int64
		}{
			{SeekData, 0, 3 * pg}, {SeekHole, 3 * pg, 4 * pg},
			{SeekData, 4 * pg, 12 * pg}, {SeekHole, 12 * pg, 13 * pg},
			{SeekHole, 0, 0}, {SeekData, 13 * pg, -1},
		} {
			got, err := h.SeekDataHole(c.off, c.whence)
			if c.end < 0 {
				if err != syscall.ENXIO {
					t.Errorf("synced=%v whence %d off %d: %d, %v; want ENXIO", synced, c.whence, c.off, got, err)
				}
				continue
			}
			if err != nil || got != c.end {
				t.Errorf("synced=%v whence %d off %d = %d, %v; want %d", synced, c.whence, c.off, got, err, c.end)
			}
		}
	}
}

// TestEvictFreesBlocks checks that the last close of an unlinked file gives
// its blocks back and that a file reusing them reads only its own data.
func TestEvictFreesBlocks(t *testing.T) {
	f := newExtentFS(t, 32, pagecache.Options{}, nil)
	_, _, free0 := f.Statfs()
	h := f.open(t, "a")
	mustWrite(t, h, pattern(1, 16*pg), 0) // dirty, never synced
	if err := f.Unlink("a"); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, free := f.Statfs(); free != free0 {
		t.Fatalf("free %d after evict, want %d", free, free0)
	}
	// The unlinked file's dirty pages were dropped, not written into blocks
	// a new file now owns.
	g := f.open(t, "b")
	want := pattern(2, 32*pg) // every block of the device
	mustWrite(t, g, want, 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Cache().Close(); err != nil { // writes back whatever is left anywhere
		t.Fatal(err)
	}
	for b := range int64(32) {
		buf := make([]byte, pg)
		if err := f.dev.ReadBlocks(buf, b); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf, pattern(1, 16*pg)[:pg]) {
			t.Errorf("block %d holds the evicted file's data", b)
		}
	}
	blocks := map[string]bool{}
	for b := range int64(32) {
		buf := make([]byte, pg)
		f.dev.ReadBlocks(buf, b)
		blocks[string(buf)] = true
	}
	for p := 0; p < 32; p++ {
		if !blocks[string(want[p*pg:(p+1)*pg])] {
			t.Errorf("page %d of the new file is on no block", p)
		}
	}
	if _, err := h.ReadAt(make([]byte, 1), 0); err != syscall.EBADF {
		t.Errorf("read on a closed handle: %v", err)
	}
}
