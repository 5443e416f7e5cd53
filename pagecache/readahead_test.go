package pagecache

import (
	"errors"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

type fillRec struct{ index, n int64 }

// fillRecorder is a BeforeFill hook that records every fill.
type fillRecorder struct {
	mu    sync.Mutex
	fills []fillRec
}

func (r *fillRecorder) hooks() *Hooks {
	return &Hooks{BeforeFill: func(_ *Mapping, index, n int64) {
		r.mu.Lock()
		r.fills = append(r.fills, fillRec{index, n})
		r.mu.Unlock()
	}}
}

func (r *fillRecorder) reset() {
	r.mu.Lock()
	r.fills = nil
	r.mu.Unlock()
}

func (r *fillRecorder) get() []fillRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fills)
}

// quiesce waits until the async readahead window ra points at is read:
// every page below its end (clipped to the file) cached and uptodate.
func (e *env) quiesce(t *testing.T, ra *ReadaheadState) {
	t.Helper()
	ra.mu.Lock()
	end := ra.start + ra.size
	ra.mu.Unlock()
	end = min(end, (e.m.Size()+pg-1)/pg)
	eventually(t, "the readahead window to be read", func() bool {
		for i := int64(0); i < end; i++ {
			p := e.m.index.lookup(i)
			if p == nil || !p.Uptodate() || p.has(pgLocked) {
				return false
			}
		}
		return true
	})
}

// TestReadaheadSequentialWindowGrows reads a file one page at a time,
// letting each async readahead finish before the next read, so the run is
// deterministic: only the first page misses, the windows grow from the
// initial size to the maximum, tile the file, and each is one device read.
func TestReadaheadSequentialWindowGrows(t *testing.T) {
	const nPages = 256
	rec := &fillRecorder{}
	e := newEnv(t, Options{Hooks: rec.hooks()}, 2*nPages)
	data := pattern(8, nPages*pg)
	e.populate(t, data)
	rec.reset()
	ops := e.dev.Ops()
	ra := new(ReadaheadState)
	for i := int64(0); i < nPages; i++ {
		got := e.readAll(t, i*pg, pg, ra)
		checkBytes(t, got, data[i*pg:(i+1)*pg], "sequential page")
		e.quiesce(t, ra)
	}
	s := e.c.Stats()
	if s.Misses != 1 {
		t.Errorf("Misses = %d, want 1: after the first page every page should come from readahead", s.Misses)
	}
	if s.ReadaheadPages != nPages-1 {
		t.Errorf("ReadaheadPages = %d, want %d (every page but the one asked for first)", s.ReadaheadPages, nPages-1)
	}
	fills := rec.get()
	slices.SortFunc(fills, func(a, b fillRec) int { return int(a.index - b.index) })
	if int64(len(fills)-1) != s.AsyncReadaheads {
		t.Errorf("%d fills but AsyncReadaheads = %d; want one sync window and the rest async", len(fills), s.AsyncReadaheads)
	}
	// Windows tile the file.
	next := int64(0)
	for _, f := range fills {
		if f.index != next {
			t.Fatalf("windows %v: gap or overlap at page %d", fills, next)
		}
		next += f.n
	}
	if next != nPages {
		t.Fatalf("windows %v end at %d, want %d", fills, next, nPages)
	}
	// They grow: the first is the initial window, each is at least as big
	// as the one before (but the last, clipped at EOF), and the maximum is
	// reached.
	maxRA := int64(e.c.opts.ReadaheadPages)
	if fills[0].n != 4 {
		t.Errorf("first window %d pages, want 4 (4x a one-page read)", fills[0].n)
	}
	for k := 1; k < len(fills)-1; k++ {
		if fills[k].n < fills[k-1].n || fills[k].n > maxRA {
			t.Fatalf("windows %v do not grow up to %d", fills, maxRA)
		}
	}
	if fills[len(fills)-2].n != maxRA {
		t.Errorf("windows %v never reach the maximum %d", fills, maxRA)
	}
	if d := e.dev.Ops() - ops; d != int64(len(fills)) {
		t.Errorf("%d device ops for %d windows; want one read per window", d, len(fills))
	}
	if d := e.dev.Ops() - ops; d*8 > nPages {
		t.Errorf("%d device ops to read %d pages: reads are not batched", d, nPages)
	}
}

// TestReadaheadConcurrentReaders reads one file with several sequential
// readers at once without waiting for readahead: the data must be right
// and every page must have been read from the device once at most.
func TestReadaheadConcurrentReaders(t *testing.T) {
	const nPages = 512
	e := newEnv(t, Options{}, 2*nPages)
	data := pattern(9, nPages*pg)
	e.populate(t, data)
	reads := e.dev.Reads()
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(chunk int) {
			defer wg.Done()
			ra := new(ReadaheadState)
			buf := make([]byte, chunk)
			for off := int64(0); off < nPages*pg; off += int64(chunk) {
				n, err := e.m.Read(buf, off, ra)
				if err != nil || n != chunk || string(buf) != string(data[off:off+int64(chunk)]) {
					errs <- "bad read"
					return
				}
			}
		}([]int{pg, 2 * pg, pg / 2, 16 * pg}[r])
	}
	within(t, "readers", wg.Wait)
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if d := e.dev.Reads() - reads; d > nPages {
		t.Fatalf("%d blocks read for a %d-page file: a page was read twice", d, nPages)
	}
	if s := e.c.Stats(); s.AsyncReadaheads == 0 || s.ReadaheadPages == 0 {
		t.Fatalf("sequential readers started no readahead: %+v", s)
	}
}

// TestReadaheadRandomAdvice: under FADV_RANDOM a sequential reader reads
// exactly the pages it asks for, one device read each; FADV_NORMAL turns
// readahead back on.
func TestReadaheadRandomAdvice(t *testing.T) {
	e := newEnv(t, Options{}, 128)
	data := pattern(10, 64*pg)
	e.populate(t, data)
	ra := new(ReadaheadState)
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	ops := e.dev.Ops()
	for i := int64(0); i < 16; i++ {
		checkBytes(t, e.readAll(t, i*pg, pg, ra), data[i*pg:(i+1)*pg], "random-advice read")
		if n := e.m.NrPages(); n != i+1 {
			t.Fatalf("after reading %d pages under FADV_RANDOM: NrPages = %d", i+1, n)
		}
	}
	if d := e.dev.Ops() - ops; d != 16 {
		t.Fatalf("%d device ops for 16 pages under FADV_RANDOM, want 16", d)
	}
	if s := e.c.Stats(); s.ReadaheadPages != 0 || s.AsyncReadaheads != 0 {
		t.Fatalf("readahead under FADV_RANDOM: %+v", s)
	}
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_NORMAL); err != nil {
		t.Fatal(err)
	}
	e.readAll(t, 16*pg, pg, ra)
	if n := e.m.NrPages(); n <= 17 {
		t.Fatalf("after FADV_NORMAL a sequential read cached %d pages, want readahead past 17", n)
	}
}

// TestReadaheadRandomMiss: a read that does not continue the previous one
// reads only the pages asked for.
func TestReadaheadRandomMiss(t *testing.T) {
	e := newEnv(t, Options{}, 256)
	data := pattern(11, 128*pg)
	e.populate(t, data)
	ra := new(ReadaheadState)
	ops := e.dev.Ops()
	checkBytes(t, e.readAll(t, 100*pg, 2*pg, ra), data[100*pg:102*pg], "pages 100-101")
	checkBytes(t, e.readAll(t, 7*pg+5, 10, ra), data[7*pg+5:7*pg+15], "page 7")
	checkBytes(t, e.readAll(t, 50*pg, pg, ra), data[50*pg:51*pg], "page 50")
	if n := e.m.NrPages(); n != 4 {
		t.Fatalf("NrPages = %d after random reads of 4 pages, want 4", n)
	}
	if d := e.dev.Ops() - ops; d != 3 {
		t.Fatalf("%d device ops for 3 random reads, want 3", d)
	}
	if s := e.c.Stats(); s.ReadaheadPages != 0 {
		t.Fatalf("random reads counted readahead: %+v", s)
	}
}

func TestFadviseSequentialDoublesWindow(t *testing.T) {
	e := newEnv(t, Options{ReadaheadPages: 16}, 16)
	ra := new(ReadaheadState)
	if got := e.m.maxRA(ra); got != 16 {
		t.Fatalf("maxRA = %d, want 16", got)
	}
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_SEQUENTIAL); err != nil {
		t.Fatal(err)
	}
	if got := e.m.maxRA(ra); got != 32 {
		t.Fatalf("maxRA under FADV_SEQUENTIAL = %d, want 32", got)
	}
	if err := e.m.Fadvise(ra, 0, 0, 12345); err != syscall.EINVAL {
		t.Fatalf("Fadvise(bad advice) = %v, want EINVAL", err)
	}
	if err := e.m.Fadvise(ra, -1, 0, unix.FADV_NORMAL); err != syscall.EINVAL {
		t.Fatalf("Fadvise(off -1) = %v, want EINVAL", err)
	}
}

// TestFadviseNoReuse: reads under FADV_NOREUSE do not mark pages
// referenced, so the eviction clock takes them first.
func TestFadviseNoReuse(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.populate(t, pattern(12, 4*pg))
	ra := new(ReadaheadState)
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	e.readAll(t, 0, pg, ra)
	if p := e.m.index.lookup(0); p == nil || !p.has(pgReferenced) {
		t.Fatal("a normal read did not mark the page referenced")
	}
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_NOREUSE); err != nil {
		t.Fatal(err)
	}
	e.readAll(t, 2*pg, pg, ra)
	if p := e.m.index.lookup(2); p == nil || p.has(pgReferenced) {
		t.Fatal("a FADV_NOREUSE read marked the page referenced")
	}
}

// TestReadaheadFillsRange: Readahead and FADV_WILLNEED cache the range in
// windows of the maximum size, clipped at EOF, and reads of it then do no
// device I/O.
func TestReadaheadFillsRange(t *testing.T) {
	tests := []struct {
		name      string
		off, n    int64
		first     int64 // first page expected cached
		wantPages int64
		fadvise   bool
	}{
		{"aligned", 8 * pg, 40 * pg, 8, 40, false},
		{"unaligned", 8*pg + 100, 2 * pg, 8, 3, false},
		{"to EOF with n=0", 90 * pg, 0, 90, 10, false},
		{"clipped at EOF", 95 * pg, 50 * pg, 95, 5, false},
		{"past EOF", 200 * pg, pg, 0, 0, false},
		{"WILLNEED", 0, 100 * pg, 0, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fillRecorder{}
			e := newEnv(t, Options{ReadaheadPages: 16, Hooks: rec.hooks()}, 256)
			data := pattern(13, 100*pg)
			e.populate(t, data)
			rec.reset()
			var err error
			if tt.fadvise {
				err = e.m.Fadvise(new(ReadaheadState), tt.off, tt.n, unix.FADV_WILLNEED)
			} else {
				err = e.m.Readahead(tt.off, tt.n)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := e.m.NrPages(); n != tt.wantPages {
				t.Fatalf("NrPages = %d, want %d", n, tt.wantPages)
			}
			for _, f := range rec.get() {
				if f.n > 16 {
					t.Fatalf("fill of %d pages, more than the 16-page window", f.n)
				}
			}
			if tt.wantPages == 0 {
				return
			}
			ops := e.dev.Ops()
			got := e.readAll(t, tt.first*pg, int(tt.wantPages*pg), nil)
			checkBytes(t, got, data[tt.first*pg:(tt.first+tt.wantPages)*pg], "read after readahead")
			if e.dev.Ops() != ops {
				t.Fatal("reading a range after Readahead did device I/O")
			}
		})
	}
	e := newEnv(t, Options{}, 8)
	if err := e.m.Readahead(-1, 10); err != syscall.EINVAL {
		t.Fatalf("Readahead(-1) = %v, want EINVAL", err)
	}
	if err := e.m.Readahead(0, -1); err != syscall.EINVAL {
		t.Fatalf("Readahead(n -1) = %v, want EINVAL", err)
	}
}

// TestInvalidateCleanKeepsDirty: dropping clean pages never drops a dirty
// page (its data exists nowhere else) or a page mapped in a view.
func TestInvalidateCleanKeepsDirty(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(14, 16*pg)
	e.populate(t, data)
	e.readAll(t, 0, 16*pg, nil)
	newData := pattern(15, pg)
	e.write(t, newData, 3*pg)
	v, err := e.m.Mmap(5*pg, pg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unmap()
	if _, err := v.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatal(err)
	}
	dropped := e.m.InvalidateClean(0, maxPageIdx+1)
	if dropped != 14 || e.m.NrPages() != 2 {
		t.Fatalf("InvalidateClean dropped %d, left %d pages; want 14 dropped, 2 left", dropped, e.m.NrPages())
	}
	if e.m.index.lookup(3) == nil || e.m.index.lookup(5) == nil {
		t.Fatal("the dirty page 3 or the mapped page 5 was dropped")
	}
	if e.m.NrDirty() != 1 {
		t.Fatalf("NrDirty = %d, want 1", e.m.NrDirty())
	}
	checkBytes(t, e.readAll(t, 3*pg, pg, nil), newData, "dirty page after InvalidateClean")
}

// TestFadviseDontneed: FADV_DONTNEED writes back the range and drops its
// clean pages (NrPages goes down); dirty data reaches the device first, so
// nothing is lost; mapped pages stay; pages only partly in the range stay.
func TestFadviseDontneed(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(16, 16*pg)
	e.populate(t, data)
	e.readAll(t, 0, 16*pg, nil)
	newData := pattern(17, pg)
	e.write(t, newData, 3*pg)
	copy(data[3*pg:], newData)
	v, err := e.m.Mmap(5*pg, pg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unmap()
	if _, err := v.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatal(err)
	}
	ra := new(ReadaheadState)

	// Bytes [pg+1, 4*pg+1): only pages 2 and 3 are wholly inside.
	if err := e.m.Fadvise(ra, pg+1, 3*pg, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 16; i++ {
		gone := i == 2 || i == 3
		if (e.m.index.lookup(i) == nil) != gone {
			t.Fatalf("after DONTNEED of pages 2-3: page %d cached = %v", i, !gone)
		}
	}

	writes := e.dev.Writes()
	before := e.m.NrPages()
	e.write(t, newData, 9*pg)
	copy(data[9*pg:], newData)
	if err := e.m.Fadvise(ra, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if n := e.m.NrPages(); n >= before || n != 1 {
		t.Fatalf("NrPages after DONTNEED = %d (was %d), want 1 (the mapped page)", n, before)
	}
	if e.m.index.lookup(5) == nil {
		t.Fatal("DONTNEED dropped a mapped page")
	}
	if e.m.NrDirty() != 0 || e.dev.Writes() == writes {
		t.Fatalf("dirty page 9 not written back by DONTNEED: NrDirty %d, device writes %d -> %d", e.m.NrDirty(), writes, e.dev.Writes())
	}
	checkBytes(t, e.readAll(t, 0, 16*pg, nil), data, "file after DONTNEED")
}

// TestNoFillAfterRelease: a fill that starts after its file went away (an
// async readahead outliving the last close and unlink) adds no pages,
// which nothing would ever truncate or evict.
func TestNoFillAfterRelease(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.populate(t, pattern(91, 8*pg))
	e.m.Release()
	if err := e.m.fillRange(0, 8, -1, -1, false); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fill of a released mapping = %v, want EIO", err)
	}
	if n := e.m.NrPages(); n != 0 {
		t.Fatalf("a released mapping got %d pages", n)
	}
}

// TestRandomMissPastEOF: a random-access miss whose page a truncate moved
// past EOF creates no page and reports EOF.
func TestRandomMissPastEOF(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.populate(t, pattern(92, 8*pg))
	e.truncate(t, 2*pg)
	ra := new(ReadaheadState)
	ra.random = true
	if err := e.m.syncReadahead(ra, 5, 1); err != io.EOF {
		t.Fatalf("random miss past EOF = %v, want io.EOF", err)
	}
	ra.random = false
	if err := e.m.syncReadahead(ra, 6, 1); err != io.EOF { // not sequential
		t.Fatalf("non-sequential miss past EOF = %v, want io.EOF", err)
	}
	if n := e.m.NrPages(); n != 0 {
		t.Fatalf("%d pages created past EOF", n)
	}
}
