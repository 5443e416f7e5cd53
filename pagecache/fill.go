package pagecache

import (
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// maxClusterPages bounds one device read or write of the fill and
// writeback paths (and the bounce buffers they use).
const maxClusterPages = 256

var bouncePool = sync.Pool{New: func() any { b := make([]byte, maxClusterPages*PageSize); return &b }}

// fillRange creates the pages missing in [start, start+n) and reads them:
// the heart of every fill path (buffered read miss, sync and async
// readahead, fadvise/madvise WILLNEED, fault). Creating the pages and
// looking up their blocks happens under the fill lock (the invalidate lock
// shared over [start, start+n): a window crossing a range being removed
// waits for the whole removal) unless the caller already holds what the
// mode requires over the range (lockHeld). The page at mark, if created,
// gets the async readahead marker.
//
// It returns the error of reading page want (if want is in range and was
// created here); errors on other pages only leave them not uptodate.
func (m *Mapping) fillRange(start, n, want, mark int64, lockHeld bool) error {
	if n <= 0 {
		return nil
	}
	if !m.unevictable {
		m.c.reserve(n)
	}
	if h := m.c.opts.Hooks; h != nil && h.BeforeFill != nil {
		h.BeforeFill(m, start, n)
	}
	if !lockHeld {
		defer m.lockFill(start, start+n, false).Unlock()
	}
	if m.dead.Load() {
		return syscall.EIO
	}
	var wantErr error
	batch := make([]*Page, 0, min(n, maxClusterPages))
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := m.readPages(batch); err != nil && want >= batch[0].index && want <= batch[len(batch)-1].index {
			wantErr = err
		}
		batch = batch[:0]
	}
	for idx := start; idx < start+n; idx++ {
		if m.index.lookup(idx) != nil || len(batch) == maxClusterPages {
			flush()
			if m.index.lookup(idx) != nil {
				continue
			}
		}
		p := newLockedPage(idx)
		if idx == mark {
			p.set(pgReadahead)
		}
		if !m.addLocked(p) {
			p.unlock()
			flush()
			continue
		}
		batch = append(batch, p)
		m.c.stats.fill.Add(1)
	}
	flush()
	return wantErr
}

// readPages reads a run of locked, not uptodate pages with consecutive
// indexes from their blocks and unlocks them. Pages whose read fails stay
// not uptodate with the Error flag; the next reader retries them.
func (m *Mapping) readPages(pages []*Page) error {
	var firstErr error
	for i := 0; i < len(pages); {
		idx := pages[i].index
		e, err := m.blocks.Lookup(idx, int64(len(pages)-i))
		if err == nil && e.Count <= 0 {
			err = syscall.EIO
		}
		if err != nil {
			for _, p := range pages[i:] {
				p.set(pgError)
				p.unlock()
			}
			return err
		}
		if h := m.c.opts.Hooks; h != nil && h.AfterMapRead != nil {
			h.AfterMapRead(m, e)
		}
		run := pages[i : i+int(e.Count)]
		if e.Kind == blockmap.Mapped {
			err = m.readBlocks(run, e.Block)
		}
		for k, p := range run {
			if err != nil {
				p.set(pgError)
			} else {
				p.clear(pgError)
				if e.Kind == blockmap.Mapped && m.cacheBlocks && !e.Shared {
					p.block = e.Block + int64(k)
				}
				p.set(pgUptodate)
			}
			p.unlock()
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		i += len(run)
	}
	return firstErr
}

// readBlocks reads len(run) consecutive blocks from block into the pages,
// in one device I/O.
func (m *Mapping) readBlocks(run []*Page, block int64) error {
	if m.dev == nil {
		return syscall.EIO
	}
	if len(run) == 1 {
		return m.dev.ReadBlocks(run[0].data[:], block)
	}
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	buf := (*bp)[:len(run)*PageSize]
	if err := m.dev.ReadBlocks(buf, block); err != nil {
		return err
	}
	for k, p := range run {
		copy(p.data[:], buf[k*PageSize:])
	}
	return nil
}

// getUptodate returns the page at index, uptodate, with a reference. A
// page found not uptodate (its fill failed, or is in progress) is waited
// for and, if still not uptodate, read again under the fill lock (Linux's
// filemap_update_page). ra drives readahead on a miss; nil reads one page.
func (m *Mapping) getUptodate(index int64, ra *ReadaheadState, reqPages int64, fillLocked bool) (*Page, error) {
	for missed := false; ; missed = true {
		p := m.findGet(index)
		if p == nil {
			if !missed {
				m.c.stats.misses.Add(1)
			}
			var err error
			if ra != nil && !fillLocked {
				err = m.syncReadahead(ra, index, reqPages)
				if err != nil && err != io.EOF {
					// The window is read in batches, one device read each: a
					// bad block anywhere in the batch fails every page of it.
					// Retry the page asked for alone (below, through
					// updatePage), so it fails only for its own error.
					err = nil
				}
			} else {
				err = m.fillRange(index, 1, index, -1, fillLocked)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if p.Uptodate() {
			if !missed {
				m.c.countHit()
			}
			return p, nil
		}
		p.waitUnlocked()
		if p.Uptodate() {
			return p, nil
		}
		err := m.updatePage(p, fillLocked)
		if errors.Is(err, errTruncated) {
			p.put()
			continue
		}
		if err != nil {
			p.put()
			return nil, err
		}
		return p, nil
	}
}

var errTruncated = errors.New("page truncated")

// isHole reports whether page idx has no storage.
func (m *Mapping) isHole(idx int64) bool {
	e, err := m.blocks.Lookup(idx, 1)
	return err == nil && e.Kind == blockmap.Hole
}

// updatePage reads a cached page that is not uptodate.
func (m *Mapping) updatePage(p *Page, fillLocked bool) error {
	if !fillLocked {
		defer m.lockFill(p.index, p.index+1, false).Unlock()
	}
	p.lock()
	if p.Mapping() != m {
		p.unlock()
		return errTruncated
	}
	if p.Uptodate() {
		p.unlock()
		return nil
	}
	m.c.stats.fill.Add(1)
	// readPages unlocks the page.
	return m.readPages([]*Page{p})
}

// findHit is the cache hit of a buffered read: it returns the page at
// index pinned with its content lock held shared, both taken in one atomic
// step (pageref.go), if the page is uptodate and the read has nothing else
// to do with it (no readahead marker to act on, the referenced bit already
// set, no FADV_NOREUSE); the caller copies and calls putRead. Otherwise it
// returns nil, and the read takes the full path (getUptodate).
func (m *Mapping) findHit(index int64, ra *ReadaheadState) *Page {
	p := m.index.lookup(index)
	if p == nil || !p.tryGetRead() {
		return nil
	}
	if p.mapping.Load() != m || p.flags.Load()&(pgUptodate|pgReadahead|pgReferenced) != pgUptodate|pgReferenced ||
		ra != nil && ra.noReuse() {
		p.putRead()
		return nil
	}
	m.c.countHit()
	return p
}

// Read reads into dst from byte offset off: the buffered read path (Linux's
// filemap_read). Hits take no lock; misses fill with readahead driven by ra
// (a file handle's state; nil reads only what is asked). It returns io.EOF
// at or past the end of file.
func (m *Mapping) Read(dst []byte, off int64, ra *ReadaheadState) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	m.lockRead()
	defer m.unlockRead()
	if m.dax != nil {
		return m.daxRead(dst, off)
	}
	return m.read(dst, off, ra)
}

// ReadLocked is Read for a caller that holds the file's inode lock (and
// so, in LockRWSem mode, what Read would take): a two-file operation
// reading its source.
func (m *Mapping) ReadLocked(dst []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if m.dax != nil {
		return m.daxRead(dst, off)
	}
	return m.read(dst, off, nil)
}

func (m *Mapping) read(dst []byte, off int64, ra *ReadaheadState) (int, error) {
	size := m.Size()
	if off >= size {
		return 0, io.EOF
	}
	end := min(off+int64(len(dst)), size)
	lastIdx := (end - 1) / PageSize
	done := 0
	for pos := off; pos < end; {
		idx := pos / PageSize
		if m.unevictable && m.index.lookup(idx) == nil && m.isHole(idx) {
			// Memory-backed pages are never evicted: caching the zeros of
			// a hole would let reading a sparse file pin unbounded memory.
			n := int(min(PageSize-pos%PageSize, end-pos))
			clear(dst[done : done+n])
			done += n
			pos += int64(n)
			continue
		}
		in := int(pos % PageSize)
		if p := m.findHit(idx, ra); p != nil {
			// A truncate may have shrunk the file meanwhile: never return
			// bytes past the new EOF (Linux's filemap_read rechecks too).
			if size := m.Size(); size < end {
				end = size
				if pos >= end {
					p.putRead()
					break
				}
			}
			n := p.copyOutLocked(dst[done:int(end-off)], in)
			p.putRead()
			done += n
			pos += int64(n)
			if ra != nil {
				ra.setPrev(idx)
			}
			continue
		}
		p, err := m.getUptodate(idx, ra, lastIdx-idx+1, false)
		if err != nil {
			return done, err
		}
		if size := m.Size(); size < end {
			end = size
			if pos >= end {
				p.put()
				break
			}
		}
		if p.has(pgReadahead) && ra != nil {
			m.asyncReadahead(ra, p)
		}
		// The referenced bit is only written when it changes: this is the
		// hit path, and a store would bounce the page's cache line.
		if ra != nil && ra.noReuse() {
			// Read once (FADV_NOREUSE): first in line for eviction, even
			// if it was just filled.
			if p.has(pgReferenced) {
				p.clear(pgReferenced)
			}
		} else if !p.has(pgReferenced) {
			p.set(pgReferenced)
		}
		n := p.copyOut(dst[done:int(end-off)], in)
		p.put()
		done += n
		pos += int64(n)
		if ra != nil {
			ra.setPrev(idx)
		}
	}
	if done < len(dst) {
		return done, io.EOF
	}
	return done, nil
}
