package pagecache

import (
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReadaheadState is one open file's readahead window (Linux's
// file_ra_state). The zero value is ready to use.
type ReadaheadState struct {
	mu        sync.Mutex // leaf lock; held only to compute a window
	start     int64      // first page of the current window; +checklocks:mu
	size      int64      // pages in the window; +checklocks:mu
	asyncSize int64      // pages left when the marker page is hit; +checklocks:mu
	// prev is written by every read that moves on: padded onto a cache
	// line of its own, so readers of different handles never share one.
	_        [64]byte
	prev     atomic.Int64 // last page read, +1 (0 = none); racy by design, as in Linux
	_        [56]byte
	random   bool        // FADV_RANDOM: no readahead; +checklocks:mu
	maxScale int64       // FADV_SEQUENTIAL doubles the window; +checklocks:mu
	noreuse  atomic.Bool // FADV_NOREUSE: reads do not mark pages referenced
}

func (ra *ReadaheadState) noReuse() bool { return ra.noreuse.Load() }

// setPrev records the last page read. It is on the hit path: it writes the
// shared word only when the value changes.
func (ra *ReadaheadState) setPrev(idx int64) {
	if ra.prev.Load() != idx+1 {
		ra.prev.Store(idx + 1)
	}
}

func (m *Mapping) maxRA(ra *ReadaheadState) int64 {
	n := int64(m.c.opts.ReadaheadPages)
	if ra.maxScale > 1 {
		n *= ra.maxScale
	}
	return min(n, maxClusterPages)
}

// initWindow sizes the first window of a sequential stream from the size of
// the request, like Linux's get_init_ra_size: small reads get 4x, large 2x.
func initWindow(req, limit int64) int64 {
	n := req * 4
	if req > limit/16 {
		n = req * 2
	}
	return min(max(n, 4), limit)
}

// syncReadahead handles a read miss at index for a request of req pages
// (Linux's page_cache_sync_ra, on-demand readahead): a random miss reads
// what was asked; a sequential one (at the start of the file, right after
// the previous read, or at the end of the window) opens or grows a window,
// reads it, and marks the page where the next window should start early.
func (m *Mapping) syncReadahead(ra *ReadaheadState, index, req int64) error {
	ra.mu.Lock()
	maxWin := m.maxRA(ra)
	req = min(req, maxWin)
	if ra.random {
		ra.mu.Unlock()
		return m.fillAsked(index, req)
	}
	sequential := index == 0 || index == ra.prev.Load() || index == ra.prev.Load()-1 || (ra.size > 0 && index == ra.start+ra.size)
	if !sequential {
		ra.start, ra.size, ra.asyncSize = index, req, 0
		ra.mu.Unlock()
		return m.fillAsked(index, req)
	}
	if ra.size > 0 && index == ra.start+ra.size {
		ra.size = min(2*ra.size, maxWin)
	} else {
		ra.size = initWindow(req, maxWin)
	}
	ra.size = max(ra.size, req)
	ra.start = index
	ra.asyncSize = ra.size - req
	if ra.asyncSize == 0 {
		ra.asyncSize = ra.size / 2
	}
	start, size, mark := ra.start, ra.size, ra.start+ra.size-ra.asyncSize
	ra.mu.Unlock()
	if extra := size - req; extra > 0 {
		m.c.stats.ra.Add(extra)
	}
	n := m.clampToEOF(start, size)
	if n == 0 {
		// The file shrank since the caller read its size: the page asked
		// for is past EOF now. Filling nothing and returning nil would make
		// getUptodate retry the miss forever.
		return io.EOF
	}
	return m.fillRange(start, n, index, mark, false)
}

// fillAsked fills just the pages a read asked for, up to EOF: a truncate
// may have shrunk the file since the read looked at its size, and pages
// past EOF must not be created (io.EOF then, as for an empty window).
func (m *Mapping) fillAsked(index, req int64) error {
	n := m.clampToEOF(index, req)
	if n == 0 {
		return io.EOF
	}
	return m.fillRange(index, n, index, -1, false)
}

// clampToEOF limits a window to the pages below the end of file.
func (m *Mapping) clampToEOF(start, n int64) int64 {
	last := (m.Size() + PageSize - 1) / PageSize
	return max(min(n, last-start), 0)
}

// asyncReadahead runs when a reader reaches the marker page: it starts
// reading the next window in the background, so a sequential reader finds
// its pages cached (Linux's page_cache_async_ra).
func (m *Mapping) asyncReadahead(ra *ReadaheadState, p *Page) {
	if !p.testAndClear(pgReadahead) {
		return
	}
	ra.mu.Lock()
	if ra.random {
		ra.mu.Unlock()
		return
	}
	maxWin := m.maxRA(ra)
	if p.index >= ra.start && p.index < ra.start+ra.size {
		ra.start += ra.size
	} else {
		ra.start = p.index + 1
	}
	ra.size = min(max(2*ra.size, 4), maxWin)
	ra.asyncSize = ra.size
	start, size := ra.start, ra.size
	ra.mu.Unlock()
	n := m.clampToEOF(start, size)
	if n <= 0 {
		return
	}
	c := m.c
	c.asyncMu.Lock()
	if c.closed.Load() {
		c.asyncMu.Unlock()
		return
	}
	c.wg.Add(1) // before Close can Wait
	c.asyncMu.Unlock()
	c.stats.asyncRA.Add(1)
	c.stats.ra.Add(n)
	go func() {
		defer m.c.wg.Done()
		m.lockRead()
		defer m.unlockRead()
		_ = m.fillRange(start, n, -1, start, false) // a failed page is retried by its reader
	}()
}

// Readahead reads [off, off+n) into the cache without copying it out, in
// windows of the maximum readahead size (Linux's force_page_cache_ra,
// behind readahead(2), FADV_WILLNEED and MADV_WILLNEED); n == 0 means to
// the end of the file, as for fadvise. Read errors are
// not reported: the pages stay uncached and the next read retries them.
func (m *Mapping) Readahead(off, n int64) error {
	if off < 0 || n < 0 {
		return syscall.EINVAL
	}
	if m.dax != nil {
		return nil // nothing to cache (Linux ignores readahead of DAX files)
	}
	m.lockRead()
	defer m.unlockRead()
	return m.forceReadahead(off, n)
}

func (m *Mapping) forceReadahead(off, n int64) error {
	end := m.Size()
	if n > 0 && n < end-off { // n == 0 means to EOF; no off+n overflow
		end = off + n
	}
	step := int64(m.c.opts.ReadaheadPages)
	for idx := off / PageSize; idx*PageSize < end; idx += step {
		cnt := min(step, (end+PageSize-1)/PageSize-idx)
		_ = m.fillRange(idx, cnt, -1, -1, false)
	}
	return nil
}

// Fadvise applies posix_fadvise advice to [off, off+n) (n == 0: to the end
// of file) for the file handle whose readahead state is ra.
func (m *Mapping) Fadvise(ra *ReadaheadState, off, n int64, advice int) error {
	if off < 0 || n < 0 {
		return syscall.EINVAL
	}
	switch advice {
	case unix.FADV_NORMAL, unix.FADV_RANDOM, unix.FADV_SEQUENTIAL, unix.FADV_NOREUSE:
		ra.mu.Lock()
		ra.random = advice == unix.FADV_RANDOM
		ra.maxScale = 1
		if advice == unix.FADV_SEQUENTIAL {
			ra.maxScale = 2
		}
		ra.noreuse.Store(advice == unix.FADV_NOREUSE)
		ra.mu.Unlock()
		return nil
	case unix.FADV_WILLNEED:
		return m.Readahead(off, n)
	case unix.FADV_DONTNEED:
		if m.dax != nil {
			return nil // no pages (Linux's generic_fadvise ignores it on DAX)
		}
		end := maxPageIdx + 1
		if n > 0 && n <= (maxPageIdx+1)*PageSize-off {
			end = (off + n) / PageSize
		}
		start := (off + PageSize - 1) / PageSize
		// Write back what is not busy (WB_SYNC_NONE; the I/O completes
		// within this call), then drop the clean pages. Pages that were
		// busy, and mapped pages, stay, as in Linux.
		_ = m.writeback(start, end, false, 0)
		m.InvalidateClean(start, end)
		return nil
	}
	return syscall.EINVAL
}
