package pagecache

import (
	"runtime"
	"sync/atomic"
	"syscall"

	"github.com/google/btree"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

// MappingOptions describe the file a Mapping caches.
type MappingOptions struct {
	// Blocks is the file's block map.
	Blocks blockmap.File
	// Device holds the data of Mapped blocks; nil for memory backends.
	Device blockdev.Device
	// Host is the file's inode lock. In LockRWSem mode read paths take it
	// shared; Write asserts it is held exclusive.
	Host *lockcheck.RWMutex
	// Unevictable pages are the storage (memfs): they are never evicted,
	// written back or counted against CacheBytes.
	Unevictable bool
	// Key orders this mapping's invalidate lock among other mappings' (the
	// inode number); two-file operations take them in ascending key order.
	Key uintptr
	// DAX, if set, is Device seen as memory: the mapping is in DAX mode
	// (dax.go) and caches no pages.
	DAX blockdev.DAXDevice
}

// Mapping is the page cache of one file, Linux's address_space.
type Mapping struct {
	c           *Cache
	blocks      blockmap.File
	dev         blockdev.Device
	host        *lockcheck.RWMutex
	unevictable bool
	key         uintptr
	// remap is blocks when it writes some pages out of place (shared
	// blocks, a log); writeback then asks it where each page goes.
	remap blockmap.Remapper
	// cacheBlocks lets a page remember its block and be written there
	// again without a lookup; false for a log, where every write moves.
	cacheBlocks bool
	// dax is the device in DAX mode, nil otherwise; daxLocks are then the
	// DAX entry locks (dax.go), which stand in for page locks.
	dax      blockdev.DAXDevice
	daxLocks *[daxEntryLocks]lockcheck.Mutex

	// invalidate is held shared by fill paths over the pages they create
	// and whose blocks they look up, exclusive by every path that truncates
	// pages and changes the block map, over the pages it removes.
	invalidate RangeLock

	size atomic.Int64 // i_size in bytes; written under the host lock exclusive

	indexMu lockcheck.Mutex
	index   pageIndex    // lookups lockless; changes +checklocks:indexMu
	nrPages atomic.Int64 // pages in index
	dead    atomic.Bool  // the file is gone (Release); set under indexMu

	dirtyMu     lockcheck.Mutex
	dirty       *btree.BTreeG[int64] // indexes of dirty pages; +checklocks:dirtyMu
	nrDirty     atomic.Int64
	onDirtyList atomic.Bool  // queued on Cache.dirtyMappings
	dirtiedAt   atomic.Int64 // unix nanoseconds the mapping became dirty

	viewMu lockcheck.Mutex
	views  atomic.Pointer[[]*MappedView] // copy-on-write; replaced under viewMu, read locklessly

	wbErr errseq
}

// NewMapping returns an empty mapping of a file in c.
func (c *Cache) NewMapping(o MappingOptions) *Mapping {
	m := &Mapping{c: c, blocks: o.Blocks, dev: o.Device, host: o.Host, unevictable: o.Unevictable, key: o.Key,
		cacheBlocks: true}
	if r, ok := o.Blocks.(blockmap.Remapper); ok {
		m.remap, m.cacheBlocks = r, r.WritesInPlace()
	}
	m.invalidate.init(o.Key, c.opts.FileInvalidateLock, &c.invWait)
	m.indexMu.Init(lockcheck.RankCache)
	m.dirtyMu.Init(lockcheck.RankCache)
	m.viewMu.Init(lockcheck.RankView)
	m.dirty = btree.NewOrderedG[int64](16)
	if o.DAX != nil {
		m.dax, m.daxLocks = o.DAX, new([daxEntryLocks]lockcheck.Mutex)
		for i := range m.daxLocks {
			m.daxLocks[i].Init(lockcheck.RankPage)
		}
	}
	c.addMapping(m)
	return m
}

// Release takes an emptied mapping off the eviction clock when its file
// is gone. The caller has truncated every page.
func (m *Mapping) Release() {
	// An async readahead started before the file went away must not add
	// pages after this: nothing would ever truncate or evict them.
	m.indexMu.Lock()
	m.dead.Store(true)
	m.indexMu.Unlock()
	m.c.removeMapping(m)
}

// Cache returns the cache the mapping belongs to.
func (m *Mapping) Cache() *Cache { return m.c }

// Size returns the file size in bytes.
func (m *Mapping) Size() int64 { return m.size.Load() }

// SetSize records a new file size. The caller holds the inode lock
// exclusive and has already truncated pages past a smaller size.
func (m *Mapping) SetSize(n int64) { m.size.Store(n) }

// NrPages returns the number of pages cached.
func (m *Mapping) NrPages() int64 { return m.nrPages.Load() }

// NrDirty returns the number of dirty pages.
func (m *Mapping) NrDirty() int64 { return m.nrDirty.Load() }

// InvalidateLock returns the mapping's invalidate lock, for the VFS's
// block-removing operations and two-file locking.
func (m *Mapping) InvalidateLock() *RangeLock { return &m.invalidate }

// LockRemove takes the invalidate lock exclusive over the pages the byte
// range [lstart, lend) touches, its partial edge pages included (the
// pages TruncateRange zeroes); lend == math.MaxInt64 means to the end of
// the file and beyond, as for a truncate, collapse or insert, which change
// or shift everything past lstart. Fills of other pages go on meanwhile.
func (m *Mapping) LockRemove(lstart, lend int64) RangeHold {
	return m.invalidate.Lock(pageSpan(lstart, lend))
}

// ForgetBlocks makes the pages of [first, last) forget their blocks and
// waits for their writeback in flight, so that every later write asks the
// block map where to go: a clone is about to share those blocks, and a page
// must not write into a shared block in place. The caller holds the
// invalidate lock exclusive over [first, last), so no fill can remember a
// block there again.
func (m *Mapping) ForgetBlocks(first, last int64) {
	m.index.walk(first, last, func(p *Page) bool {
		if !p.tryGet() {
			return true
		}
		p.lock()
		p.waitWriteback()
		p.block = -1
		p.unlock()
		p.put()
		return true
	})
}

// Blocks returns the mapping's block map.
func (m *Mapping) Blocks() blockmap.File { return m.blocks }

// lockFill takes what a fill path needs before it creates the pages
// [first, last) and looks up their blocks: the invalidate lock shared over
// exactly those pages, so that a fill never creates a page, or looks up a
// block, in a range a remover holds. fault is true for the fault and
// page_mkwrite paths. The zero hold is returned where the mode takes
// nothing; its Unlock does nothing.
func (m *Mapping) lockFill(first, last int64, fault bool) RangeHold {
	switch m.c.opts.LockMode {
	case LockInvalidate:
		return m.invalidate.RLock(first, last)
	case LockRWSem:
		if fault {
			return m.invalidate.RLock(first, last)
		}
	}
	return RangeHold{}
}

// lockRead takes the inode lock shared for a whole read-side call in
// LockRWSem mode (the XFS-style serialization); it does nothing otherwise.
func (m *Mapping) lockRead() {
	if m.c.opts.LockMode == LockRWSem {
		m.host.RLock()
	}
}

func (m *Mapping) unlockRead() {
	if m.c.opts.LockMode == LockRWSem {
		m.host.RUnlock()
	}
}

// findGet returns the page at index with a reference taken, or nil. It is
// the lockless cache-hit lookup.
func (m *Mapping) findGet(index int64) *Page {
	for {
		p := m.index.lookup(index)
		if p == nil {
			return nil
		}
		if p.tryGet() {
			if p.mapping.Load() == m {
				return p
			}
			p.put()
		}
		// Frozen or removed under us: the index no longer holds it, or soon won't.
		runtime.Gosched()
	}
}

// addLocked inserts a new page, locked by the caller, into the index. It
// returns false if another page got there first, or the mapping is dead;
// the page's frame is then freed and the caller may only unlock it.
func (m *Mapping) addLocked(p *Page) bool {
	p.mapping.Store(m)
	m.indexMu.Lock()
	ok := !m.dead.Load() && m.index.insert(p)
	m.indexMu.Unlock()
	if !ok {
		// Nobody saw the page: dropping the index's reference frees its frame.
		p.mapping.Store(nil)
		p.put()
		return false
	}
	m.nrPages.Add(1)
	if m.unevictable {
		m.c.nrUnevictable.Add(1)
	} else {
		// A new page gets one pass of the clock's hand before it can be
		// evicted, so readahead pages live until their reader comes.
		p.set(pgReferenced)
		m.c.nrPages.Add(1)
	}
	return true
}

// newLockedPage returns a new page at index, locked and not yet in the
// index. It is private until added, so taking its lock cannot block.
func newLockedPage(index int64) *Page {
	p := newPage(index)
	p.flags.Store(pgLocked)
	lockcheck.TryAcquired(lockcheck.RankPage, p.lockKey())
	return p
}

// deletePage removes a locked page from the index and drops the index's
// reference: the page is dead for everyone who looks it up after.
func (m *Mapping) deletePage(p *Page) {
	m.indexMu.Lock()
	removed := m.index.remove(p)
	p.mapping.Store(nil)
	m.indexMu.Unlock()
	if !removed {
		return
	}
	m.nrPages.Add(-1)
	if m.unevictable {
		m.c.nrUnevictable.Add(-1)
	} else {
		m.c.nrPages.Add(-1)
	}
	p.put()
}

// evict removes a clean page the caller holds one reference to, if nobody
// else uses it: the count is frozen from 2 (index + caller) to 0, so no
// lockless lookup can pin it after. It reports whether the page was freed.
func (m *Mapping) evict(p *Page) bool {
	m.indexMu.Lock()
	// A truncation may have removed the page (dropping the index's
	// reference) since the caller found it: then the two references left
	// are the caller's and the truncator's, and freezing them would free
	// the page under the truncator.
	if p.mapping.Load() != m || p.has(pgDirty|pgWriteback|pgLocked) || !p.freeze(2) {
		m.indexMu.Unlock()
		return false
	}
	m.index.remove(p)
	p.mapping.Store(nil)
	m.indexMu.Unlock()
	m.nrPages.Add(-1)
	m.c.nrPages.Add(-1)
	freePage(p)
	return true
}

// markDirty marks a locked, uptodate page dirty and queues it for
// writeback. Memory-backed pages are the storage and are never written back.
func (m *Mapping) markDirty(p *Page) {
	if m.unevictable || p.testAndSet(pgDirty) {
		return
	}
	m.dirtyMu.Lock()
	m.dirty.ReplaceOrInsert(p.index)
	m.dirtyMu.Unlock()
	m.nrDirty.Add(1)
	m.c.nrDirty.Add(1)
	m.c.markMappingDirty(m)
}

// clearDirty clears a locked page's dirty bit and reports whether it was set.
func (m *Mapping) clearDirty(p *Page) bool {
	if !p.testAndClear(pgDirty) {
		return false
	}
	m.dirtyMu.Lock()
	m.dirty.Delete(p.index)
	m.dirtyMu.Unlock()
	m.nrDirty.Add(-1)
	m.c.nrDirty.Add(-1)
	return true
}

// dirtyIndexes returns up to max indexes of dirty pages in [start, end).
func (m *Mapping) dirtyIndexes(start, end int64, max int) []int64 {
	var out []int64
	m.dirtyMu.Lock()
	m.dirty.AscendRange(start, end, func(i int64) bool {
		out = append(out, i)
		return len(out) < max
	})
	m.dirtyMu.Unlock()
	return out
}

// errseq records writeback errors so that each file handle learns of an
// error once, at its next fsync (Linux's errseq_t). The word holds
// sequence<<33 | seen<<32 | errno; seen says some handle has reported the
// latest error. A handle opened while an error is unseen still gets it, so
// an error of writeback after the last close is not lost.
type errseq struct{ v atomic.Uint64 }

const errSeen = 1 << 32

func (e *errseq) set(errno syscall.Errno) {
	for {
		old := e.v.Load()
		next := (old>>33+1)<<33 | uint64(errno)
		if e.v.CompareAndSwap(old, next) {
			return
		}
	}
}

// SetError records an error for every file handle's next fsync, as a
// failed writeback does (Linux's mapping_set_error): for data lost
// without a writeback, such as dirty pages dropped because the storage
// changed behind the cache.
func (m *Mapping) SetError(errno syscall.Errno) {
	m.wbErr.set(errno)
	m.c.wbErr.set(errno)
}

// ErrSample returns the writeback-error cursor for a newly opened file
// handle: errors already reported by some handle are behind it, an unseen
// one is ahead of it (Linux's errseq_sample).
func (m *Mapping) ErrSample() uint64 { return m.wbErr.sample() }

// ErrCheck reports a writeback error that happened since *since, once: it
// advances *since and marks the error seen (errseq_check_and_advance).
func (m *Mapping) ErrCheck(since *uint64) error { return m.wbErr.check(since) }

func (e *errseq) sample() uint64 {
	v := e.v.Load()
	if v&errSeen == 0 && v>>33 > 0 {
		return v>>33 - 1
	}
	return v >> 33
}

func (e *errseq) check(since *uint64) error {
	for {
		v := e.v.Load()
		if v>>33 == *since {
			return nil
		}
		if v&errSeen != 0 || e.v.CompareAndSwap(v, v|errSeen) {
			*since = v >> 33
			return syscall.Errno(uint32(v))
		}
	}
}

// NextUnwritten returns the index of the first page in [start, end) whose
// data has not reached storage yet (dirty, or under writeback), or -1 if
// there is none. SEEK_DATA counts such pages as data.
func (m *Mapping) NextUnwritten(start, end int64) int64 {
	first := int64(-1)
	if i := m.dirtyIndexes(start, end, 1); len(i) > 0 {
		first, end = i[0], i[0]
	}
	m.index.walk(start, end, func(p *Page) bool {
		if p.has(pgWriteback) {
			first = p.index
			return false
		}
		return true
	})
	return first
}

// Key returns the key the mapping was created with (the inode number).
func (m *Mapping) Key() uintptr { return m.key }
