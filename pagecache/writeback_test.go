package pagecache

import (
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap"
)

// deviceBytes reads n blocks of file page idx's storage straight from the
// memory device, bypassing the cache and the fault injector.
func (e *env) deviceBytes(t *testing.T, idx, n int64) []byte {
	t.Helper()
	ext, err := e.m.Blocks().Lookup(idx, n)
	if err != nil || ext.Kind != blockmap.Mapped || ext.Count != n {
		t.Fatalf("Lookup(%d, %d) = %+v, %v; want %d mapped blocks", idx, n, ext, err, n)
	}
	buf := make([]byte, n*pg)
	if err := e.mem.ReadBlocks(buf, ext.Block); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestWritebackClusters: contiguous dirty pages go to the device in one
// write per run of contiguous blocks, at most maxClusterPages long; Sync
// leaves nothing dirty and the device holds the data.
func TestWritebackClusters(t *testing.T) {
	tests := []struct {
		name    string
		runs    [][2]int64 // dirty page runs [first, n)
		wantOps int64
	}{
		{"one page", [][2]int64{{0, 1}}, 1},
		{"64 contiguous", [][2]int64{{0, 64}}, 1},
		{"two runs", [][2]int64{{0, 8}, {20, 8}}, 2},
		{"every other page", [][2]int64{{0, 1}, {2, 1}, {4, 1}, {6, 1}, {8, 1}}, 5},
		{"longer than a cluster", [][2]int64{{0, 600}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{}, 1024)
			var pages int64
			for k, r := range tt.runs {
				e.write(t, pattern(byte(k), int(r[1]*pg)), r[0]*pg)
				pages += r[1]
			}
			if e.m.NrDirty() != pages {
				t.Fatalf("NrDirty = %d before Sync, want %d", e.m.NrDirty(), pages)
			}
			ops, writes, s0 := e.dev.Ops(), e.dev.Writes(), e.c.Stats()
			if err := e.m.Sync(0, 0); err != nil {
				t.Fatal(err)
			}
			if e.m.NrDirty() != 0 || e.c.Stats().DirtyPages != 0 {
				t.Fatalf("after Sync: NrDirty %d, cache DirtyPages %d", e.m.NrDirty(), e.c.Stats().DirtyPages)
			}
			if d := e.dev.Ops() - ops; d != tt.wantOps {
				t.Errorf("%d device writes for %d dirty pages in %d runs, want %d", d, pages, len(tt.runs), tt.wantOps)
			}
			if d := e.dev.Writes() - writes; d != pages {
				t.Errorf("%d blocks written, want %d", d, pages)
			}
			s := e.c.Stats()
			if s.WritebackPages-s0.WritebackPages != pages || s.WritebackIOs-s0.WritebackIOs != tt.wantOps {
				t.Errorf("stats: %d pages in %d IOs, want %d in %d", s.WritebackPages-s0.WritebackPages, s.WritebackIOs-s0.WritebackIOs, pages, tt.wantOps)
			}
			for k, r := range tt.runs {
				checkBytes(t, e.deviceBytes(t, r[0], r[1]), pattern(byte(k), int(r[1]*pg)), "device after Sync")
			}
			// Rewrite: pages now know their blocks and still cluster.
			for k, r := range tt.runs {
				e.write(t, pattern(byte(k+100), int(r[1]*pg)), r[0]*pg)
			}
			ops = e.dev.Ops()
			if err := e.m.Sync(0, 0); err != nil {
				t.Fatal(err)
			}
			if d := e.dev.Ops() - ops; d != tt.wantOps {
				t.Errorf("rewrite: %d device writes, want %d", d, tt.wantOps)
			}
			for k, r := range tt.runs {
				checkBytes(t, e.deviceBytes(t, r[0], r[1]), pattern(byte(k+100), int(r[1]*pg)), "device after rewrite")
			}
		})
	}
}

// TestWritebackUnwrittenToMapped: a written page is backed by an unwritten
// block until writeback, which writes it and marks it mapped. A page with
// no block at all (a hole, only possible when a writer skipped Allocate)
// gets one at writeback rather than losing its data.
func TestWritebackUnwrittenToMapped(t *testing.T) {
	for _, allocate := range []bool{true, false} {
		name := "allocated"
		if !allocate {
			name = "hole"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Options{}, 64)
			data := pattern(20, 3*pg)
			e.host.Lock()
			if allocate {
				if err := e.m.Blocks().Allocate(0, 3); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.m.Write(data, 0); err != nil {
				t.Fatal(err)
			}
			e.m.SetSize(3 * pg)
			e.host.Unlock()
			want := blockmap.Unwritten
			if !allocate {
				want = blockmap.Hole
			}
			if ext, _ := e.m.Blocks().Lookup(0, 3); ext.Kind != want || ext.Count != 3 {
				t.Fatalf("before writeback: %+v, want 3 pages %v", ext, want)
			}
			if err := e.m.Sync(0, 0); err != nil {
				t.Fatal(err)
			}
			if ext, _ := e.m.Blocks().Lookup(0, 3); ext.Kind != blockmap.Mapped || ext.Count != 3 {
				t.Fatalf("after writeback: %+v, want 3 mapped pages", ext)
			}
			checkBytes(t, e.deviceBytes(t, 0, 3), data, "device")
			e.m.InvalidateClean(0, maxPageIdx+1)
			checkBytes(t, e.readAll(t, 0, 3*pg, nil), data, "re-read")
		})
	}
}

// TestSyncRange writes back only the pages of the byte range.
func TestSyncRange(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(21, 10*pg), 0)
	if got := e.m.NextUnwritten(0, 100); got != 0 {
		t.Fatalf("NextUnwritten = %d, want 0", got)
	}
	// Bytes [2*pg+1, 5*pg-1) touch pages 2, 3 and 4.
	if err := e.m.Sync(2*pg+1, 3*pg-2); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		p := e.m.index.lookup(i)
		if want := i < 2 || i > 4; p.Dirty() != want {
			t.Fatalf("after Sync of pages 2-4: page %d dirty = %v", i, p.Dirty())
		}
	}
	if e.m.NrDirty() != 7 {
		t.Fatalf("NrDirty = %d, want 7", e.m.NrDirty())
	}
	if got := e.m.NextUnwritten(2, 100); got != 5 {
		t.Fatalf("NextUnwritten(2) = %d, want 5", got)
	}
	if err := e.m.writeback(0, maxPageIdx+1, false, 0); err != nil {
		t.Fatal(err)
	}
	if e.m.NrDirty() != 0 || e.m.NextUnwritten(0, maxPageIdx+1) != -1 {
		t.Fatalf("after a non-waiting writeback of everything: NrDirty %d", e.m.NrDirty())
	}
}

// TestWritebackBusyPages: a non-waiting writeback skips a locked dirty page; Sync
// waits for it, and for writeback in flight on a clean page.
func TestWritebackBusyPages(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(22, 6*pg), 0)
	p := e.m.findGet(3)
	p.lock()
	if err := e.m.writeback(0, maxPageIdx+1, false, 0); err != nil {
		t.Fatal(err)
	}
	if !p.Dirty() || e.m.NrDirty() != 1 {
		t.Fatalf("non-waiting writeback: locked page dirty %v, NrDirty %d; want it skipped and the rest written", p.Dirty(), e.m.NrDirty())
	}
	done := make(chan error, 1)
	go func() { done <- e.m.Sync(0, 0) }()
	waitSleeper(t, p, "Sync to wait for the locked page")
	select {
	case <-done:
		t.Fatal("Sync returned while a dirty page in range was locked")
	default:
	}
	p.unlock()
	within(t, "Sync after the page lock was released", func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	if p.Dirty() || e.m.NrDirty() != 0 {
		t.Fatal("Sync left the page dirty")
	}

	// Writeback in flight (started by someone else) on a clean page.
	p.set(pgWriteback)
	go func() { done <- e.m.Sync(0, 0) }()
	waitSleeper(t, p, "Sync to wait for writeback in flight")
	select {
	case <-done:
		t.Fatal("Sync returned while writeback was in flight in its range")
	default:
	}
	p.endWriteback()
	within(t, "Sync after writeback ended", func() { <-done })
	p.put()
}

// TestWritebackRedirty: a page written again after writeback copied it is
// dirty again, and the next Sync writes the new data.
func TestWritebackRedirty(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(23, pg), 0)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	second := pattern(24, pg)
	e.write(t, second, 0)
	if e.m.NrDirty() != 1 {
		t.Fatalf("NrDirty after rewrite = %d, want 1", e.m.NrDirty())
	}
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, e.deviceBytes(t, 0, 1), second, "device after the second Sync")
}

// TestWritebackTailPastEOF: bytes of the last page past EOF never reach
// the device.
func TestWritebackTailPastEOF(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(25, pg), 0)
	e.host.Lock()
	e.m.SetSize(100) // as if truncated without the page being trimmed
	e.host.Unlock()
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	got := e.deviceBytes(t, 0, 1)
	want := make([]byte, pg)
	copy(want, pattern(25, 100))
	checkBytes(t, got, want, "device page with EOF at 100")
}

// TestWritebackErrseq: a writeback error fails the Sync that saw it and is
// reported by ErrCheck once to each cursor sampled before it, and to one
// sampled after it while no cursor has reported it yet; never to a cursor
// sampled after some cursor reported it.
func TestWritebackErrseq(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(26, 4*pg), 0)
	a, b := e.m.ErrSample(), e.m.ErrSample()
	if err := e.m.ErrCheck(&a); err != nil {
		t.Fatalf("ErrCheck before any error = %v", err)
	}
	e.dev.FailAfter(0, syscall.EIO)
	err := e.m.Sync(0, 0)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing device = %v, want EIO", err)
	}
	if e.m.NrDirty() != 0 {
		t.Fatalf("NrDirty after failed writeback = %d; pages are cleaned, the error recorded", e.m.NrDirty())
	}
	if p := e.m.index.lookup(0); p == nil || !p.has(pgError) || !p.Uptodate() {
		t.Fatal("page of a failed writeback not marked Error (or lost)")
	}
	c := e.m.ErrSample()
	e.dev.Clear()
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatalf("Sync with nothing dirty after an error = %v; the error is reported once, by the Sync that saw it", err)
	}
	for _, cur := range []struct {
		name string
		v    *uint64
		want error
	}{{"a", &a, syscall.EIO}, {"b", &b, syscall.EIO}, {"c (sampled after, while unseen)", &c, syscall.EIO}} {
		if err := e.m.ErrCheck(cur.v); err != cur.want {
			t.Fatalf("cursor %s: first ErrCheck = %v, want %v", cur.name, err, cur.want)
		}
		if err := e.m.ErrCheck(cur.v); err != nil {
			t.Fatalf("cursor %s: second ErrCheck = %v, want nil (reported once)", cur.name, err)
		}
	}
	if d := e.m.ErrSample(); e.m.ErrCheck(&d) != nil {
		t.Fatal("a cursor sampled after the error was reported sees it again")
	}

	// A second error, with another errno, is seen once by every cursor,
	// including c; two errors between checks are reported once.
	ext, _ := e.m.Blocks().Lookup(1, 1)
	e.dev.FailWrite(ext.Block, syscall.ENOSPC)
	e.write(t, pattern(27, pg), pg)
	if err := e.m.Sync(0, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync = %v, want ENOSPC", err)
	}
	e.write(t, pattern(28, pg), pg)
	if err := e.m.Sync(0, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync = %v, want ENOSPC", err)
	}
	for _, v := range []*uint64{&a, &b, &c} {
		if err := e.m.ErrCheck(v); err != syscall.ENOSPC {
			t.Fatalf("ErrCheck after two ENOSPC writebacks = %v, want ENOSPC", err)
		}
		if err := e.m.ErrCheck(v); err != nil {
			t.Fatalf("second ErrCheck = %v, want nil", err)
		}
	}
	// The failure of one block failed only its own write: page 0 and the
	// others (written before the fault) are on the device.
	e.dev.Clear()
	e.write(t, pattern(29, pg), pg)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, e.deviceBytes(t, 1, 1), pattern(29, pg), "page 1 after the device recovered")
}
