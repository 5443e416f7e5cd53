package passthrough

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap"
)

// dirs returns backing directories to test on: the test's temporary
// directory, and one in /dev/shm (tmpfs) when there is one.
func dirs(t *testing.T) map[string]string {
	out := map[string]string{"tempdir": t.TempDir()}
	if d, err := os.MkdirTemp("/dev/shm", "holefs-passthrough-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		out["shm"] = d
	}
	return out
}

// newTestFile opens dir and creates the regular file "f" there as inode 2.
func newTestFile(t *testing.T, dir string) (*FS, *File) {
	t.Helper()
	fsys, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	if err := fsys.Load(func(uint64, string, uint64, *unix.Stat_t, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Create(RootIno, "f", 2, unix.S_IFREG|0o644, 0, ""); err != nil {
		t.Fatal(err)
	}
	return fsys, fsys.NewFile(2).(*File)
}

// TestLookup checks extents against a file whose data pages are known:
// runs longer and shorter than a Mapped extent can be, a partial last
// page, and the space past the end.
func TestLookup(t *testing.T) {
	const npages = 200
	data := map[int64]bool{}
	for _, r := range [][2]int64{{0, 3}, {10, 11}, {20, 120}, {150, 151}} {
		for p := r[0]; p < r[1]; p++ {
			data[p] = true
		}
	}
	data[npages-1] = true // partial: the file ends 100 bytes into it
	run := func(index, max int64) blockmap.Extent {
		kind := blockmap.Unwritten
		if data[index] {
			kind = blockmap.Mapped
		}
		n := int64(1)
		for n < max && data[index+n] == data[index] && (index+n < npages || !data[index]) && (n < probePages || !data[index]) {
			n++
		}
		return blockmap.Extent{Page: index, Count: n, Kind: kind, Block: index}
	}
	for name, dir := range dirs(t) {
		t.Run(name, func(t *testing.T) {
			_, f := newTestFile(t, dir)
			page := bytes.Repeat([]byte{7}, pageSize)
			for p := range data {
				n := pageSize
				if p == npages-1 {
					n = 100
				}
				if _, err := f.f.WriteAt(page[:n], p*pageSize); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct{ index, max int64 }{
				{0, 1}, {0, 10}, {1, 300}, {3, 5}, {3, 100}, {10, 1}, {11, 2},
				{20, 10}, {20, 64}, {20, 65}, {20, 300}, {25, 200}, {119, 2}, {120, 100},
				{150, 1}, {151, 1000}, {npages - 1, 5}, {npages, 10}, {1 << 20, 4},
			} {
				got, err := f.Lookup(tc.index, tc.max)
				if err != nil {
					t.Fatalf("Lookup(%d, %d): %v", tc.index, tc.max, err)
				}
				if want := run(tc.index, tc.max); got != want {
					t.Errorf("Lookup(%d, %d) = %+v, want %+v", tc.index, tc.max, got, want)
				}
			}
			for _, tc := range []struct{ index, want int64 }{{0, 0}, {3, 10}, {121, 150}, {151, npages - 1}, {npages, -1}} {
				if got, err := f.NextData(tc.index); err != nil || got != tc.want {
					t.Errorf("NextData(%d) = %d, %v; want %d", tc.index, got, err, tc.want)
				}
			}
			if _, err := f.Lookup(-1, 1); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("Lookup(-1, 1): %v, want EINVAL", err)
			}
		})
	}
}

// TestDevices: the writeback device stops at the file size; the direct
// device writes where it is asked; both read zeros past the end.
func TestDevices(t *testing.T) {
	dir := t.TempDir()
	_, f := newTestFile(t, dir)
	size := int64(5000)
	wb, direct := f.WritebackDevice(func() int64 { return size }), f.Device()
	two := bytes.Repeat([]byte{9}, 2*pageSize)
	for _, tc := range []struct {
		name   string
		dev    func() error
		length int64
	}{
		{"writeback of the last page stops at the size", func() error { return wb.WriteBlocks(two, 0) }, 5000},
		{"writeback wholly past the end writes nothing", func() error { return wb.WriteBlocks(two, 4) }, 5000},
		{"a direct write grows the file", func() error { return direct.WriteBlocks(two, 3) }, 5 * pageSize},
		{"writeback writes up to the backing end", func() error { return wb.WriteBlocks(two, 3) }, 5 * pageSize},
	} {
		if err := tc.dev(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "f")); err != nil || fi.Size() != tc.length {
			t.Fatalf("%s: backing size %v, %v; want %d", tc.name, fi.Size(), err, tc.length)
		}
	}
	buf := make([]byte, 2*pageSize)
	if err := wb.ReadBlocks(buf, 4); err != nil || !bytes.Equal(buf[:pageSize], two[:pageSize]) || bytes.ContainsFunc(buf[pageSize:], func(r rune) bool { return r != 0 }) {
		t.Errorf("read across the end: %v", err)
	}
	for _, bad := range []func() error{
		func() error { return wb.WriteBlocks(make([]byte, 100), 0) },
		func() error { return direct.ReadBlocks(buf, -1) },
		func() error { return direct.ReadBlocks(buf, maxPages) },
	} {
		if err := bad(); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("bad I/O: %v, want EINVAL", err)
		}
	}
}

// TestOutsideChange: a change made to the backing file by another program
// is found by Changed; writeback refuses to write over it (ESTALE) until
// Revalidated takes it in; direct writes, new operations, go ahead.
func TestOutsideChange(t *testing.T) {
	dir := t.TempDir()
	_, f := newTestFile(t, dir)
	wb := f.WritebackDevice(func() int64 { return 2 * pageSize })
	page := bytes.Repeat([]byte{1}, pageSize)
	if err := wb.WriteBlocks(page, 0); err != nil {
		t.Fatal(err)
	}
	if f.Changed() {
		t.Fatal("the engine's own write counted as an outside change")
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("theirs"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !f.Changed() {
		t.Fatal("outside change not seen")
	}
	if err := wb.WriteBlocks(page, 0); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("writeback over an outside change: %v, want ESTALE", err)
	}
	if err := f.Device().WriteBlocks(page, 1); err != nil {
		t.Fatalf("direct write after an outside change: %v", err)
	}
	if !f.Changed() {
		t.Fatal("the direct write hid the outside change")
	}
	st, err := f.Revalidated()
	if err != nil || st.Size != 2*pageSize {
		t.Fatalf("Revalidated = size %d, %v", st.Size, err)
	}
	if f.Changed() {
		t.Fatal("changed after Revalidated")
	}
	if err := wb.WriteBlocks(page, 0); err != nil {
		t.Fatalf("writeback after revalidation: %v", err)
	}
}

// TestRemoversGrow: a punch or zero range applies to the file's size, not
// to a backing file still shorter (its last page not yet written back):
// ext4 would not punch past its end at all.
func TestRemoversGrow(t *testing.T) {
	for name, dir := range dirs(t) {
		t.Run(name, func(t *testing.T) {
			fsys, f := newTestFile(t, dir)
			size := int64(3 * pageSize)
			f.WritebackDevice(func() int64 { return size })
			if err := f.Allocate(0, 3); err != nil {
				t.Fatal(err)
			}
			if err := f.Punch(1, 1); err != nil {
				t.Fatal(err)
			}
			st, err := f.stat()
			if err != nil || st.Size != size {
				t.Fatalf("backing size %d, %v; want %d", st.Size, err, size)
			}
			if fsys.noAlloc {
				return
			}
			if st.Blocks*512 != 2*pageSize {
				t.Errorf("%d bytes allocated after punching one of three pages", st.Blocks*512)
			}
		})
	}
}

// TestProbe: Open finds the fallocate modes tmpfs lacks, and a second Open
// of a directory in use fails with EBUSY.
func TestProbe(t *testing.T) {
	for name, dir := range dirs(t) {
		fsys, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(0)
		var sfs unix.Statfs_t
		if unix.Statfs(dir, &sfs) == nil && sfs.Type == unix.TMPFS_MAGIC {
			want = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_COLLAPSE_RANGE | unix.FALLOC_FL_INSERT_RANGE
		}
		if got := fsys.Unsupported(); got != want {
			t.Errorf("%s: unsupported %#x, want %#x", name, got, want)
		}
		if _, err := Open(dir, Options{}); !errors.Is(err, syscall.EBUSY) {
			t.Errorf("%s: second Open: %v, want EBUSY", name, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: the probe left %v", name, ents)
		}
		if err := fsys.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
