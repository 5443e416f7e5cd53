package holefs_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// blockOf finds the device block holding file page idx of f, by failing
// reads of one block at a time until a read of just that page fails.
func blockOf(t *testing.T, fsys *holefs.FS, dev *blockdev.Faulty, f *holefs.File, idx int64) int64 {
	t.Helper()
	_, total, _ := fsys.Statfs()
	defer dev.Clear()
	buf := make([]byte, pg)
	for b := range total {
		dropCache(t, f)
		dev.Clear()
		dev.FailRead(b, syscall.EIO)
		if _, err := f.ReadAt(buf, idx*pg); err != nil {
			dev.Clear()
			dropCache(t, f)
			return b
		}
	}
	t.Fatalf("no block holds page %d", idx)
	return -1
}

// TestReadEIO: a read of a page whose block fails returns EIO; other pages
// still read; after the fault clears, the page reads its data.
func TestReadEIO(t *testing.T) {
	for _, first := range []string{"bad page first", "good page first"} {
		t.Run(first, func(t *testing.T) {
			fsys, dev := newFaultyFS(t, 256)
			f := create(t, fsys, "f")
			data := pattern(1, 3*pg)
			writeAt(t, f, data, 0)
			bad := blockOf(t, fsys, dev, f, 1)
			dev.FailRead(bad, syscall.EIO)
			buf := make([]byte, pg)
			readBad := func() {
				t.Helper()
				n, err := f.ReadAt(buf, pg+10)
				wantErrno(t, err, syscall.EIO, "read of the bad page")
				if n != 0 {
					t.Errorf("read of the bad page returned %d bytes", n)
				}
			}
			if first == "bad page first" {
				readBad()
			}
			// Pages 0 and 2 are fine: their reads must not fail because a
			// readahead window included the bad block.
			for _, p := range []int64{0, 2} {
				n, err := f.ReadAt(buf, p*pg)
				if err != nil || n != pg || string(buf) != string(data[p*pg:(p+1)*pg]) {
					t.Errorf("read of good page %d = %d, %v", p, n, err)
				}
			}
			readBad()
			// A read spanning good and bad pages returns the good prefix and
			// the error, like a short read(2) (or all of it fails).
			big := make([]byte, 3*pg)
			n, err := f.ReadAt(big, 0)
			if err == nil {
				t.Errorf("read across the bad page succeeded")
			}
			if n > pg || string(big[:n]) != string(data[:n]) {
				t.Errorf("read across the bad page returned %d bytes", n)
			}
			dev.Clear()
			checkContent(t, f, data, "after the fault cleared")
		})
	}
}

// TestWritebackEIO: a failed writeback is reported by the next Sync of
// every handle open at the time, once each (Linux's errseq), and not to a
// handle opened after all of them saw it.
func TestWritebackEIO(t *testing.T) {
	fsys, dev := newFaultyFS(t, 256)
	h1 := create(t, fsys, "f")
	h2 := openFile(t, fsys, "f", syscall.O_RDWR)
	writeAt(t, h1, pattern(1, 2*pg), 0)
	if err := h1.Sync(); err != nil {
		t.Fatal(err)
	}
	_, total, _ := fsys.Statfs()
	for b := range total {
		dev.FailWrite(b, syscall.EIO)
	}
	writeAt(t, h1, pattern(2, 100), 10)
	wantErrno(t, h1.Sync(), syscall.EIO, "Sync of the writer")
	wantErrno(t, h2.Sync(), syscall.EIO, "Sync of the other handle")
	for i, h := range []*holefs.File{h1, h2} {
		if err := h.Sync(); err != nil {
			t.Errorf("second Sync of handle %d: %v", i+1, err)
		}
	}
	h3 := openFile(t, fsys, "f", syscall.O_RDONLY)
	if err := h3.Sync(); err != nil {
		t.Errorf("Sync of a handle opened after the error was seen: %v", err)
	}
	// A second failure is reported again, to all three.
	writeAt(t, h2, []byte("again"), 5000)
	if err := fsys.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("FS.Sync with failing writeback: %v", err)
	}
	for i, h := range []*holefs.File{h1, h2, h3} {
		wantErrno(t, h.Sync(), syscall.EIO, fmt.Sprintf("handle %d after the second failure", i+1))
	}
	dev.Clear()
	// After the fault clears, new writes reach the device.
	writeAt(t, h1, []byte("ok"), 0)
	for i, h := range []*holefs.File{h1, h2, h3} {
		if err := h.Sync(); err != nil {
			t.Errorf("Sync of handle %d after the fault cleared: %v", i+1, err)
		}
	}
	// A flush failure is an EIO of Sync too.
	dev.FailFlush(syscall.EIO)
	wantErrno(t, h1.Sync(), syscall.EIO, "Sync with a failing flush")
	dev.Clear()
}

// TestENOSPC: on a full device a write that needs new blocks fails with
// ENOSPC before writing anything, and the data already there survives.
func TestENOSPC(t *testing.T) {
	type fsMaker func(t *testing.T) *holefs.FS
	makers := map[string]fsMaker{
		"extentfs": func(t *testing.T) *holefs.FS {
			fsys, _ := newFaultyFS(t, 16) // 64 KiB
			return fsys
		},
		"memfs": func(t *testing.T) *holefs.FS {
			return newFS(t, holefs.Options{Backend: holefs.BackendMemory, SizeBytes: 64 << 10})
		},
	}
	for name, mk := range makers {
		t.Run(name, func(t *testing.T) {
			fsys := mk(t)
			_, total, free := fsys.Statfs()
			if total != 16 || free != 16 {
				t.Fatalf("Statfs: total %d free %d", total, free)
			}
			small := create(t, fsys, "small")
			sdata := pattern(1, pg+100)
			writeAt(t, small, sdata, 0)
			big := create(t, fsys, "big")
			bdata := pattern(2, 14*pg)
			writeAt(t, big, bdata, 0)
			if _, _, free := fsys.Statfs(); free != 0 {
				t.Fatalf("free after filling: %d", free)
			}
			fails := []struct {
				name string
				f    *holefs.File
				p    []byte
				off  int64
			}{
				{"append a page", small, pattern(3, pg), 2 * pg},
				{"partial page past the last block", small, []byte("x"), 2*pg + 5},
				{"rewrite and extend", small, pattern(4, 3*pg), 0},
				{"far away", big, []byte("x"), 100 * pg},
			}
			for _, c := range fails {
				before := contents(t, c.f)
				n, err := c.f.WriteAt(c.p, c.off)
				wantErrno(t, err, syscall.ENOSPC, c.name)
				if n != 0 {
					t.Errorf("%s: wrote %d bytes", c.name, n)
				}
				checkContent(t, c.f, before, c.name+": file changed")
			}
			// fallocate and copy_file_range hit ENOSPC too, changing nothing
			// (an unaligned copy: an aligned one shares blocks and needs none).
			wantErrno(t, small.Fallocate(0, 0, 4*pg), syscall.ENOSPC, "fallocate")
			if size(t, small) != pg+100 {
				t.Errorf("failed fallocate changed the size to %d", size(t, small))
			}
			_, err := big.CopyRange(small, 0, 3*pg+1, pg)
			wantErrno(t, err, syscall.ENOSPC, "copy_file_range")
			nf := create(t, fsys, "new")
			_, err = nf.WriteAt([]byte("x"), 0)
			wantErrno(t, err, syscall.ENOSPC, "write to a new file")
			// Writes inside allocated blocks still work.
			writeAt(t, small, []byte("inside"), pg+50)
			copy(sdata[pg+50:], "inside")
			if err := fsys.Sync(); err != nil {
				t.Fatalf("Sync of a full filesystem: %v", err)
			}
			for _, c := range []struct {
				f    *holefs.File
				want []byte
			}{{small, sdata}, {big, bdata}} {
				dropCache(t, c.f)
				checkContent(t, c.f, c.want, "data on the full filesystem")
			}
			// Freeing space makes writes work again.
			if err := big.Fallocate(punch, 0, 2*pg); err != nil {
				t.Fatal(err)
			}
			writeAt(t, small, pattern(3, pg), 2*pg)
		})
	}
}

// TestFSSyncReportsWritebackErrors: FS.Sync reports a writeback error that
// happened since the last FS.Sync even when another caller's fsync saw it
// first and its own writeback had nothing left to do (syncfs since Linux
// 5.8), once.
func TestFSSyncReportsWritebackErrors(t *testing.T) {
	fsys, dev := newFaultyFS(t, 64)
	f := create(t, fsys, "f")
	writeAt(t, f, pattern(1, pg), 0)
	dev.FailWrite(0, syscall.EIO)
	for b := int64(1); b < 64; b++ {
		dev.FailWrite(b, syscall.EIO)
	}
	wantErrno(t, f.Sync(), syscall.EIO, "fsync of a page whose writeback fails")
	dev.Clear()
	wantErrno(t, fsys.Sync(), syscall.EIO, "FS.Sync after a writeback error it did not see")
	if err := fsys.Sync(); err != nil {
		t.Fatalf("second FS.Sync: %v, want nil (each error once)", err)
	}
}
