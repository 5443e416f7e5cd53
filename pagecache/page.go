package pagecache

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

// PageSize is the size of a page-cache page.
const PageSize = blockmap.PageSize

// Page flag bits, kept in Page.flags and changed atomically.
const (
	pgLocked     uint32 = 1 << iota // page lock held (I/O or state change in progress)
	pgWaiters                       // someone sleeps on the page's wait bucket
	pgUptodate                      // data is valid
	pgDirty                         // data newer than storage
	pgWriteback                     // being written to storage
	pgError                         // last I/O on the page failed
	pgReferenced                    // accessed since the eviction clock last passed
	pgReadahead                     // async readahead marker
)

// Page is one 4 KiB page of a file in the cache.
//
// A Page is found through its Mapping's index and kept alive by references:
// the index holds one, each mapped-view entry one, each user of the page one.
// A reference does not stop truncation; it stops the page's memory from
// being reused. After taking the page lock a user must check that the page
// still belongs to the mapping (Mapping() != nil) before trusting its
// index or state: a truncated page is dead.
type Page struct {
	mapping atomic.Pointer[Mapping] // nil once the page is truncated or evicted; stored under the page lock and the index lock
	index   int64                   // page offset in the file; immutable
	flags   atomic.Uint32           // pg* bits
	state   atomic.Int64            // references and the content lock in one word (pageref.go)
	block   int64                   // device block this page was read from or written to, -1 if unknown; +checklocks:page lock, or the Writeback flag (writeback sets it after its I/O)
	data    *[PageSize]byte         // contents, a frame of the arena (frames.go) until the last reference goes; +checklocks:content lock for copies
}

// Index returns the page's offset in its file, in pages.
func (p *Page) Index() int64 { return p.index }

// Mapping returns the mapping the page belongs to, or nil if it was
// truncated or evicted.
func (p *Page) Mapping() *Mapping { return p.mapping.Load() }

func (p *Page) has(bit uint32) bool { return p.flags.Load()&bit != 0 }
func (p *Page) set(bit uint32)      { p.flags.Or(bit) }
func (p *Page) clear(bit uint32)    { p.flags.And(^bit) }

// testAndSet sets bit and reports whether it was already set.
func (p *Page) testAndSet(bit uint32) bool { return p.flags.Or(bit)&bit != 0 }

// testAndClear clears bit and reports whether it was set.
func (p *Page) testAndClear(bit uint32) bool { return p.flags.And(^bit)&bit != 0 }

// Uptodate reports whether the page holds valid data.
func (p *Page) Uptodate() bool { return p.has(pgUptodate) }

// Dirty reports whether the page holds data not yet written back.
func (p *Page) Dirty() bool { return p.has(pgDirty) }

// Page lock and writeback waits sleep on a hashed table of wait buckets,
// like Linux's folio_wait_table: a page costs one flag bit, not a channel.
type waitBucket struct {
	mu   sync.Mutex
	cond sync.Cond
	_    [40]byte // keep buckets on separate cache lines
}

var waitTable [256]waitBucket

func init() {
	for i := range waitTable {
		waitTable[i].cond.L = &waitTable[i].mu
	}
}

func (p *Page) bucket() *waitBucket {
	h := uintptr(unsafe.Pointer(p)) >> 6
	return &waitTable[(h^h>>8)%uintptr(len(waitTable))]
}

// waitWhile sleeps until none of bits is set.
func (p *Page) waitWhile(bits uint32) {
	b := p.bucket()
	b.mu.Lock()
	for {
		p.set(pgWaiters)
		if !p.has(bits) {
			break
		}
		b.cond.Wait()
	}
	b.mu.Unlock()
}

func (p *Page) wake() {
	if p.testAndClear(pgWaiters) {
		b := p.bucket()
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	}
}

func (p *Page) lockKey() uintptr { return uintptr(unsafe.Pointer(p)) }

// lock takes the page lock, sleeping while another holder has it.
func (p *Page) lock() {
	lockcheck.Acquire(lockcheck.RankPage, p.lockKey())
	for p.testAndSet(pgLocked) {
		p.waitWhile(pgLocked)
	}
}

// tryLock takes the page lock if it is free.
func (p *Page) tryLock() bool {
	if p.testAndSet(pgLocked) {
		return false
	}
	lockcheck.TryAcquired(lockcheck.RankPage, p.lockKey())
	return true
}

// unlock releases the page lock and wakes its sleepers.
func (p *Page) unlock() {
	lockcheck.Release(lockcheck.RankPage, p.lockKey())
	p.clear(pgLocked)
	p.wake()
}

// waitUnlocked sleeps until the page lock is free, without taking it.
func (p *Page) waitUnlocked() { p.waitWhile(pgLocked) }

// endWriteback clears Writeback and wakes those waiting for it.
func (p *Page) endWriteback() {
	p.clear(pgWriteback)
	p.wake()
}

// waitWriteback sleeps until writeback of the page completes.
func (p *Page) waitWriteback() {
	if p.has(pgWriteback) {
		p.waitWhile(pgWriteback)
	}
}

// copyOut copies the page's bytes from off into dst.
func (p *Page) copyOut(dst []byte, off int) int {
	p.rlockContent()
	n := copy(dst, p.data[off:])
	p.runlockContent()
	return n
}

// copyOutLocked is copyOut for a caller that holds the content lock
// shared already (tryGetRead).
func (p *Page) copyOutLocked(dst []byte, off int) int { return copy(dst, p.data[off:]) }

// copyIn copies src into the page at off. The caller holds the page lock.
func (p *Page) copyIn(src []byte, off int) int {
	p.wlockContent()
	n := copy(p.data[off:], src)
	p.wunlockContent()
	return n
}

// zero clears the page's bytes in [from, to). The caller holds the page lock.
func (p *Page) zero(from, to int) {
	p.wlockContent()
	clear(p.data[from:to])
	p.wunlockContent()
}

func newPage(index int64) *Page {
	p := &Page{index: index, block: -1, data: frames.alloc()}
	p.state.Store(1) // the index's reference
	return p
}
