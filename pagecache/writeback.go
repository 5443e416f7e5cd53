package pagecache

import (
	"errors"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// writeback writes back the dirty pages with index in [start, end)
// (Linux's writeback_iter over write_cache_pages). With sync it waits for
// busy pages and for writeback already in flight, as fsync needs
// (WB_SYNC_ALL); without, it skips busy pages. limit > 0 stops after about
// that many pages. It returns the first I/O error it saw; every error is
// also recorded for the file handles' next fsync.
//
// Writeback takes no inode or invalidate lock: the page lock and the
// Writeback flag keep truncation away from the pages it writes, and the
// block map is looked up under the backend's extent lock.
func (m *Mapping) writeback(start, end int64, sync bool, limit int64) error {
	var firstErr error
	var cluster []*Page
	submit := func() {
		if len(cluster) > 0 {
			if err := m.writeCluster(cluster); err != nil && firstErr == nil {
				firstErr = err
			}
			cluster = cluster[:0]
		}
	}
	written := int64(0)
	for next := start; next < end && (limit <= 0 || written < limit); {
		idxs := m.dirtyIndexes(next, end, maxClusterPages)
		if len(idxs) == 0 {
			break
		}
		for _, idx := range idxs {
			next = idx + 1
			p := m.findGet(idx)
			if p == nil {
				continue
			}
			if sync {
				p.lock()
			} else if !p.tryLock() {
				p.put()
				continue
			}
			if p.Mapping() != m || !p.Dirty() || (!sync && p.has(pgWriteback)) {
				p.unlock()
				p.put()
				continue
			}
			p.waitWriteback()
			// Write-protect mapped views before the data is copied out, so a
			// write through a view after this point dirties the page again.
			m.mkclean(p)
			// Writeback before clean: a sync writeback that does not take
			// the page lock (its final wait) must never see the page
			// neither dirty nor under writeback while its data is unwritten.
			p.set(pgWriteback)
			m.clearDirty(p)
			p.unlock()
			if n := len(cluster); n > 0 && (cluster[n-1].index+1 != idx || n == maxClusterPages) {
				submit()
			}
			cluster = append(cluster, p)
			written++
		}
		submit()
	}
	if sync {
		m.index.walk(start, end, func(p *Page) bool {
			if p.has(pgWriteback) && p.tryGet() {
				p.waitWriteback()
				p.put()
			}
			return true
		})
	}
	return firstErr
}

// writeCluster writes a run of pages with consecutive indexes, all under
// Writeback and referenced by the caller, in as few device writes as their
// blocks allow, then ends their writeback and drops the references.
//
// A page that already knows its block (it was read from or written to it)
// is written there without a new lookup, as buffer heads do in Linux: this
// is why a page must never survive in the cache past the freeing of its
// block, and why fill paths must not create pages during a punch.
func (m *Mapping) writeCluster(pages []*Page) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	buf := (*bp)[:len(pages)*PageSize]
	size := m.Size()
	for k, p := range pages {
		dst := buf[k*PageSize : (k+1)*PageSize]
		p.rlockContent()
		copy(dst, p.data[:])
		p.runlockContent()
		// Bytes past EOF in the last page (written through a view) never
		// reach the disk: a later extension must read them as zeros.
		if pageEnd := (p.index + 1) * PageSize; pageEnd > size {
			clear(dst[max(size-p.index*PageSize, 0):])
		}
	}
	var firstErr error
	for i := 0; i < len(pages); {
		n, err := m.writeRun(pages[i:], buf[i*PageSize:])
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			m.wbErr.set(toErrno(err))
			m.c.wbErr.set(toErrno(err))
		}
		for _, p := range pages[i : i+n] {
			if err != nil {
				p.set(pgError)
			} else {
				p.clear(pgError)
			}
			p.endWriteback()
			p.put()
		}
		i += n
	}
	m.c.stats.wbPages.Add(int64(len(pages)))
	return firstErr
}

// writeRun writes the longest prefix of pages that maps to one run of
// blocks, and returns how many pages it covered.
func (m *Mapping) writeRun(pages []*Page, buf []byte) (int, error) {
	first := pages[0]
	if first.block >= 0 {
		n := 1
		for n < len(pages) && pages[n].block == first.block+int64(n) {
			n++
		}
		m.c.stats.wbIOs.Add(1)
		return n, m.dev.WriteBlocks(buf[:n*PageSize], first.block)
	}
	want := int64(1)
	for int(want) < len(pages) && pages[want].block < 0 {
		want++
	}
	if m.remap != nil {
		return m.writeRemapped(pages, buf, want)
	}
	e, err := m.blocks.Lookup(first.index, want)
	if err == nil && e.Kind == blockmap.Hole {
		// Blocks are allocated when data is written (write, page_mkwrite,
		// fallocate); a hole here means this path raced with block
		// removal, which only LockNone allows. Allocate rather than drop data.
		if err = m.blocks.Allocate(first.index, e.Count); err == nil {
			e, err = m.blocks.Lookup(first.index, e.Count)
		}
	}
	if err != nil {
		return 1, err
	}
	n := int(e.Count)
	if e.Kind == blockmap.Memory {
		return n, nil
	}
	if e.Kind != blockmap.Mapped && e.Kind != blockmap.Unwritten {
		return n, syscall.EIO
	}
	m.c.stats.wbIOs.Add(1)
	if err := m.dev.WriteBlocks(buf[:n*PageSize], e.Block); err != nil {
		return n, err
	}
	if e.Kind == blockmap.Unwritten {
		if err := m.blocks.MarkWritten(first.index, e.Count); err != nil {
			return n, err
		}
	}
	for k, p := range pages[:n] {
		p.block = e.Block + int64(k)
	}
	return n, nil
}

// writeRemapped is writeRun for a block map that writes out of place: it
// asks the map where the first pages go, writes them, and commits the
// remap or marks unwritten blocks written.
func (m *Mapping) writeRemapped(pages []*Page, buf []byte, want int64) (int, error) {
	first := pages[0]
	e, moved, err := m.remap.WriteTarget(first.index, want)
	if err == nil && e.Kind == blockmap.Hole {
		// As in writeRun: only a LockNone race leaves a dirty page over a
		// hole. Allocate rather than drop data.
		if err = m.blocks.Allocate(first.index, e.Count); err == nil {
			e, moved, err = m.remap.WriteTarget(first.index, e.Count)
		}
	}
	if err != nil {
		return 1, err
	}
	n := int(e.Count)
	if e.Kind != blockmap.Mapped && e.Kind != blockmap.Unwritten {
		return n, syscall.EIO
	}
	m.c.stats.wbIOs.Add(1)
	if err := m.dev.WriteBlocks(buf[:n*PageSize], e.Block); err != nil {
		if moved {
			_ = m.remap.AbortWrite(first.index, e.Count)
		}
		return n, err
	}
	switch {
	case moved:
		err = m.remap.CommitWrite(first.index, e.Count)
	case e.Kind == blockmap.Unwritten:
		err = m.blocks.MarkWritten(first.index, e.Count)
	}
	if err != nil {
		return n, err
	}
	if m.cacheBlocks {
		for k, p := range pages[:n] {
			p.block = e.Block + int64(k)
		}
	}
	return n, nil
}

func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

// Sync writes back the dirty pages of the byte range [off, off+n) (n == 0:
// the whole file) and waits for writeback in flight there
// (filemap_write_and_wait_range). Its error is this call's own; file
// handles learn of errors through ErrCheck.
func (m *Mapping) Sync(off, n int64) error {
	if m.dax != nil {
		// No dirty pages: stores went to the device's memory, and making
		// them durable is the device's flush (Linux's
		// dax_writeback_mapping_range flushes the CPU caches).
		return m.dax.Flush()
	}
	start, end := off/PageSize, maxPageIdx+1
	if n > 0 {
		end = (off + n + PageSize - 1) / PageSize
	}
	return m.writeback(start, end, true, 0)
}
