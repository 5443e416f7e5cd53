package pagecache

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs/internal/lockcheck"
)

// RangeLock is a mapping's invalidate lock held over ranges of page
// indexes rather than over the whole file. Linux's mapping->invalidate_lock
// is one rw_semaphore per mapping, so a punch of one range makes every
// page-cache miss anywhere in the file wait; here a fill of [a, b) takes
// [a, b) shared and a remover of [c, d) takes [c, d) exclusive, and only
// overlapping ranges of which one is exclusive exclude each other.
//
// Acquisitions are granted in arrival order among conflicting ones: a
// range waits for every earlier overlapping range it conflicts with, held
// or still waiting. That is writer preference as sync.RWMutex has it — a
// shared range arriving after a waiting exclusive one it overlaps queues
// behind it, so a stream of fills cannot starve a punch — and it cannot
// deadlock, since a range only ever waits for earlier ones.
//
// The fast path: while no exclusive range is held or waiting, a shared
// acquisition is one atomic add on a per-mapping counter, as RLock is, and
// records no range. The first exclusive acquisition sets the counter's slow
// bit, which sends later shared acquisitions to the range list under a
// leaf mutex, and waits for the fast-path holders to drain (their ranges
// are unknown, so it cannot tell whether they overlap); once the last
// exclusive range is released the bit is cleared again.
//
// In per-file mode (Options.FileInvalidateLock) every range is widened to
// the whole file, which gives exactly Linux's per-mapping lock.
//
// The lock has the invalidate rank in lockcheck; a goroutine holds at most
// one range of a mapping, and ranges of two mappings are taken in
// ascending key (inode number) order, whatever their offsets.
type RangeLock struct {
	key   uintptr
	whole bool                 // per-file mode: every range is [0, maxPageIdx+1)
	wait  *lockcheck.WaitStats // where blocked acquisitions are timed

	// fast is rangeSlow | the number of shared holders that took the fast
	// path. It is changed without mu; rangeSlow is set and cleared under mu.
	fast atomic.Int64

	waiters atomic.Int32 // goroutines blocked acquiring a range

	// mu is a leaf: nothing is acquired under it, and it is never held
	// while waiting. It is not ranked, like the wait-table bucket mutexes.
	mu sync.Mutex
	// entries are the ranges not taking the fast path, held or waiting,
	// in arrival order. +checklocks:mu
	entries []*rangeEntry
	nExcl   int  // exclusive entries; +checklocks:mu
	drained bool // no fast-path holder since rangeSlow was set; +checklocks:mu
}

// rangeSlow in RangeLock.fast sends shared acquisitions to the range list.
const rangeSlow = int64(1) << 62

// rangeEntry is one acquisition in a RangeLock's list.
type rangeEntry struct {
	first, last int64 // page indexes [first, last)
	excl        bool
	granted     bool          // +checklocks:RangeLock.mu
	ready       chan struct{} // closed when granted, if someone waits; +checklocks:RangeLock.mu
}

// RangeHold is a held range of a RangeLock; Unlock releases it.
type RangeHold struct {
	l *RangeLock
	e *rangeEntry // nil: a shared hold taken on the fast path
}

func (l *RangeLock) init(key uintptr, whole bool, wait *lockcheck.WaitStats) {
	l.key, l.whole, l.wait = key, whole, wait
}

// clip turns [first, last) into what is locked: the whole file in
// per-file mode, and never past the largest page index.
func (l *RangeLock) clip(first, last int64) (int64, int64) {
	if l.whole {
		return 0, maxPageIdx + 1
	}
	return max(first, 0), min(last, maxPageIdx+1)
}

// RLock takes the pages [first, last) shared: a fill creating pages there
// and looking their blocks up.
func (l *RangeLock) RLock(first, last int64) RangeHold {
	lockcheck.Acquire(lockcheck.RankInvalidate, l.key)
	if l.fast.Add(1)&rangeSlow == 0 {
		return RangeHold{l: l}
	}
	l.fastRelease()
	first, last = l.clip(first, last)
	return RangeHold{l: l, e: l.acquire(&rangeEntry{first: first, last: last})}
}

// Lock takes the pages [first, last) exclusive: a remover truncating their
// pages and then changing their blocks.
func (l *RangeLock) Lock(first, last int64) RangeHold {
	lockcheck.Acquire(lockcheck.RankInvalidate, l.key)
	first, last = l.clip(first, last)
	return RangeHold{l: l, e: l.acquire(&rangeEntry{first: first, last: last, excl: true})}
}

// acquire queues e and returns it once granted.
func (l *RangeLock) acquire(e *rangeEntry) *rangeEntry {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	if e.excl {
		l.nExcl++
		if l.nExcl == 1 {
			l.drained = l.fast.Add(rangeSlow) == rangeSlow
		}
	}
	l.grant()
	if e.granted {
		l.mu.Unlock()
		return e
	}
	ready := make(chan struct{}) // e.ready is mu's; the wait below is not under it
	e.ready = ready
	l.waiters.Add(1) // before mu is dropped: counted as waiting only while it can wait
	l.mu.Unlock()
	start := time.Now()
	<-ready
	if l.wait != nil {
		if e.excl {
			l.wait.ExclusiveWaits.Add(1)
			l.wait.ExclusiveNanos.Add(int64(time.Since(start)))
		} else {
			l.wait.SharedWaits.Add(1)
			l.wait.SharedNanos.Add(int64(time.Since(start)))
		}
	}
	l.waiters.Add(-1)
	return e
}

// grant grants every waiting entry that conflicts with no earlier entry,
// held or waiting; exclusive ones also wait for the fast path to drain.
//
// +checklocks:l.mu
func (l *RangeLock) grant() {
	for i, e := range l.entries {
		if e.granted || (e.excl && !l.drained) {
			continue
		}
		blocked := false
		for _, o := range l.entries[:i] {
			if (e.excl || o.excl) && o.first < e.last && e.first < o.last {
				blocked = true
				break
			}
		}
		if blocked {
			continue
		}
		e.granted = true
		if e.ready != nil {
			close(e.ready)
		}
	}
}

// fastRelease drops one fast-path shared hold; the last one out while an
// exclusive range waits lets it in.
func (l *RangeLock) fastRelease() {
	if l.fast.Add(-1) != rangeSlow {
		return
	}
	l.mu.Lock()
	// Check again under mu, where rangeSlow cannot change: this release
	// may belong to an earlier round of exclusive ranges, and a fast-path
	// holder may have come in since; with the bit set none can come now.
	if !l.drained && l.fast.Load() == rangeSlow {
		l.drained = true
		l.grant()
	}
	l.mu.Unlock()
}

// Unlock releases the range. The zero RangeHold (a fill path of a mode
// that takes no invalidate lock) releases nothing.
func (h RangeHold) Unlock() {
	l := h.l
	if l == nil {
		return
	}
	lockcheck.Release(lockcheck.RankInvalidate, l.key)
	if h.e == nil {
		l.fastRelease()
		return
	}
	l.mu.Lock()
	if i := slices.Index(l.entries, h.e); i >= 0 {
		l.entries = slices.Delete(l.entries, i, i+1)
	}
	if h.e.excl {
		l.nExcl--
		if l.nExcl == 0 {
			l.fast.Add(-rangeSlow)
			l.drained = false
		}
	}
	l.grant()
	l.mu.Unlock()
}

// HeldExclusive reports whether some goroutine holds an exclusive range
// covering the pages [first, last): what TruncateRange asserts.
func (l *RangeLock) HeldExclusive(first, last int64) bool {
	first, last = l.clip(first, last)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.excl && e.granted && e.first <= first && last <= e.last {
			return true
		}
	}
	return false
}

// Held reports whether any range is held, shared or exclusive, by anyone.
func (l *RangeLock) Held() bool {
	if l.fast.Load()&^rangeSlow != 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.granted {
			return true
		}
	}
	return false
}

// Waiters reports how many goroutines are blocked taking a range. Tests
// use it to know that a goroutine reached the lock and waits on it.
func (l *RangeLock) Waiters() int { return int(l.waiters.Load()) }

// pageSpan returns the pages a byte range [lstart, lend) touches, partial
// pages at both edges included; lend == math.MaxInt64 (or anything past
// the largest page) means to the end of the file and beyond.
func pageSpan(lstart, lend int64) (int64, int64) {
	first := lstart / PageSize
	if lend >= (maxPageIdx+1)*PageSize {
		return first, maxPageIdx + 1
	}
	return first, (lend + PageSize - 1) / PageSize
}

// ExclusiveRanges returns the page ranges [first, last) held exclusive
// now, in the order they were asked for; a range to the end of the file
// ends past the largest page index. For tests and diagnostics.
func (l *RangeLock) ExclusiveRanges() [][2]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][2]int64
	for _, e := range l.entries {
		if e.excl && e.granted {
			out = append(out, [2]int64{e.first, e.last})
		}
	}
	return out
}
