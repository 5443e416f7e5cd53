package pagecache

import (
	"bytes"
	"errors"
	"io"
	"math"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap"

	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/internal/lockcheck"
)

// TestReadMissThenHit: a read of a page that is not cached reads the
// device once; the second read of it is served from the cache.
func TestReadMissThenHit(t *testing.T) {
	for _, mode := range LockModes {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t, Options{LockMode: mode}, 64)
			data := pattern(1, 8*pg)
			e.populate(t, data)
			ops, reads := e.dev.Ops(), e.dev.Reads()

			got := e.readAll(t, 3*pg+100, 2*pg, nil) // pages 3 and 5's head: 3 pages
			checkBytes(t, got, data[3*pg+100:5*pg+100], "first read")
			if d := e.dev.Reads() - reads; d != 3 {
				t.Fatalf("first read: %d blocks read from the device, want 3", d)
			}
			if n := e.m.NrPages(); n != 3 {
				t.Fatalf("NrPages = %d after reading pages 3-5 with no readahead state, want 3", n)
			}
			ops, reads = e.dev.Ops(), e.dev.Reads()
			got = e.readAll(t, 3*pg, 3*pg, nil)
			checkBytes(t, got, data[3*pg:6*pg], "second read")
			if e.dev.Ops() != ops || e.dev.Reads() != reads {
				t.Fatalf("second read of cached pages did device I/O: ops %d -> %d", ops, e.dev.Ops())
			}
			if s := e.c.Stats(); s.Misses == 0 || s.FillPages < 3 {
				t.Fatalf("Stats after misses: %+v", s)
			}
		})
	}
}

func TestReadEOF(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	const size = 2*pg + 1000
	data := pattern(2, size)
	e.write(t, data, 0)
	tests := []struct {
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{0, size, size, nil},                  // exactly to EOF: no error
		{0, size + 1, size, io.EOF},           // one past: short, EOF
		{0, 4 * pg, size, io.EOF},             // far past
		{2 * pg, 1000, 1000, nil},             // last partial page, exactly
		{2*pg + 990, 100, 10, io.EOF},         // straddles EOF
		{size - 1, 1, 1, nil},                 // last byte
		{size, 1, 0, io.EOF},                  // at EOF
		{size + 5*pg, 10, 0, io.EOF},          // far past EOF
		{100, 0, 0, nil},                      // empty read inside the file
		{-1, 10, 0, syscall.EINVAL},           // bad offset
		{pg - 10, 20, 20, nil},                // across a page boundary
		{pg, pg, pg, nil},                     // one aligned page
		{2*pg + 999, 1, 1, nil},               // last byte of the partial page
		{2*pg + 1000 - 4096, 4096, 4096, nil}, // unaligned page ending at EOF
	}
	for _, ra := range []*ReadaheadState{nil, new(ReadaheadState)} {
		for _, tt := range tests {
			buf := make([]byte, tt.n)
			n, err := e.m.Read(buf, tt.off, ra)
			if n != tt.wantN || err != tt.wantErr {
				t.Errorf("Read(%d bytes at %d, ra %v) = %d, %v; want %d, %v", tt.n, tt.off, ra != nil, n, err, tt.wantN, tt.wantErr)
				continue
			}
			if n > 0 && !bytes.Equal(buf[:n], data[tt.off:tt.off+int64(n)]) {
				t.Errorf("Read(%d bytes at %d): wrong data", tt.n, tt.off)
			}
		}
	}
	if e.m.index.lookup(3) != nil {
		t.Fatal("a read past EOF created a page past EOF")
	}
}

// TestReadHoles: holes and unwritten blocks read as zeros without device
// I/O, and data around them is read right.
func TestReadHoles(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(3, pg)
	e.write(t, data, 0)    // page 0: data
	e.write(t, data, 6*pg) // page 6: data; 1-5 hole
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.host.Lock()
	if err := e.m.Blocks().Allocate(8, 4); err != nil { // 8-11 unwritten
		t.Fatal(err)
	}
	e.m.SetSize(12 * pg)
	e.host.Unlock()
	e.m.InvalidateClean(0, maxPageIdx+1)

	ops := e.dev.Ops()
	got := e.readAll(t, pg, 5*pg, new(ReadaheadState))
	if !bytes.Equal(got, make([]byte, 5*pg)) {
		t.Fatal("hole pages 1-5 do not read as zeros")
	}
	got = e.readAll(t, 8*pg, 4*pg, nil)
	if !bytes.Equal(got, make([]byte, 4*pg)) {
		t.Fatal("unwritten pages 8-11 do not read as zeros")
	}
	if d := e.dev.Ops() - ops; d != 0 {
		t.Fatalf("reading holes and unwritten blocks did %d device ops, want 0", d)
	}
	whole := e.readAll(t, 0, 12*pg, nil)
	want := make([]byte, 12*pg)
	copy(want, data)
	copy(want[6*pg:], data)
	checkBytes(t, whole, want, "whole file")
	for _, i := range []int64{1, 8} {
		ext, err := e.m.Blocks().Lookup(i, 1)
		if err != nil {
			t.Fatal(err)
		}
		if p := e.m.index.lookup(i); p == nil || !p.Uptodate() || p.block != -1 {
			t.Fatalf("page %d (%v): cached %v, want uptodate with no block", i, ext.Kind, p != nil)
		}
	}
}

// TestReadEIO: a failed device read fails the read with EIO and leaves the
// page not uptodate; once the device recovers the same page reads fine.
func TestReadEIO(t *testing.T) {
	for _, withRA := range []bool{false, true} {
		name := "no-readahead"
		if withRA {
			name = "readahead"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Options{}, 64)
			data := pattern(4, 8*pg)
			e.populate(t, data)
			ext, err := e.m.Blocks().Lookup(2, 1)
			if err != nil || ext.Kind != blockmap.Mapped {
				t.Fatalf("Lookup(2) = %+v, %v", ext, err)
			}
			e.dev.FailRead(ext.Block, syscall.EIO)
			var ra *ReadaheadState
			if withRA {
				ra = new(ReadaheadState)
			}
			buf := make([]byte, pg)
			n, err := e.m.Read(buf, 2*pg, ra)
			if n != 0 || !errors.Is(err, syscall.EIO) {
				t.Fatalf("Read of a failing block = %d, %v; want 0, EIO", n, err)
			}
			p := e.m.index.lookup(2)
			if p == nil {
				t.Fatal("failed page not in the cache (it should stay, not uptodate, for a retry)")
			}
			if p.Uptodate() || !p.has(pgError) || p.has(pgLocked) {
				t.Fatalf("failed page: uptodate %v, error %v, locked %v; want false, true, false", p.Uptodate(), p.has(pgError), p.has(pgLocked))
			}
			// Still failing: a retry reads the device again and fails again.
			if _, err := e.m.Read(buf, 2*pg, ra); !errors.Is(err, syscall.EIO) {
				t.Fatalf("second Read of the failing block = %v, want EIO", err)
			}
			e.dev.Clear()
			got := e.readAll(t, 2*pg, pg, ra)
			checkBytes(t, got, data[2*pg:3*pg], "read after the device recovered")
			if p := e.m.index.lookup(2); p == nil || !p.Uptodate() || p.has(pgError) {
				t.Fatal("page not uptodate, or still marked Error, after a good read")
			}
		})
	}
}

// TestReadEIOInReadaheadWindow: a bad block in the readahead window, not
// in the pages asked for, must not fail the read (the window is read in one
// device I/O; the asked page is retried alone, as Linux's
// filemap_update_page does). A read reaching the bad page gets what came
// before it and then the error.
func TestReadEIOInReadaheadWindow(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(5, 8*pg)
	e.populate(t, data)
	ext, _ := e.m.Blocks().Lookup(2, 1)
	e.dev.FailRead(ext.Block, syscall.EIO)
	ra := new(ReadaheadState)
	got := e.readAll(t, 0, pg, ra) // window [0, 4) includes bad page 2
	checkBytes(t, got, data[:pg], "page 0 with a bad page 2 in the window")
	if e.m.index.lookup(3) == nil {
		t.Fatal("readahead did not create the window past the asked page")
	}
	buf := make([]byte, 2*pg)
	n, err := e.m.Read(buf, pg, ra)
	if n != pg || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Read(pages 1-2) with bad page 2 = %d, %v; want %d, EIO", n, err, pg)
	}
	checkBytes(t, buf[:n], data[pg:2*pg], "page 1 before the bad page")
}

// TestReadWhileFileShrinks: a read that loaded the file size before a
// truncate down must stop at the new end of file, not spin forever on a
// page the readahead clamp refuses to create. The truncate runs from the
// BeforeFill hook of the read's first fill, with the real protocol's locks.
func TestReadWhileFileShrinks(t *testing.T) {
	var e *env
	fired := false
	hooks := &Hooks{BeforeFill: func(m *Mapping, index, n int64) {
		if fired {
			return
		}
		fired = true
		inv := m.LockRemove(0, math.MaxInt64)
		defer inv.Unlock()
		m.SetSize(pg)
		if err := m.TruncateRange(pg, 1<<62); err != nil {
			t.Error(err)
		}
		if err := m.Blocks().Truncate(1); err != nil {
			t.Error(err)
		}
	}}
	// A one-page readahead window makes page 1 a fill of its own.
	e = newEnv(t, Options{ReadaheadPages: 1, Hooks: hooks}, 64)
	data := pattern(6, 2*pg)
	e.populate(t, data)
	buf := make([]byte, 2*pg)
	var n int
	var err error
	within(t, "Read racing a truncate down", func() { n, err = e.m.Read(buf, 0, new(ReadaheadState)) })
	if !fired {
		t.Fatal("hook did not run")
	}
	if n != pg || err != io.EOF {
		t.Fatalf("Read = %d, %v; want %d, io.EOF (the file shrank to one page)", n, err, pg)
	}
	checkBytes(t, buf[:n], data[:pg], "page 0")
	if e.m.index.lookup(1) != nil {
		t.Fatal("a page past the new EOF was created")
	}
}

// TestReadLocked reads like Read without taking the inode lock, so a
// caller holding it exclusive (a two-file copy) does not deadlock in
// LockRWSem mode.
func TestReadLocked(t *testing.T) {
	e := newEnv(t, Options{LockMode: LockRWSem}, 64)
	data := pattern(7, 3*pg)
	e.populate(t, data)
	e.host.Lock()
	defer e.host.Unlock()
	buf := make([]byte, 3*pg)
	var n int
	var err error
	within(t, "ReadLocked under the inode lock", func() { n, err = e.m.ReadLocked(buf, 0) })
	if n != 3*pg || err != nil {
		t.Fatalf("ReadLocked = %d, %v", n, err)
	}
	checkBytes(t, buf, data, "ReadLocked")
	if _, err := e.m.ReadLocked(buf, -1); err != syscall.EINVAL {
		t.Fatalf("ReadLocked at -1 = %v, want EINVAL", err)
	}
}

// TestMemoryHoleReadCachesNothing: reading holes of a memory-backed file
// returns zeros without creating pages, which could never be evicted.
func TestMemoryHoleReadCachesNothing(t *testing.T) {
	c := NewCache(Options{})
	t.Cleanup(func() { c.Close() })
	host := &lockcheck.RWMutex{}
	host.Init(lockcheck.RankInode, 99)
	m := c.NewMapping(MappingOptions{Blocks: memfs.New(1 << 20).NewFile(0), Host: host, Unevictable: true, Key: 99})
	m.SetSize(1 << 30)
	buf := bytes.Repeat([]byte{1}, 3*pg+10)
	if n, err := m.Read(buf, 5*pg+7, nil); err != nil || n != len(buf) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("a hole of a memory file read as non-zero")
	}
	if n := m.NrPages(); n != 0 {
		t.Fatalf("reading holes cached %d unevictable pages", n)
	}
}
