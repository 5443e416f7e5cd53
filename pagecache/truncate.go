package pagecache

import (
	"math"

	"github.com/holefs/holefs/blockmap"
)

// TruncateRange removes from the cache every page wholly inside the byte
// range [lstart, lend) and zeroes the parts of the pages at its edges that
// lie inside it (Linux's truncate_pagecache_range; lend == math.MaxInt64
// means to the end of the file). Mapped views lose their pages first;
// pages under writeback are waited for; dirty pages are discarded. A
// zeroed edge page backed by storage is marked dirty so the zeros reach it.
//
// The caller holds the invalidate lock exclusive over every page the range
// touches (LockRemove(lstart, lend)), and keeps holding it until the blocks
// of the range are removed from the block map: that is the whole protocol,
// and this function panics if it is not so, in every build.
func (m *Mapping) TruncateRange(lstart, lend int64) error {
	if !m.invalidate.HeldExclusive(pageSpan(lstart, lend)) {
		panic("pagecache: TruncateRange called without the invalidate lock held exclusive over its range")
	}
	if lstart >= lend {
		return nil
	}
	first := (lstart + PageSize - 1) / PageSize
	last := maxPageIdx + 1
	if lend != math.MaxInt64 {
		last = lend / PageSize
	}
	if m.dax != nil {
		return m.daxTruncateRange(lstart, lend, first, last)
	}
	if in := lstart % PageSize; in != 0 {
		idx := lstart / PageSize
		if err := m.zeroPartial(idx, int(in), int(min(PageSize, lend-idx*PageSize))); err != nil {
			return err
		}
	}
	if lend != math.MaxInt64 && lend%PageSize != 0 && lend/PageSize >= first {
		if err := m.zeroPartial(lend/PageSize, 0, int(lend%PageSize)); err != nil {
			return err
		}
	}
	if first < last {
		m.zapRange(first, last)
		m.truncatePages(first, last)
	}
	return nil
}

// zeroPartial zeroes [from, to) of page idx in the cache, reading the page
// first when storage backs it, so a later eviction and re-read cannot bring
// the old bytes back. Holes and unwritten blocks read as zeros already.
func (m *Mapping) zeroPartial(idx int64, from, to int) error {
	p := m.findGet(idx)
	if p != nil && !p.Uptodate() {
		// A failed fill left it unread. Dropping it would let the old bytes
		// come back from storage at the next read: read it like an
		// uncached page, below, and fail if that fails.
		p.put()
		p = nil
	}
	if p == nil {
		e, err := m.blocks.Lookup(idx, 1)
		if err != nil {
			return err
		}
		if e.Kind != blockmap.Mapped {
			return nil
		}
		if p, err = m.getUptodate(idx, nil, 1, true); err != nil {
			return err
		}
	}
	defer p.put()
	p.lock()
	defer p.unlock()
	if p.Mapping() != m {
		return nil
	}
	p.waitWriteback()
	if !p.Uptodate() {
		// A failed fill left it unread; it must not come back with old bytes.
		m.zapPage(p)
		m.clearDirty(p)
		m.deletePage(p)
		return nil
	}
	// Write-protect views of the page (ext4 does the same for partial
	// folios): a write through a view after the zeroing must fault and
	// wait for the invalidate lock, not land in the zeroed range.
	m.mkclean(p)
	p.zero(from, to)
	if p.Dirty() {
		return nil
	}
	// A clean page over written blocks must get its zeros to them, or an
	// eviction and a re-read bring the old bytes back. Ask the block map,
	// not the page: a page refreshed by a direct write does not know its
	// block. (Writeback of the page is over, so the map is settled.)
	e, err := m.blocks.Lookup(idx, 1)
	if err != nil {
		return err
	}
	if e.Kind == blockmap.Mapped {
		m.markDirty(p)
	}
	return nil
}

// truncatePages removes the pages with index in [first, last).
func (m *Mapping) truncatePages(first, last int64) {
	batch := make([]*Page, 0, 64)
	for first < last {
		batch = m.pinRange(first, last, batch)
		if len(batch) == 0 {
			return
		}
		for _, p := range batch {
			p.lock()
			if p.Mapping() == m {
				p.waitWriteback()
				m.zapPage(p)
				m.clearDirty(p)
				m.deletePage(p)
			}
			p.unlock()
			p.put()
		}
		first = batch[len(batch)-1].index + 1
	}
}

// InvalidateClean drops the clean, unlocked, unmapped pages with index in
// [start, end) (Linux's invalidate_mapping_pages, behind FADV_DONTNEED and
// direct I/O). It needs no invalidate lock: it never drops a dirty or
// mapped page, and a later fill looks the blocks up afresh.
func (m *Mapping) InvalidateClean(start, end int64) int {
	var dropped int
	batch := make([]*Page, 0, 64)
	for start < end {
		batch = m.pinRange(start, end, batch)
		if len(batch) == 0 {
			break
		}
		for _, p := range batch {
			if m.unevictable || !m.evict(p) {
				p.put()
				continue
			}
			dropped++
		}
		start = batch[len(batch)-1].index + 1
	}
	return dropped
}
