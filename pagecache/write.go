package pagecache

import "syscall"

// Write copies src into the cache at byte offset off: the buffered write
// path (Linux's generic_perform_write). The caller holds the inode lock
// exclusive, has made sure blocks can be allocated for the range (so
// writeback cannot fail with ENOSPC), and calls Cache.BalanceDirty after
// it dropped the lock. Write zeroes the cached tail of the old last page
// when it writes past EOF, and extends the size page by page as it copies.
// A partial page inside the file is read first, under the fill lock.
func (m *Mapping) Write(src []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if m.dax != nil {
		return m.daxWrite(src, off)
	}
	oldSize := m.Size()
	if off > oldSize && len(src) > 0 {
		m.ZeroTail(oldSize)
	}
	done := 0
	for done < len(src) {
		pos := off + int64(done)
		idx := pos / PageSize
		in := int(pos % PageSize)
		n := min(PageSize-in, len(src)-done)
		noRead := (in == 0 && n == PageSize) || idx*PageSize >= oldSize
		p, err := m.writeBegin(idx, noRead)
		if err != nil {
			return done, err
		}
		p.copyIn(src[done:done+n], in)
		p.set(pgUptodate)
		m.markDirty(p)
		// Extend the size before the page is unlocked (Linux's write_end):
		// writeback started in the middle of this write (reserve, the
		// flusher, a Sync) writes the bytes of a page past EOF as zeros.
		if end := pos + int64(n); end > m.Size() {
			m.SetSize(end)
		}
		p.unlock()
		p.put()
		done += n
	}
	return done, nil
}

// writeBegin returns the page at idx locked, referenced and ready to be
// written: uptodate, or new and zeroed when noRead says its old contents
// do not matter (the write covers it or it lies past EOF).
func (m *Mapping) writeBegin(idx int64, noRead bool) (*Page, error) {
	for {
		p := m.findGet(idx)
		if p == nil {
			if noRead {
				if !m.unevictable {
					m.c.reserve(1)
				}
				p = newLockedPage(idx)
				if !m.addLocked(p) {
					p.unlock()
					continue
				}
				p.get()
				return p, nil
			}
			if err := m.fillRange(idx, 1, idx, -1, false); err != nil {
				return nil, err
			}
			continue
		}
		p.lock()
		if p.Mapping() != m {
			p.unlock()
			p.put()
			continue
		}
		if p.Uptodate() || noRead {
			return p, nil
		}
		p.unlock()
		err := m.updatePage(p, false)
		p.put()
		if err != nil && err != errTruncated {
			return nil, err
		}
	}
}

// ZeroTail zeroes the cached bytes of the page holding byte size from size
// to the end of the page, before a file grows past size: bytes written
// there through a view while they were past EOF must read as zeros.
// The caller holds the inode lock exclusive.
func (m *Mapping) ZeroTail(size int64) {
	if size%PageSize == 0 {
		return
	}
	if m.dax != nil {
		// Bytes stored through a view past EOF are in the block itself.
		_ = m.daxZero(size/PageSize, int(size%PageSize), PageSize)
		return
	}
	p := m.findGet(size / PageSize)
	if p == nil {
		return
	}
	p.lock()
	if p.Mapping() == m && p.Uptodate() {
		p.zero(int(size%PageSize), PageSize)
	}
	p.unlock()
	p.put()
}

// UpdateClean copies data, just written to storage at byte offset off
// (page aligned) by direct I/O, into the clean uptodate pages of the range
// that are still cached: pages a concurrent reader pinned, or filled from
// the old blocks while the direct write ran, so the invalidation before it
// could not drop them. (Linux only warns about such pages.) Dirty pages are
// left alone: a write through a view raced the direct write and is newer.
func (m *Mapping) UpdateClean(off int64, data []byte) {
	for k := 0; k+PageSize <= len(data); k += PageSize {
		p := m.findGet((off + int64(k)) / PageSize)
		if p == nil {
			continue
		}
		p.lock()
		if p.Mapping() == m && p.Uptodate() && !p.Dirty() {
			p.copyIn(data[k:k+PageSize], 0)
		}
		p.unlock()
		p.put()
	}
}
