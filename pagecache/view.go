package pagecache

import (
	"slices"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
)

// MappedView is an in-process memory mapping of a file range (Linux's
// shared file mmap). The first access to a page faults it in; after that,
// reads and writes go straight to the page, as with real mmap. The first
// write to a page calls page_mkwrite, which allocates its block and marks
// it dirty; writeback write-protects it again. Truncation, punch and
// MADV_DONTNEED zap the view's entries, so the next access faults. In a DAX
// mapping an entry addresses the block's memory on the device instead of
// a page (dax.go).
type MappedView struct {
	m        *Mapping
	start    int64 // first file page
	writable bool
	ptes     []atomic.Pointer[pte] // one per page; nil = not mapped
	unmapped atomic.Bool
}

// pte is an immutable view entry: which page, and whether writes may go to
// it without page_mkwrite. Entries are replaced, never changed.
type pte struct {
	page *Page // nil in a DAX mapping
	// mem is a DAX entry's block memory; the zero DAXBlock in a hole
	// entry, which reads as zeros (Linux's zero page) and is never
	// writable.
	mem      blockdev.DAXBlock
	writable bool
}

// Mmap maps n bytes of the file from off, which must be page aligned.
func (m *Mapping) Mmap(off, n int64, writable bool) (*MappedView, error) {
	if off < 0 || off%PageSize != 0 || n <= 0 || off/PageSize+(n+PageSize-1)/PageSize > maxPageIdx {
		return nil, syscall.EINVAL
	}
	v := &MappedView{m: m, start: off / PageSize, writable: writable,
		ptes: make([]atomic.Pointer[pte], (n+PageSize-1)/PageSize)}
	m.viewMu.Lock()
	var views []*MappedView
	if old := m.views.Load(); old != nil {
		views = slices.Clone(*old)
	}
	views = append(views, v)
	m.views.Store(&views)
	m.viewMu.Unlock()
	return v, nil
}

// Len returns the length of the view in bytes.
func (v *MappedView) Len() int64 { return int64(len(v.ptes)) * PageSize }

// Unmap removes the view. Later accesses fail with EFAULT; a second Unmap
// does nothing, as munmap(2) of an unmapped range.
func (v *MappedView) Unmap() error {
	if v.unmapped.Swap(true) {
		return nil // munmap of a range no longer mapped succeeds
	}
	m := v.m
	m.viewMu.Lock()
	if old := m.views.Load(); old != nil {
		views := slices.DeleteFunc(slices.Clone(*old), func(x *MappedView) bool { return x == v })
		m.views.Store(&views)
	}
	v.zap(0, int64(len(v.ptes)))
	m.viewMu.Unlock()
	return nil
}

// zap clears the view's entries [from, to) (view page numbers).
func (v *MappedView) zap(from, to int64) {
	for i := from; i < to; i++ {
		if e := v.ptes[i].Swap(nil); e != nil && e.page != nil {
			e.page.put()
		}
	}
}

// zapRange clears every view's entries for file pages [first, last)
// (Linux's unmap_mapping_range).
func (m *Mapping) zapRange(first, last int64) {
	m.viewMu.Lock()
	defer m.viewMu.Unlock()
	views := m.views.Load()
	if views == nil {
		return
	}
	for _, v := range *views {
		lo, hi := max(first, v.start), min(last, v.start+int64(len(v.ptes)))
		if lo < hi {
			v.zap(lo-v.start, hi-v.start)
		}
	}
}

// ZapRange clears every view's entries for the pages overlapping the byte
// range [off, off+n), so the next access faults (unmap_mapping_range).
// Direct I/O uses it before dropping cached pages of the range it writes.
func (m *Mapping) ZapRange(off, n int64) {
	m.zapRange(off/PageSize, (off+n+PageSize-1)/PageSize)
}

// zapPage clears the view entries of one page. The caller holds the page
// lock, which faults hold while they install an entry, so none can appear
// after this for a page about to leave the mapping.
func (m *Mapping) zapPage(p *Page) {
	m.forEachPTE(p, func(slot *atomic.Pointer[pte], e *pte) {
		if slot.CompareAndSwap(e, nil) {
			p.put()
		}
	})
}

// mkclean write-protects the view entries of a page about to be written
// back (Linux's folio_mkclean): the next write through a view calls
// page_mkwrite and dirties the page again.
func (m *Mapping) mkclean(p *Page) {
	m.forEachPTE(p, func(slot *atomic.Pointer[pte], e *pte) {
		if e.writable {
			slot.CompareAndSwap(e, &pte{page: p})
		}
	})
}

func (m *Mapping) forEachPTE(p *Page, fn func(*atomic.Pointer[pte], *pte)) {
	views := m.views.Load()
	if views == nil {
		return
	}
	for _, v := range *views {
		if i := p.index - v.start; i >= 0 && i < int64(len(v.ptes)) {
			if e := v.ptes[i].Load(); e != nil && e.page == p {
				fn(&v.ptes[i], e)
			}
		}
	}
}

// check validates an access of n bytes at off and returns its first page.
func (v *MappedView) check(off int64, n int) error {
	if v.unmapped.Load() || off < 0 || off+int64(n) > v.Len() {
		return syscall.EFAULT
	}
	return nil
}

// ReadAt reads from the view at byte offset off. Access to pages past the
// end of file fails with EFAULT (where a process would get SIGBUS).
func (v *MappedView) ReadAt(dst []byte, off int64) (int, error) {
	if err := v.check(off, len(dst)); err != nil {
		return 0, err
	}
	done := 0
	for done < len(dst) {
		pos := off + int64(done)
		i := pos / PageSize
		e := v.ptes[i].Load()
		if e == nil {
			var err error
			if e, err = v.fault(i); err != nil {
				return done, err
			}
		}
		if e.page == nil {
			// 0 if the entry was zapped meanwhile: the next round faults.
			done += v.daxLoad(i, e, dst[done:], int(pos%PageSize))
			continue
		}
		// The entry's reference can go with a zap at any time; pin the
		// page for the copy, so eviction cannot recycle its memory under
		// us (a CPU's TLB keeps a zapped page alive the same way until
		// the shootdown). The pin and the content lock are one step.
		if !e.page.tryGetRead() {
			continue
		}
		done += e.page.copyOutLocked(dst[done:], int(pos%PageSize))
		e.page.putRead()
	}
	return done, nil
}

// WriteAt writes to the view at byte offset off.
func (v *MappedView) WriteAt(src []byte, off int64) (int, error) {
	if err := v.check(off, len(src)); err != nil {
		return 0, err
	}
	if !v.writable {
		return 0, syscall.EFAULT
	}
	done := 0
	for done < len(src) {
		pos := off + int64(done)
		i := pos / PageSize
		e := v.ptes[i].Load()
		if e == nil || !e.writable {
			var err error
			if e, err = v.mkwrite(i); err != nil {
				return done, err
			}
		}
		if e.page == nil {
			done += v.daxStore(i, e, src[done:], int(pos%PageSize))
			continue
		}
		p := e.page
		if !p.tryGet() {
			continue
		}
		p.wlockContent()
		// Writeback or a zap may have replaced the entry since it was
		// loaded; the content lock orders this check before their copy.
		if v.ptes[i].Load() != e {
			p.wunlockContent()
			p.put()
			continue
		}
		done += copy(p.data[pos%PageSize:], src[done:])
		p.wunlockContent()
		p.put()
	}
	return done, nil
}

// beyondEOF reports whether file page idx lies wholly past the end of file.
func (m *Mapping) beyondEOF(idx int64) bool { return idx*PageSize >= m.Size() }

// install maps p, locked and referenced by the caller, at view page i; the
// reference passes to the entry.
func (v *MappedView) install(i int64, p *Page) *pte {
	e := &pte{page: p}
	if !v.ptes[i].CompareAndSwap(nil, e) {
		p.put()
		return v.ptes[i].Load()
	}
	if v.unmapped.Load() {
		v.zap(i, i+1)
	}
	return e
}

// fault maps view page i (Linux's filemap_fault). An uptodate cached page
// is mapped with no invalidate lock; a miss fills under the fill lock.
func (v *MappedView) fault(i int64) (*pte, error) {
	m := v.m
	if m.dax != nil {
		return v.daxFault(i, false)
	}
	idx := v.start + i
	for {
		if v.unmapped.Load() || m.beyondEOF(idx) {
			return nil, syscall.EFAULT
		}
		if p := m.findGet(idx); p != nil {
			if p.Uptodate() {
				p.lock()
				if p.Mapping() == m && p.Uptodate() && !m.beyondEOF(idx) {
					m.c.countHit()
					if !p.has(pgReferenced) {
						p.set(pgReferenced)
					}
					e := v.install(i, p)
					p.unlock()
					if e == nil {
						continue
					}
					return e, nil
				}
				p.unlock()
			}
			p.put()
		}
		fill := m.lockFill(idx, idx+1, true)
		p, err := m.getUptodate(idx, nil, 1, true)
		if err != nil {
			fill.Unlock()
			return nil, err
		}
		p.lock()
		if p.Mapping() != m || m.beyondEOF(idx) {
			p.unlock()
			p.put()
			fill.Unlock()
			continue
		}
		e := v.install(i, p)
		p.unlock()
		fill.Unlock()
		if e != nil {
			return e, nil
		}
	}
}

// mkwrite makes view page i writable (Linux's page_mkwrite): under the fill
// lock it allocates the page's block, so a later ENOSPC cannot lose the
// write, and marks the page dirty.
func (v *MappedView) mkwrite(i int64) (*pte, error) {
	m := v.m
	if m.dax != nil {
		return v.daxFault(i, true)
	}
	for {
		e := v.ptes[i].Load()
		if e == nil {
			var err error
			if e, err = v.fault(i); err != nil {
				return nil, err
			}
		}
		if e.writable {
			return e, nil
		}
		p := e.page
		fill := m.lockFill(p.index, p.index+1, true)
		p.lock()
		if p.Mapping() != m || v.ptes[i].Load() != e {
			// Truncated or zapped meanwhile: retry from the fault (VM_FAULT_NOPAGE).
			p.unlock()
			fill.Unlock()
			continue
		}
		if m.beyondEOF(p.index) {
			p.unlock()
			fill.Unlock()
			return nil, syscall.EFAULT
		}
		if err := m.blocks.Allocate(p.index, 1); err != nil {
			p.unlock()
			fill.Unlock()
			return nil, err
		}
		m.markDirty(p)
		ne := &pte{page: p, writable: true}
		ok := v.ptes[i].CompareAndSwap(e, ne)
		p.unlock()
		fill.Unlock()
		if ok {
			return ne, nil
		}
	}
}

// Madvise applies madvise advice to the view's bytes [off, off+n):
// MADV_WILLNEED reads the file range ahead, MADV_DONTNEED drops the view's
// entries (the pages stay cached), and NORMAL, RANDOM and SEQUENTIAL are
// accepted.
func (v *MappedView) Madvise(off, n int64, advice int) error {
	if off%PageSize != 0 || n < 0 {
		return syscall.EINVAL
	}
	if n == 0 {
		return nil // as Linux: an empty range is a no-op
	}
	if err := v.check(off, int(n)); err != nil {
		return syscall.ENOMEM // Linux: range not mapped
	}
	switch advice {
	case unix.MADV_WILLNEED:
		return v.m.Readahead(v.start*PageSize+off, n)
	case unix.MADV_DONTNEED:
		v.zap(off/PageSize, (off+n+PageSize-1)/PageSize)
		return nil
	case unix.MADV_NORMAL, unix.MADV_RANDOM, unix.MADV_SEQUENTIAL:
		return nil
	}
	return syscall.EINVAL
}

// Sync writes back the view's dirty pages in [off, off+n) and waits
// (msync MS_SYNC). n == 0 means the whole view.
func (v *MappedView) Sync(off, n int64) error {
	if n < 0 {
		return syscall.EINVAL
	}
	if n == 0 {
		n = v.Len() - off
	}
	if err := v.check(off, int(n)); err != nil {
		return syscall.ENOMEM
	}
	return v.m.Sync(v.start*PageSize+off, n)
}
