package holefs_test

import (
	"fmt"
	"io"
	"math"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
)

// TestSeekDataHole checks lseek's SEEK_DATA and SEEK_HOLE: holes and
// unwritten (fallocated) extents are holes, as in ext4; written data,
// synced or still dirty in the cache, is data; EOF is a hole; an offset at
// or past EOF is ENXIO.
func TestSeekDataHole(t *testing.T) {
	type probe struct {
		off        int64
		data       int64 // want SEEK_DATA result, -1: ENXIO
		hole       int64 // want SEEK_HOLE result, -1: ENXIO
		extentOnly bool  // unwritten extents: memfs has none
	}
	const fsize = 20*pg + 100
	// Layout: [0,2) data, [2,5) hole, [5,6) data, [6,9) unwritten (fallocated),
	// [9,10) data over unwritten, [10,16) hole, [16,17) unwritten, [17,20) hole,
	// page 20 data up to EOF at 20*pg+100.
	setup := func(t *testing.T, f *holefs.File, synced bool) {
		writeAt(t, f, pattern(1, 2*pg), 0)
		writeAt(t, f, pattern(2, 10), 5*pg+pg-10) // the last bytes of page 5
		if err := f.Fallocate(keep, 6*pg, 4*pg); err != nil {
			t.Fatal(err)
		}
		writeAt(t, f, pattern(3, pg), 9*pg)
		if err := f.Fallocate(0, 16*pg+1, 10); err != nil { // unwritten page 16
			t.Fatal(err)
		}
		writeAt(t, f, pattern(4, 100), 20*pg)
		if synced {
			dropCache(t, f)
		}
	}
	probes := []probe{
		{off: 0, data: 0, hole: 2 * pg},
		{off: 100, data: 100, hole: 2 * pg},
		{off: 2*pg - 1, data: 2*pg - 1, hole: 2 * pg},
		{off: 2 * pg, data: 5 * pg, hole: 2 * pg},
		{off: 3*pg + 7, data: 5 * pg, hole: 3*pg + 7},
		{off: 5*pg + 1, data: 5*pg + 1, hole: 6 * pg, extentOnly: true},
		{off: 6 * pg, data: 9 * pg, hole: 6 * pg, extentOnly: true},
		{off: 8*pg + 5, data: 9 * pg, hole: 8*pg + 5, extentOnly: true},
		{off: 9 * pg, data: 9 * pg, hole: 10 * pg},
		{off: 10 * pg, data: 20 * pg, hole: 10 * pg, extentOnly: true},
		{off: 16 * pg, data: 20 * pg, hole: 16 * pg, extentOnly: true},
		{off: 20*pg + 99, data: 20*pg + 99, hole: fsize},
		{off: fsize, data: -1, hole: -1},
		{off: fsize + pg, data: -1, hole: -1},
		{off: -1, data: -1, hole: -1},
		{off: math.MaxInt64, data: -1, hole: -1},
	}
	for _, backend := range backends {
		for _, synced := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/synced=%v", backend, synced), func(t *testing.T) {
				fsys := newFS(t, holefs.Options{Backend: backend})
				f := create(t, fsys, "f")
				setup(t, f, synced)
				if got := size(t, f); got != fsize {
					t.Fatalf("size %d", got)
				}
				for _, p := range probes {
					if p.extentOnly && backend == holefs.BackendMemory {
						continue // memfs counts fallocated pages as data
					}
					for _, w := range []struct {
						whence int
						want   int64
						name   string
					}{{holefs.SeekData, p.data, "SEEK_DATA"}, {holefs.SeekHole, p.hole, "SEEK_HOLE"}} {
						if _, err := f.Seek(12345, io.SeekStart); err != nil {
							t.Fatal(err)
						}
						got, err := f.Seek(p.off, w.whence)
						if w.want < 0 {
							wantErrno(t, err, syscall.ENXIO, fmt.Sprintf("%s from %d", w.name, p.off))
							if pos, _ := f.Seek(0, io.SeekCurrent); pos != 12345 {
								t.Errorf("failed %s moved the position to %d", w.name, pos)
							}
							continue
						}
						if err != nil || got != w.want {
							t.Errorf("%s from %d = %d, %v; want %d", w.name, p.off, got, err, w.want)
						}
						if pos, _ := f.Seek(0, io.SeekCurrent); pos != w.want {
							t.Errorf("%s from %d: position %d", w.name, p.off, pos)
						}
					}
				}
			})
		}
	}
}

// TestSeekDataHoleAfterPunch checks that a punched range becomes a hole
// and that the file's tail after a truncate is a hole only at EOF.
func TestSeekDataHoleAfterPunch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		writeAt(t, f, pattern(1, 8*pg), 0)
		if off, err := f.Seek(0, holefs.SeekHole); err != nil || off != 8*pg {
			t.Errorf("dense file: SEEK_HOLE = %d, %v", off, err)
		}
		if err := f.Fallocate(punch, 2*pg, 3*pg); err != nil {
			t.Fatal(err)
		}
		if off, err := f.Seek(0, holefs.SeekHole); err != nil || off != 2*pg {
			t.Errorf("after punch: SEEK_HOLE = %d, %v", off, err)
		}
		if off, err := f.Seek(2*pg, holefs.SeekData); err != nil || off != 5*pg {
			t.Errorf("after punch: SEEK_DATA = %d, %v", off, err)
		}
		// A file that is all hole: SEEK_DATA is ENXIO, SEEK_HOLE the offset.
		g := create(t, fsys, "g")
		if err := g.Truncate(10 * pg); err != nil {
			t.Fatal(err)
		}
		_, err := g.Seek(0, holefs.SeekData)
		wantErrno(t, err, syscall.ENXIO, "SEEK_DATA in a sparse file")
		if off, err := g.Seek(3, holefs.SeekHole); err != nil || off != 3 {
			t.Errorf("sparse file: SEEK_HOLE = %d, %v", off, err)
		}
		// An empty file: ENXIO for both.
		e := create(t, fsys, "e")
		for _, w := range []int{holefs.SeekData, holefs.SeekHole} {
			_, err := e.Seek(0, w)
			wantErrno(t, err, syscall.ENXIO, "empty file")
		}
	})
}

// TestReadWriteSeek checks the file position like os.File's.
func TestReadWriteSeek(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		fsys := newFS(t, holefs.Options{Backend: backend})
		f := create(t, fsys, "f")
		if n, err := f.Write([]byte("hello")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n, err := f.Write([]byte(" world")); n != 6 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		buf := make([]byte, 4)
		// At EOF: 0, io.EOF, and an empty read is 0, nil.
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Errorf("Read at EOF = %d, %v", n, err)
		}
		if n, err := f.Read(nil); n != 0 || err != nil {
			t.Errorf("empty Read = %d, %v", n, err)
		}
		seeks := []struct {
			off    int64
			whence int
			want   int64 // -1: EINVAL
		}{
			{0, io.SeekStart, 0},
			{3, io.SeekCurrent, 3},
			{-2, io.SeekCurrent, 1},
			{-1, io.SeekEnd, 10},
			{5, io.SeekEnd, 16},
			{-12, io.SeekEnd, -1},
			{-1, io.SeekStart, -1},
			{-17, io.SeekCurrent, -1},
			{math.MaxInt64, io.SeekCurrent, -1}, // overflows
			{0, 7, -1},
			{6, io.SeekStart, 6},
		}
		for _, s := range seeks {
			before, _ := f.Seek(0, io.SeekCurrent)
			got, err := f.Seek(s.off, s.whence)
			if s.want < 0 {
				wantErrno(t, err, syscall.EINVAL, fmt.Sprintf("Seek(%d, %d)", s.off, s.whence))
				if after, _ := f.Seek(0, io.SeekCurrent); after != before {
					t.Errorf("failed Seek moved the position from %d to %d", before, after)
				}
				continue
			}
			if err != nil || got != s.want {
				t.Errorf("Seek(%d, %d) = %d, %v; want %d", s.off, s.whence, got, err, s.want)
			}
		}
		// Position 6: read "worl", then "d" and io.EOF on the next call.
		if n, err := f.Read(buf); n != 4 || err != nil || string(buf) != "worl" {
			t.Errorf("Read = %d %q, %v", n, buf, err)
		}
		if n, err := f.Read(buf); n != 1 || err != nil || buf[0] != 'd' {
			t.Errorf("short Read at the end = %d %q, %v (os.File returns nil with a short count)", n, buf[:n], err)
		}
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Errorf("Read at EOF = %d, %v", n, err)
		}
		// ReadAt does not move the position; a short ReadAt says io.EOF.
		if n, err := f.ReadAt(buf, 8); n != 3 || err != io.EOF {
			t.Errorf("short ReadAt = %d, %v", n, err)
		}
		if n, err := f.ReadAt(buf, 100); n != 0 || err != io.EOF {
			t.Errorf("ReadAt past EOF = %d, %v", n, err)
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 11 {
			t.Errorf("position after ReadAt = %d", pos)
		}
		// A write past EOF leaves a hole of zeros and moves the position.
		f.Seek(2, io.SeekEnd)
		if n, err := f.Write([]byte("!")); n != 1 || err != nil {
			t.Fatal(err)
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 14 {
			t.Errorf("position after write = %d", pos)
		}
		if got := string(contents(t, f)); got != "hello world\x00\x00!" {
			t.Errorf("content %q", got)
		}
		// WriteAt does not move the position.
		writeAt(t, f, []byte("H"), 0)
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 14 {
			t.Errorf("position after WriteAt = %d", pos)
		}
		// io.Copy through Read works and sees the whole file.
		f.Seek(0, io.SeekStart)
		all, err := io.ReadAll(f)
		if err != nil || string(all) != "Hello world\x00\x00!" {
			t.Errorf("ReadAll = %q, %v", all, err)
		}
		// Empty writes succeed and change nothing.
		if n, err := f.WriteAt(nil, 1000); n != 0 || err != nil || size(t, f) != 14 {
			t.Errorf("empty WriteAt = %d, %v, size %d", n, err, size(t, f))
		}
	})
}
