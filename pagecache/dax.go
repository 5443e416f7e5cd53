package pagecache

import (
	"io"
	"math"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

// DAX (Linux's fs/dax.c, ext2 and ext4 -o dax): a mapping over a
// blockdev.DAXDevice caches nothing. Reads and writes copy straight between
// the caller and the blocks' memory, and a mapped view's entries address
// that memory, so no page of a DAX file is ever in the cache: nothing to
// fill, write back, evict or truncate.
//
// The invalidate lock keeps its job. A read and a view fault hold it shared
// over the pages they touch (the fill lock, per lock mode) from the block
// lookup until the copy is done or the entry installed; every remover holds
// it exclusive over its range while it unmaps the views of the range
// (TruncateRange) and frees the blocks. A view entry installed before the
// remover took the lock is zapped by it; a fault after it finds the new
// block map.
//
// The page lock has no page to live in. Its replacement is the DAX entry
// lock (Linux: the lock bit of the DAX entry in the mapping's xarray), a
// per-index lock taken at the page lock's rank: a write fault and a write
// hold it while they allocate a page's block, zero it and mark it written
// (there is no writeback to do that later), and a fault holds it while it
// installs a view entry. Two writers of a page's first data therefore
// cannot zero each other's bytes, and a fault cannot install the hole
// entry of a page whose block another goroutine is allocating. Hole
// entries (the zero page of Linux) are zapped from every view, under the
// entry lock, when the page gets a block.

// daxEntryLocks is the number of entry locks of a DAX mapping; page idx
// uses lock idx % daxEntryLocks. Sharing a lock between pages only costs
// concurrency: an entry lock is never held while another is taken.
const daxEntryLocks = 32

// DAX reports whether the mapping is in DAX mode.
func (m *Mapping) DAX() bool { return m.dax != nil }

// lockEntry takes the DAX entry lock of page idx and returns it.
func (m *Mapping) lockEntry(idx int64) *lockcheck.Mutex {
	l := &m.daxLocks[idx%daxEntryLocks]
	l.Lock()
	return l
}

func (m *Mapping) hookBeforeFill(index, n int64) {
	if h := m.c.opts.Hooks; h != nil && h.BeforeFill != nil {
		h.BeforeFill(m, index, n)
	}
}

func (m *Mapping) hookAfterMapRead(e blockmap.Extent) {
	if h := m.c.opts.Hooks; h != nil && h.AfterMapRead != nil {
		h.AfterMapRead(m, e)
	}
}

// daxRead is Read of a DAX mapping (Linux's dax_iomap_rw for a read): under
// the fill lock, each extent is looked up and copied from the device's
// memory; holes and unwritten extents read as zeros.
func (m *Mapping) daxRead(dst []byte, off int64) (int, error) {
	// The end-of-file check is made under the fill lock, as Linux's
	// dax_iomap_rw makes it under its caller's lock; a remover that starts
	// after it is the lock's business, not the check's.
	// The pages the bytes [off, off+len(dst)) touch (one more at most),
	// counted without computing off+len(dst), which may overflow.
	first := off / PageSize
	defer m.lockFill(first, first+(int64(len(dst))+PageSize-1)/PageSize+1, false).Unlock()
	size := m.Size()
	if off >= size {
		return 0, io.EOF
	}
	end := min(off+int64(len(dst)), size)
	last := (end - 1) / PageSize
	m.hookBeforeFill(off/PageSize, last-off/PageSize+1)
	done := 0
	for pos := off; pos < end; {
		idx := pos / PageSize
		e, err := m.blocks.Lookup(idx, last-idx+1)
		if err != nil {
			return done, err
		}
		m.hookAfterMapRead(e)
		for ; idx < e.End() && pos < end; idx++ {
			in := int(pos % PageSize)
			n := int(min(int64(PageSize-in), end-pos))
			if e.Kind == blockmap.Mapped {
				b, err := m.dax.DirectAccess(e.Block + idx - e.Page)
				if err != nil {
					return done, err
				}
				b.RLock()
				copy(dst[done:done+n], b.Bytes()[in:])
				b.RUnlock()
			} else {
				clear(dst[done : done+n])
			}
			done += n
			pos += int64(n)
		}
	}
	if done < len(dst) {
		return done, io.EOF
	}
	return done, nil
}

// daxWrite is Write of a DAX mapping (dax_iomap_rw for a write): page by
// page, under the entry lock, the block is allocated (zeroed and marked
// written if new) and src copied into its memory. The caller holds the
// inode lock exclusive.
func (m *Mapping) daxWrite(src []byte, off int64) (int, error) {
	if oldSize := m.Size(); off > oldSize && len(src) > 0 {
		m.ZeroTail(oldSize)
	}
	done := 0
	for done < len(src) {
		pos := off + int64(done)
		idx := pos / PageSize
		in := int(pos % PageSize)
		n := min(PageSize-in, len(src)-done)
		l := m.lockEntry(idx)
		b, err := m.daxMapLocked(idx, true)
		if err != nil {
			l.Unlock()
			return done, err
		}
		b.Lock()
		copy(b.Bytes()[in:], src[done:done+n])
		b.Unlock()
		l.Unlock()
		if end := pos + int64(n); end > m.Size() {
			m.SetSize(end)
		}
		done += n
	}
	return done, nil
}

// daxMapLocked returns the memory of page idx's block, or the zero DAXBlock
// for a hole or an unwritten block when write is false. With write it
// first gives the page a written block (Linux's ext2_get_blocks with
// create, zeroing in DAX mode): a hole is allocated, an unwritten block is
// zeroed and marked written, and every view's hole entry for the page is
// zapped. The caller holds the page's entry lock.
func (m *Mapping) daxMapLocked(idx int64, write bool) (blockdev.DAXBlock, error) {
	e, err := m.blocks.Lookup(idx, 1)
	if err == nil && write && e.Kind == blockmap.Hole {
		if err = m.blocks.Allocate(idx, 1); err == nil {
			e, err = m.blocks.Lookup(idx, 1)
		}
	}
	if err != nil {
		return blockdev.DAXBlock{}, err
	}
	m.hookAfterMapRead(e)
	switch {
	case e.Kind == blockmap.Mapped:
		return m.dax.DirectAccess(e.Block)
	case !write:
		return blockdev.DAXBlock{}, nil
	case e.Kind != blockmap.Unwritten:
		return blockdev.DAXBlock{}, syscall.EIO // allocated, yet neither mapped nor unwritten
	}
	// A block just allocated may hold a freed file's data: zero it before
	// it is marked written and anyone can read it.
	b, err := m.dax.DirectAccess(e.Block)
	if err != nil {
		return b, err
	}
	b.Lock()
	clear(b.Bytes())
	b.Unlock()
	if err := m.blocks.MarkWritten(idx, 1); err != nil {
		return blockdev.DAXBlock{}, err
	}
	m.zapHoleEntries(idx)
	return b, nil
}

// zapHoleEntries removes every view's hole entry of page idx, which now has
// a block (Linux's dax_insert_entry unmapping the zero page). The caller
// holds the page's entry lock, under which all DAX entries are installed,
// so none can appear meanwhile.
func (m *Mapping) zapHoleEntries(idx int64) {
	views := m.views.Load()
	if views == nil {
		return
	}
	for _, v := range *views {
		if i := idx - v.start; i >= 0 && i < int64(len(v.ptes)) {
			if e := v.ptes[i].Load(); e != nil && e.page == nil && !e.mem.Valid() {
				v.ptes[i].CompareAndSwap(e, nil)
			}
		}
	}
}

// daxZero zeroes [from, to) of page idx's block if it has a written one
// (Linux's dax_zero_range); holes and unwritten blocks read as zeros
// already.
func (m *Mapping) daxZero(idx int64, from, to int) error {
	l := m.lockEntry(idx)
	defer l.Unlock()
	e, err := m.blocks.Lookup(idx, 1)
	if err != nil || e.Kind != blockmap.Mapped {
		return err
	}
	b, err := m.dax.DirectAccess(e.Block)
	if err != nil {
		return err
	}
	b.Lock()
	clear(b.Bytes()[from:to])
	b.Unlock()
	return nil
}

// daxTruncateRange is TruncateRange of a DAX mapping: it zeroes the parts
// of the edge pages inside the range and zaps every view's entries of the
// pages wholly inside it, so that no view addresses a block the caller is
// about to free (Linux's dax_truncate_page and unmap_mapping_range). The
// caller holds the invalidate lock exclusive: no fault can install an
// entry of the range again until the block map has changed.
func (m *Mapping) daxTruncateRange(lstart, lend, first, last int64) error {
	if in := lstart % PageSize; in != 0 {
		idx := lstart / PageSize
		if err := m.daxZero(idx, int(in), int(min(PageSize, lend-idx*PageSize))); err != nil {
			return err
		}
	}
	if lend != math.MaxInt64 && lend%PageSize != 0 && lend/PageSize >= first {
		if err := m.daxZero(lend/PageSize, 0, int(lend%PageSize)); err != nil {
			return err
		}
	}
	if first < last {
		m.zapRange(first, last)
	}
	return nil
}

// daxFault maps view page i of a DAX mapping (Linux's dax_iomap_pte_fault):
// under the fill lock and the page's entry lock it looks up the block —
// giving the page a written one first if write — and installs an entry
// addressing the block's memory, writable if the view is and the page has
// a block, or a read-only hole entry.
func (v *MappedView) daxFault(i int64, write bool) (*pte, error) {
	m := v.m
	idx := v.start + i
	defer m.lockFill(idx, idx+1, true).Unlock()
	// The end-of-file check defines SIGBUS (EFAULT here); it is made once,
	// before the lookup, as Linux makes it: keeping a remover out between
	// the lookup and the install is the fill lock's job, not this check's.
	if v.unmapped.Load() || m.beyondEOF(idx) {
		return nil, syscall.EFAULT
	}
	m.hookBeforeFill(idx, 1)
	l := m.lockEntry(idx)
	defer l.Unlock()
	b, err := m.daxMapLocked(idx, write)
	if err != nil {
		return nil, err
	}
	ne := &pte{mem: b, writable: v.writable && b.Valid()}
	for {
		old := v.ptes[i].Load()
		if old != nil && (old.writable || !write) {
			return old, nil // installed by a fault on another goroutine, under this entry lock
		}
		if v.ptes[i].CompareAndSwap(old, ne) {
			break
		}
	}
	if v.unmapped.Load() {
		v.zap(i, i+1)
		return nil, syscall.EFAULT
	}
	return ne, nil
}

// daxLoad copies from a DAX entry's memory at in into dst and returns the
// count, 0 if the entry was zapped before the copy could start: a remover
// may have freed the block since, and the caller must fault again. Checking the
// entry under the block's content lock is the TLB shootdown: once a zap
// has returned, no copy through the old entry is in progress or can begin,
// so the block's next owner can never be read through it.
func (v *MappedView) daxLoad(i int64, e *pte, dst []byte, in int) int {
	if !e.mem.Valid() {
		n := min(PageSize-in, len(dst))
		clear(dst[:n])
		return n
	}
	e.mem.RLock()
	defer e.mem.RUnlock()
	if v.ptes[i].Load() != e {
		return 0
	}
	return copy(dst, e.mem.Bytes()[in:])
}

// daxStore is daxLoad's counterpart for a store through a writable entry.
func (v *MappedView) daxStore(i int64, e *pte, src []byte, in int) int {
	e.mem.Lock()
	defer e.mem.Unlock()
	if v.ptes[i].Load() != e {
		return 0
	}
	return copy(e.mem.Bytes()[in:], src)
}
