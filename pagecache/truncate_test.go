package pagecache

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"syscall"
	"testing"
)

func TestTruncateRangeNeedsInvalidateLock(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, pattern(40, 4*pg), 0)
	try := func(what string) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil {
				t.Fatalf("TruncateRange %s did not panic", what)
			}
			if s, ok := r.(string); !ok || !strings.Contains(s, "invalidate lock") {
				t.Fatalf("TruncateRange %s panicked with %v", what, r)
			}
		}()
		_ = e.m.TruncateRange(0, math.MaxInt64)
	}
	try("without the invalidate lock")
	sh := e.m.InvalidateLock().RLock(0, maxPageIdx+1)
	try("with the invalidate lock shared")
	sh.Unlock()
	other := e.m.LockRemove(0, pg)
	try("with the invalidate lock exclusive over another range")
	other.Unlock()
	if e.m.NrPages() != 4 || e.m.NrDirty() != 4 {
		t.Fatalf("a refused TruncateRange changed the cache: %d pages, %d dirty", e.m.NrPages(), e.m.NrDirty())
	}
	inv := e.m.LockRemove(0, math.MaxInt64)
	if err := e.m.TruncateRange(0, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	inv.Unlock()
	if e.m.NrPages() != 0 {
		t.Fatalf("NrPages = %d after truncating everything", e.m.NrPages())
	}
}

// truncateRange runs TruncateRange under the invalidate lock.
func (e *env) truncateRange(t *testing.T, lstart, lend int64) {
	t.Helper()
	defer e.m.LockRemove(lstart, lend).Unlock()
	if err := e.m.TruncateRange(lstart, lend); err != nil {
		t.Fatalf("TruncateRange(%d, %d): %v", lstart, lend, err)
	}
}

// TestTruncateRange removes the pages wholly inside the range and zeroes
// the parts of its edge pages inside it, whether the pages are dirty,
// clean, or not cached at all (then the edge is read in to be zeroed).
func TestTruncateRange(t *testing.T) {
	const nPages = 10
	tests := []struct {
		name         string
		lstart, lend int64
		gone         []int64 // pages removed
	}{
		{"whole pages", 3 * pg, 6 * pg, []int64{3, 4, 5}},
		{"partial edges", 2*pg + 100, 7*pg + 200, []int64{3, 4, 5, 6}},
		{"inside one page", pg + 10, pg + 20, nil},
		{"partial start to EOF", 4*pg + 1, math.MaxInt64, []int64{5, 6, 7, 8, 9}},
		{"everything", 0, math.MaxInt64, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"empty", 5 * pg, 5 * pg, nil},
		{"reversed", 6 * pg, 5 * pg, nil},
		{"end edge only", 3 * pg, 4*pg + 7, []int64{3}},
		{"adjacent edges", 3*pg + 5, 4*pg + 7, nil},
	}
	for _, state := range []string{"dirty", "clean", "uncached"} {
		for _, tt := range tests {
			t.Run(state+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, Options{}, 64)
				data := pattern(41, nPages*pg)
				e.write(t, data, 0)
				if state != "dirty" {
					if err := e.m.Sync(0, 0); err != nil {
						t.Fatal(err)
					}
				}
				if state == "uncached" {
					e.m.InvalidateClean(0, maxPageIdx+1)
				}
				e.truncateRange(t, tt.lstart, tt.lend)
				want := bytes.Clone(data)
				if tt.lstart < tt.lend {
					clear(want[tt.lstart:min(tt.lend, int64(len(want)))])
				}
				for i := int64(0); i < nPages; i++ {
					p := e.m.index.lookup(i)
					removed := false
					for _, g := range tt.gone {
						removed = removed || g == i
					}
					if removed && p != nil {
						t.Fatalf("page %d survived the truncation", i)
					}
					if !removed && p != nil && !bytes.Equal(p.data[:], want[i*pg:(i+1)*pg]) {
						t.Fatalf("page %d: cached bytes not zeroed right", i)
					}
					if !removed && p == nil && state != "uncached" {
						t.Fatalf("page %d, outside the range, was removed", i)
					}
				}
				// The block map is the VFS's business; punch the whole
				// pages, then check storage agrees with the cache.
				first := (tt.lstart + pg - 1) / pg
				last := int64(nPages)
				if tt.lend != math.MaxInt64 {
					last = tt.lend / pg
				}
				if first < last {
					if err := e.m.Blocks().Punch(first, last-first); err != nil {
						t.Fatal(err)
					}
				}
				checkBytes(t, e.readAll(t, 0, nPages*pg, nil), want, "file after truncation")
				if err := e.m.Sync(0, 0); err != nil {
					t.Fatal(err)
				}
				e.m.InvalidateClean(0, maxPageIdx+1)
				checkBytes(t, e.readAll(t, 0, nPages*pg, nil), want, "file re-read from storage")
			})
		}
	}
}

// TestTruncateRangeHoleEdge: an uncached edge page over a hole is not read
// in (it reads as zeros already).
func TestTruncateRangeHoleEdge(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.host.Lock()
	e.m.SetSize(4 * pg)
	e.host.Unlock()
	ops := e.dev.Ops()
	e.truncateRange(t, pg+100, 2*pg+100)
	if e.m.NrPages() != 0 || e.dev.Ops() != ops {
		t.Fatalf("truncating over holes: %d pages created, %d device ops", e.m.NrPages(), e.dev.Ops()-ops)
	}
}

// TestTruncateRangeCancelsDirty: truncated dirty pages are discarded, never
// written back.
func TestTruncateRangeCancelsDirty(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(42, 10*pg), 0)
	if e.m.NrDirty() != 10 {
		t.Fatal("setup: pages not dirty")
	}
	writes := e.dev.Writes()
	e.truncateRange(t, 2*pg, 8*pg)
	if e.m.NrDirty() != 4 || e.c.Stats().DirtyPages != 4 {
		t.Fatalf("after truncating 6 of 10 dirty pages: NrDirty %d, cache DirtyPages %d; want 4", e.m.NrDirty(), e.c.Stats().DirtyPages)
	}
	if got := e.m.NextUnwritten(2, 8); got != -1 {
		t.Fatalf("NextUnwritten in the truncated range = %d", got)
	}
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	if d := e.dev.Writes() - writes; d != 4 {
		t.Fatalf("Sync wrote %d blocks, want the 4 surviving dirty pages", d)
	}
}

// TestTruncateRangeWaitsForWriteback: a page under writeback is removed
// only after its writeback ends (its block may be freed right after).
func TestTruncateRangeWaitsForWriteback(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(43, 6*pg), 0)
	// Writeback in flight on page 4, as writeback leaves it between
	// clearing Dirty and the device write completing.
	p := e.m.findGet(4)
	p.lock()
	e.m.clearDirty(p)
	p.set(pgWriteback)
	p.unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		inv := e.m.LockRemove(0, math.MaxInt64)
		defer inv.Unlock()
		if err := e.m.TruncateRange(2*pg, math.MaxInt64); err != nil {
			t.Error(err)
		}
	}()
	waitSleeper(t, p, "TruncateRange to wait for writeback")
	select {
	case <-done:
		t.Fatal("TruncateRange returned with writeback in flight in its range")
	default:
	}
	if p.Mapping() != e.m {
		t.Fatal("page under writeback removed before its writeback ended")
	}
	p.endWriteback()
	within(t, "TruncateRange after writeback ended", func() { <-done })
	if p.Mapping() != nil || e.m.index.lookup(4) != nil {
		t.Fatal("page still in the mapping after TruncateRange")
	}
	if e.m.NrPages() != 2 {
		t.Fatalf("NrPages = %d, want 2", e.m.NrPages())
	}
	p.put()
}

// TestTruncateRangeFailedEdgePage: an edge page whose earlier read failed
// (cached, not uptodate) must not let the old bytes of the truncated part
// come back from storage: the truncation reads it and zeroes it, or fails.
func TestTruncateRangeFailedEdgePage(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	data := pattern(44, 6*pg)
	e.populate(t, data)
	ext, _ := e.m.Blocks().Lookup(2, 1)
	e.dev.FailRead(ext.Block, syscall.EIO)
	if _, err := e.m.Read(make([]byte, pg), 2*pg, nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("setup: Read = %v, want EIO", err)
	}
	// The device still fails: the truncation cannot read the edge page to
	// zero it. It may fail (and the caller then leaves the blocks alone),
	// or succeed; if it succeeds, the zeroed part must stay zero once the
	// device recovers.
	inv := e.m.LockRemove(0, math.MaxInt64)
	err := e.m.TruncateRange(2*pg+100, 5*pg)
	inv.Unlock()
	if err != nil {
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("TruncateRange with an unreadable edge page = %v, want EIO or success", err)
		}
		e.dev.Clear()
		e.truncateRange(t, 2*pg+100, 5*pg)
	}
	if err := e.m.Blocks().Punch(3, 2); err != nil {
		t.Fatal(err)
	}
	e.dev.Clear()
	want := bytes.Clone(data)
	clear(want[2*pg+100 : 5*pg])
	checkBytes(t, e.readAll(t, 0, 6*pg, nil), want, "file after punching past a failed page")
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	checkBytes(t, e.readAll(t, 0, 6*pg, nil), want, "file re-read from storage")
}

// TestTruncatedPageIsDead: a reference held across truncation pins the
// page's memory but the page no longer belongs to the mapping, and a new
// lookup finds a new page.
func TestTruncatedPageIsDead(t *testing.T) {
	e := newEnv(t, Options{}, 16)
	e.write(t, pattern(45, 2*pg), 0)
	p := e.m.findGet(1)
	e.truncate(t, pg)
	if p.Mapping() != nil {
		t.Fatal("truncated page still claims its mapping")
	}
	p.put()
	if e.m.findGet(1) != nil {
		t.Fatal("lookup found the truncated page")
	}
	if n, err := e.m.Read(make([]byte, 2*pg), 0, nil); n != pg || err == nil {
		t.Fatalf("Read after truncate to 1 page = %d, %v", n, err)
	}
}

// TestEvictAfterTruncation: an evictor that found a page before a
// truncation removed it must not free it. The truncator still holds a
// reference then, and the two remaining references look like "index +
// evictor" to a freeze that does not check the page is still mapped.
func TestEvictAfterTruncation(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.write(t, pattern(40, pg), 0)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	p := e.m.findGet(0) // the evictor's reference
	if p == nil {
		t.Fatal("page not cached")
	}
	p.get() // the truncator's reference
	p.lock()
	e.m.deletePage(p) // the truncation drops the index's reference
	p.unlock()
	if e.m.evict(p) {
		t.Fatal("evict freed a page that a truncation had already removed")
	}
	if got := p.refs(); got != 2 || p.data == nil {
		t.Fatalf("after the refused eviction: ref %d, data freed %v; want 2 references and the data kept", got, p.data == nil)
	}
	p.put()
	p.put()
}

// TestZeroPartialAfterDirectWrite: a clean page refreshed by a direct write
// (UpdateClean) does not know its block; zeroing its tail on truncate must
// still reach the device, or evict + re-read brings the bytes back.
func TestZeroPartialAfterDirectWrite(t *testing.T) {
	e := newEnv(t, Options{}, 64)
	e.host.Lock()
	if err := e.m.Blocks().Allocate(0, 1); err != nil {
		t.Fatal(err)
	}
	e.m.SetSize(pg)
	e.host.Unlock()
	e.readAll(t, 0, pg, nil) // cached from the unwritten block: zeros, no block known
	// What a direct write does: data to the block, mark it written, then
	// refresh the clean cached page.
	ext, _ := e.m.Blocks().Lookup(0, 1)
	data := pattern(90, pg)
	if err := e.dev.WriteBlocks(data, ext.Block); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Blocks().MarkWritten(0, 1); err != nil {
		t.Fatal(err)
	}
	e.m.UpdateClean(0, data)
	e.truncate(t, 100)
	if err := e.m.Sync(0, 0); err != nil {
		t.Fatal(err)
	}
	e.m.InvalidateClean(0, maxPageIdx+1)
	want := append(bytes.Clone(data[:100]), make([]byte, pg-100)...)
	checkBytes(t, e.deviceBytes(t, 0, 1), want, "the block after truncating to 100")
}
