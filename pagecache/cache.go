package pagecache

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

// Options configure a Cache.
type Options struct {
	// CacheBytes bounds the memory of evictable pages. Default 64 MiB,
	// minimum 64 pages.
	CacheBytes int64
	// LockMode selects the fill-path protection; default LockInvalidate.
	LockMode LockMode
	// FileInvalidateLock makes each mapping's invalidate lock one lock for
	// the whole file, as Linux's mapping->invalidate_lock is, instead of
	// locking page ranges (RangeLock): a remover then stalls every fill of
	// the file, not only those of its own range. For comparison.
	FileInvalidateLock bool
	// ReadaheadPages is the largest readahead window in pages; default 32
	// (128 KiB, Linux's default read_ahead_kb).
	ReadaheadPages int
	// DirtyBackgroundPercent of the cache dirty wakes the flusher; default 10.
	DirtyBackgroundPercent int
	// DirtyPercent of the cache dirty makes writers write back before they
	// dirty more (balance_dirty_pages); default 20.
	DirtyPercent int
	// DirtyExpire is how old dirty data may get before the flusher writes
	// it back; default 5 s.
	DirtyExpire time.Duration
	// Hooks are test hooks; nil in production.
	Hooks *Hooks
}

// Hooks let tests stop a path at a chosen point to force an interleaving.
type Hooks struct {
	// BeforeFill runs on every fill path after its end-of-file checks and
	// before it creates the pages [index, index+n) (for faults and DAX
	// reads, with the fill lock already held; a DAX fill creates no page
	// and runs it before its block lookup).
	BeforeFill func(m *Mapping, index, n int64)
	// AfterMapRead runs on every fill path (read, readahead, fault) after
	// the block map lookup for the extent e and before its data is read.
	AfterMapRead func(m *Mapping, e blockmap.Extent)
}

// ErrSample returns a cursor for ErrCheck: errors of any mapping from now
// on are ahead of it.
func (c *Cache) ErrSample() uint64 { return c.wbErr.v.Load() >> 33 }

// ErrCheck reports a writeback error of any mapping that happened since
// *since and advances *since (syncfs, Linux 5.8 and later).
func (c *Cache) ErrCheck(since *uint64) error { return c.wbErr.check(since) }

// Stats are cumulative counters of a Cache.
type Stats struct {
	Hits, Misses          int64 // buffered-read and fault page lookups
	FillPages             int64 // pages created and read by fill paths
	ReadaheadPages        int64 // of FillPages, beyond what was asked for
	AsyncReadaheads       int64 // async readahead windows started by markers
	WritebackPages        int64
	WritebackIOs          int64 // device writes issued by writeback (clusters)
	Evictions             int64
	ThrottledWrites       int64 // writers that wrote back before dirtying more
	OverLimit             int64 // page allocations that exceeded the limit + slack
	Pages, DirtyPages     int64 // current
	UnevictablePages      int64 // current (memfs pages)
	LimitPages, SlackPage int64
	// FrameBytes and FrameMappedBytes are the page-frame arena's (frames.go,
	// shared by every Cache in the process): frames holding pages, and
	// chunks mapped for them.
	FrameBytes, FrameMappedBytes int64
	// InvalidateWaits counts acquisitions of the mappings' invalidate
	// locks that found them taken, shared (fills) and exclusive
	// (removers) apart; InvalidateWait* is the time those waited. Cache
	// hits take no invalidate lock and are not counted.
	InvalidateSharedWaits, InvalidateExclusiveWaits int64
	InvalidateSharedWait, InvalidateExclusiveWait   time.Duration
}

// Cache is the memory shared by the mappings of one filesystem: page
// accounting against CacheBytes, the eviction clock, dirty accounting and
// the background flusher.
type Cache struct {
	opts          Options
	limit         int64 // pages
	slack         int64
	bgDirty       int64
	dirtyLimit    int64
	nrPages       atomic.Int64 // evictable pages in all mappings
	nrUnevictable atomic.Int64
	nrDirty       atomic.Int64

	// wbErr records every mapping's writeback errors for the filesystem
	// as a whole (Linux's sb->s_wb_err), which syncfs reports.
	wbErr errseq

	// The eviction clock sweeps the evictable mappings in turn, each in
	// page-index order: no per-page list links, and nothing to update when
	// a page is created or removed.
	clockMu  lockcheck.Mutex
	mappings []*Mapping // evictable mappings; +checklocks:clockMu
	pinned   []*Mapping // unevictable mappings, for Close to free their pages; +checklocks:clockMu
	hand     int        // the mapping the clock's hand is in; +checklocks:clockMu
	handPage int64      // the page index the hand points at; +checklocks:clockMu

	dirtyMu       lockcheck.Mutex
	dirtyMappings []*Mapping // in the order they became dirty; +checklocks:dirtyMu

	stats struct {
		misses, fill, ra, asyncRA, wbPages, wbIOs, evictions, throttled, overLimit atomic.Int64
	}
	invWait lockcheck.WaitStats // every mapping's invalidate lock
	// hits is sharded (see countHit): one shared counter on the lockless
	// hit path would bounce its cache line between every reading core.
	hits [16]struct {
		n atomic.Int64
		_ [56]byte
	}

	flushKick chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup // flusher and async readahead goroutines
	asyncMu   sync.Mutex     // orders starting async readahead against Close; leaf
	closed    atomic.Bool    // written under asyncMu
}

// NewCache returns a cache and starts its flusher. Close stops it.
func NewCache(opts Options) *Cache {
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	if opts.ReadaheadPages <= 0 {
		opts.ReadaheadPages = 32
	}
	if opts.DirtyBackgroundPercent <= 0 {
		opts.DirtyBackgroundPercent = 10
	}
	if opts.DirtyPercent <= 0 {
		opts.DirtyPercent = 20
	}
	if opts.DirtyExpire <= 0 {
		opts.DirtyExpire = 5 * time.Second
	}
	c := &Cache{opts: opts, flushKick: make(chan struct{}, 1), stop: make(chan struct{})}
	c.limit = max(opts.CacheBytes/PageSize, 64)
	// Slack covers pages pinned while reclaim runs: in-flight fills and
	// readahead windows of concurrent readers.
	c.slack = max(c.limit/32, int64(4*opts.ReadaheadPages))
	c.bgDirty = max(c.limit*int64(opts.DirtyBackgroundPercent)/100, 1)
	c.dirtyLimit = max(c.limit*int64(opts.DirtyPercent)/100, 2)
	c.clockMu.Init(lockcheck.RankCache)
	c.dirtyMu.Init(lockcheck.RankCache)
	c.wg.Add(1)
	go c.flusher()
	return c
}

// countHit counts a cache hit in a shard chosen by the calling goroutine's
// stack address: readers on different cores then write different cache
// lines, even when they all hit one hot page.
func (c *Cache) countHit() {
	var onStack byte
	c.hits[(uintptr(unsafe.Pointer(&onStack))>>12)%uintptr(len(c.hits))].n.Add(1)
}

func (c *Cache) hitCount() (n int64) {
	for i := range c.hits {
		n += c.hits[i].n.Load()
	}
	return n
}

// LockMode returns the cache's lock mode.
func (c *Cache) LockMode() LockMode { return c.opts.LockMode }

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := &c.stats
	frameBytes, frameMapped := FrameStats()
	return Stats{
		FrameBytes: frameBytes, FrameMappedBytes: frameMapped,
		Hits: c.hitCount(), Misses: s.misses.Load(), FillPages: s.fill.Load(),
		ReadaheadPages: s.ra.Load(), AsyncReadaheads: s.asyncRA.Load(),
		WritebackPages: s.wbPages.Load(), WritebackIOs: s.wbIOs.Load(),
		Evictions: s.evictions.Load(), ThrottledWrites: s.throttled.Load(),
		OverLimit: s.overLimit.Load(), Pages: c.nrPages.Load(), DirtyPages: c.nrDirty.Load(),
		UnevictablePages: c.nrUnevictable.Load(), LimitPages: c.limit, SlackPage: c.slack,
		InvalidateSharedWaits: c.invWait.SharedWaits.Load(), InvalidateExclusiveWaits: c.invWait.ExclusiveWaits.Load(),
		InvalidateSharedWait:    time.Duration(c.invWait.SharedNanos.Load()),
		InvalidateExclusiveWait: time.Duration(c.invWait.ExclusiveNanos.Load()),
	}
}

// Close writes back every dirty page, stops the flusher, waits for async
// readahead and frees every page: their frames are outside the Go heap,
// and a mapping dropped with pages in it would leak them. Mappings must
// not be used after. Views lose their entries (a later access faults and
// fails); a page a caller still holds a reference on keeps its frame until
// that reference goes.
func (c *Cache) Close() error {
	c.asyncMu.Lock()
	already := c.closed.Swap(true)
	c.asyncMu.Unlock()
	if already {
		return nil
	}
	err := c.writebackAll(true)
	close(c.stop)
	c.wg.Wait()
	c.clockMu.Lock()
	all := append(append([]*Mapping(nil), c.mappings...), c.pinned...)
	c.clockMu.Unlock()
	for _, m := range all {
		m.drop()
	}
	frames.shrink()
	return err
}

// drop frees the pages of a mapping as its cache closes, and marks it dead
// so that no fill adds one after. A DAX mapping has no pages.
func (m *Mapping) drop() {
	if m.dax != nil {
		return
	}
	m.indexMu.Lock()
	m.dead.Store(true)
	m.indexMu.Unlock()
	m.zapRange(0, maxPageIdx+1)
	m.truncatePages(0, maxPageIdx+1)
}

// addMapping puts an evictable mapping on the clock, an unevictable one
// on the pinned list.
func (c *Cache) addMapping(m *Mapping) {
	c.clockMu.Lock()
	if m.unevictable {
		c.pinned = append(c.pinned, m)
	} else {
		c.mappings = append(c.mappings, m)
	}
	c.clockMu.Unlock()
}

// removeMapping takes a mapping off the clock or the pinned list.
func (c *Cache) removeMapping(m *Mapping) {
	c.clockMu.Lock()
	defer c.clockMu.Unlock()
	if m.unevictable {
		for i, x := range c.pinned {
			if x == m {
				c.pinned = append(c.pinned[:i], c.pinned[i+1:]...)
				break
			}
		}
		return
	}
	for i, x := range c.mappings {
		if x == m {
			c.mappings = append(c.mappings[:i], c.mappings[i+1:]...)
			if c.hand > i {
				c.hand--
			} else if c.hand == i {
				c.handPage = 0
			}
			break
		}
	}
}

// reserve makes room for n new pages before a fill or write creates them:
// it evicts clean pages by the clock, and writes back dirty ones when clean
// pages alone do not make room. It never waits for pages it cannot free
// (pinned by views or in-flight I/O): past the slack, the allocation goes
// over the limit and is counted in Stats.OverLimit.
func (c *Cache) reserve(n int64) {
	if c.nrPages.Load()+n <= c.limit {
		return
	}
	for round := 0; round < 3; round++ {
		want := c.nrPages.Load() + n - c.limit
		if want <= 0 {
			return
		}
		freed, sawDirty := c.reclaim(max(want, 32))
		if freed >= want {
			return
		}
		if sawDirty {
			c.writebackOldest(max(want-freed, 32))
		}
	}
	if c.nrPages.Load()+n > c.limit+c.slack {
		c.stats.overLimit.Add(1)
	}
}

// reclaim runs the eviction clock (second chance): the hand sweeps each
// evictable mapping in page-index order; a page referenced since the hand
// last passed is spared once, a clean, unlocked, unmapped one is evicted.
// It returns the pages freed and whether it passed dirty pages.
func (c *Cache) reclaim(want int64) (freed int64, sawDirty bool) {
	budget := 2*c.nrPages.Load() + 64
	batch := make([]*Page, 0, 64)
	for freed < want && budget > 0 {
		budget--
		c.clockMu.Lock()
		if len(c.mappings) == 0 {
			c.clockMu.Unlock()
			break
		}
		if c.hand >= len(c.mappings) {
			c.hand, c.handPage = 0, 0
		}
		m, start := c.mappings[c.hand], c.handPage
		c.clockMu.Unlock()

		batch = m.pinRange(start, maxPageIdx+1, batch)
		// Move the hand past the batch, or on to the next mapping.
		c.clockMu.Lock()
		if c.hand < len(c.mappings) && c.mappings[c.hand] == m {
			if len(batch) < cap(batch) {
				c.hand, c.handPage = c.hand+1, 0
			} else {
				c.handPage = batch[len(batch)-1].index + 1
			}
		}
		c.clockMu.Unlock()

		for _, p := range batch {
			budget--
			switch {
			case p.testAndClear(pgReferenced):
			case p.has(pgDirty | pgWriteback):
				sawDirty = true
			case freed < want && m.evict(p):
				freed++
				continue
			}
			p.put()
		}
	}
	c.stats.evictions.Add(freed)
	return freed, sawDirty
}

// freePage recycles the frame of a page whose reference count is frozen.
func freePage(p *Page) {
	data := p.data
	p.data = nil
	frames.release(data)
}

// markMappingDirty queues m for the flusher when it gets its first dirty page.
func (c *Cache) markMappingDirty(m *Mapping) {
	if m.onDirtyList.Swap(true) {
		return
	}
	m.dirtiedAt.Store(time.Now().UnixNano())
	c.dirtyMu.Lock()
	c.dirtyMappings = append(c.dirtyMappings, m)
	c.dirtyMu.Unlock()
}

// dirtyList returns the dirty mappings oldest first, dropping clean ones.
func (c *Cache) dirtyList() []*Mapping {
	c.dirtyMu.Lock()
	defer c.dirtyMu.Unlock()
	live := c.dirtyMappings[:0]
	for _, m := range c.dirtyMappings {
		if m.nrDirty.Load() > 0 {
			live = append(live, m)
		} else {
			m.onDirtyList.Store(false)
			// A page dirtied between the load and the store would be lost to
			// the flusher; recheck and keep the mapping if so.
			if m.nrDirty.Load() > 0 && !m.onDirtyList.Swap(true) {
				live = append(live, m)
			}
		}
	}
	clear(c.dirtyMappings[len(live):])
	c.dirtyMappings = live
	return append([]*Mapping(nil), live...)
}

// writebackOldest writes back about n dirty pages, oldest mappings first.
func (c *Cache) writebackOldest(n int64) {
	for _, m := range c.dirtyList() {
		if n <= 0 {
			return
		}
		before := c.nrDirty.Load()
		m.writeback(0, maxPageIdx+1, false, n)
		n -= before - c.nrDirty.Load()
	}
}

// writebackAll writes back every dirty page and returns the first error.
func (c *Cache) writebackAll(sync bool) error {
	var first error
	for _, m := range c.dirtyList() {
		if err := m.writeback(0, maxPageIdx+1, sync, 0); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// BalanceDirty is called by writers after they dirtied pages, with no
// lock held (Linux's balance_dirty_pages): above the background threshold
// it wakes the flusher; above the dirty limit the writer itself writes back
// the oldest dirty data until it is a cluster below the limit, so one
// writer cannot fill the cache with dirty pages, and each throttled writer
// pays for about as much as it dirtied. Callers must not hold an inode
// lock: writing back can take as long as the device needs, and removers
// and, in rwsem mode, readers wait for that lock.
func (c *Cache) BalanceDirty() {
	nr := c.nrDirty.Load()
	if nr > c.bgDirty {
		c.kickFlusher()
	}
	if nr <= c.dirtyLimit {
		return
	}
	c.stats.throttled.Add(1)
	target := c.dirtyLimit - min(int64(maxClusterPages/8), c.dirtyLimit/4)
	c.writebackOldest(nr - target)
}

func (c *Cache) kickFlusher() {
	select {
	case c.flushKick <- struct{}{}:
	default:
	}
}

// flusher is the background writeback thread: it writes back when dirty
// pages pass the background threshold and when dirty data gets old.
func (c *Cache) flusher() {
	defer c.wg.Done()
	tick := time.NewTicker(max(c.opts.DirtyExpire/5, time.Millisecond)) // NewTicker panics on 0
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.flushKick:
		case <-tick.C:
		}
		if nr := c.nrDirty.Load(); nr > c.bgDirty {
			c.writebackOldest(nr - c.bgDirty/2)
		}
		old := time.Now().Add(-c.opts.DirtyExpire).UnixNano()
		for _, m := range c.dirtyList() {
			if m.dirtiedAt.Load() <= old {
				m.writeback(0, maxPageIdx+1, false, 0)
			}
		}
	}
}
