package holefs_test

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
)

// TestCopyRange checks copy_file_range(2): data copied through the cache,
// clipped at the source's EOF, extending the destination, and Linux's
// EBADF/EINVAL rules.
func TestCopyRange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		src := create(t, fsys, "src")
		sdata := pattern(1, 5*pg+123)
		writeAt(t, src, sdata, 0)
		dst := create(t, fsys, "dst")
		var dm model
		ddata := pattern(2, 2*pg)
		writeAt(t, dst, ddata, 0)
		dm.write(ddata, 0)

		copies := []struct {
			name                 string
			srcOff, dstOff, n    int64
			want                 int64
			dropSrcFirst, synced bool
		}{
			{name: "aligned into the middle", srcOff: 0, dstOff: pg, n: 2 * pg, want: 2 * pg},
			{name: "unaligned", srcOff: 100, dstOff: 7, n: 5000, want: 5000},
			{name: "extends the destination past a gap", srcOff: pg, dstOff: 10*pg + 3, n: pg, want: pg},
			{name: "stops at EOF", srcOff: 4 * pg, dstOff: 0, n: 10 * pg, want: pg + 123},
			{name: "from EOF", srcOff: 5*pg + 123, dstOff: 0, n: 10, want: 0},
			{name: "past EOF", srcOff: 50 * pg, dstOff: 0, n: 10, want: 0},
			{name: "zero length", srcOff: 0, dstOff: 0, n: 0, want: 0},
			{name: "source from the device", srcOff: 3, dstOff: 20 * pg, n: 3 * pg, want: 3 * pg, dropSrcFirst: true},
		}
		for _, c := range copies {
			if c.dropSrcFirst {
				dropCache(t, src)
			}
			got, err := src.CopyRange(dst, c.srcOff, c.dstOff, c.n)
			if err != nil || got != c.want {
				t.Fatalf("%s: CopyRange = %d, %v; want %d", c.name, got, err, c.want)
			}
			if got > 0 {
				dm.write(sdata[c.srcOff:c.srcOff+got], c.dstOff)
			}
			checkContent(t, dst, dm, c.name)
		}
		dropCache(t, dst)
		checkContent(t, dst, dm, "destination from storage")
		checkContent(t, src, sdata, "source unchanged")

		// Within one file, non-overlapping ranges copy; overlap is EINVAL.
		if n, err := src.CopyRange(src, 0, 6*pg, pg); err != nil || n != pg {
			t.Fatalf("same-file copy = %d, %v", n, err)
		}
		sm := model(append([]byte(nil), sdata...))
		sm.write(sdata[:pg], 6*pg)
		checkContent(t, src, sm, "same-file copy")
		for _, o := range [][3]int64{{0, 10, 100}, {100, 0, 101}, {0, 0, 1}, {pg, 0, pg + 1}} {
			_, err := src.CopyRange(src, o[0], o[1], o[2])
			wantErrno(t, err, syscall.EINVAL, "overlapping same-file copy")
		}
		checkContent(t, src, sm, "after rejected copies")

		ro := openFile(t, fsys, "src", syscall.O_RDONLY)
		wo := openFile(t, fsys, "dst", syscall.O_WRONLY)
		app := openFile(t, fsys, "dst", syscall.O_RDWR|syscall.O_APPEND)
		bad := []struct {
			name      string
			from, to  *holefs.File
			so, do, n int64
			errno     syscall.Errno
		}{
			{"into O_APPEND", src, app, 0, 0, 10, syscall.EBADF},
			{"into read-only", src, ro, 0, 0, 10, syscall.EBADF},
			{"from write-only", wo, src, 0, 0, 10, syscall.EBADF},
			{"negative source offset", src, dst, -1, 0, 10, syscall.EINVAL},
			{"negative destination offset", src, dst, 0, -1, 10, syscall.EINVAL},
			{"destination past max size", src, dst, 0, maxFileSize, 10, syscall.EFBIG},
		}
		for _, b := range bad {
			_, err := b.from.CopyRange(b.to, b.so, b.do, b.n)
			wantErrno(t, err, b.errno, b.name)
		}
		checkContent(t, dst, dm, "after rejected copies")
		d, err := fsys.OpenFile("/", syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		_, err = d.CopyRange(dst, 0, 0, 1)
		wantErrno(t, err, syscall.EISDIR, "from a directory")
	})
}

// TestCopyRangeSameFileClipped checks that the overlap rule applies to the
// length clipped at EOF, as in Linux's generic_copy_file_checks: copying a
// file onto its own end with a huge length appends one copy.
func TestCopyRangeSameFileClipped(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		data := pattern(1, 3*pg+10)
		writeAt(t, f, data, 0)
		n, err := f.CopyRange(f, 0, int64(len(data)), 1<<30)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("CopyRange onto own end = %d, %v; want %d", n, err, len(data))
		}
		checkContent(t, f, bytes.Repeat(data, 2), "doubled file")
		// Near the maximum file size the copy is clipped, not EFBIG.
		g := create(t, fsys, "g")
		n, err = f.CopyRange(g, 0, maxFileSize-10, 100)
		if err != nil || n != 10 {
			t.Fatalf("CopyRange to 10 bytes below the maximum size = %d, %v; want 10", n, err)
		}
		if size(t, g) != maxFileSize {
			t.Errorf("size %d", size(t, g))
		}
	})
}
