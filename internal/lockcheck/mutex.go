package lockcheck

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Mutex is a sync.Mutex that reports its acquisitions to the checker.
// The zero value is unusable until Init sets its rank.
type Mutex struct {
	mu      sync.Mutex
	rank    Rank
	waiters atomic.Int32
}

// Init sets the lock's rank; call it once before first use.
func (m *Mutex) Init(r Rank) { m.rank = r }

func (m *Mutex) key() uintptr { return uintptr(unsafe.Pointer(m)) }

// Lock takes the mutex.
func (m *Mutex) Lock() {
	Acquire(m.rank, m.key())
	if !m.mu.TryLock() {
		m.waiters.Add(1)
		m.mu.Lock()
		m.waiters.Add(-1)
	}
}

// Unlock releases the mutex.
func (m *Mutex) Unlock() {
	Release(m.rank, m.key())
	m.mu.Unlock()
}

// Waiters reports how many goroutines are blocked in Lock. Tests use it to
// know that a goroutine reached a lock and is waiting on it.
func (m *Mutex) Waiters() int { return int(m.waiters.Load()) }

// RWMutex is a sync.RWMutex that reports its acquisitions to the checker and
// knows, in every build, whether it is held exclusive: the held-state
// assertion the invalidate-lock protocol relies on (compare XFS's
// xfs_isilocked()).
type RWMutex struct {
	mu      sync.RWMutex
	rank    Rank
	excl    atomic.Bool
	readers atomic.Int32
	waiters atomic.Int32
	key     uintptr    // orders locks of the same rank; 0 means the lock's address
	wait    *WaitStats // where blocked acquisitions are timed; nil: not timed
}

// WaitStats accumulates how often, and for how long, goroutines were
// blocked taking the locks that share it, shared and exclusive apart.
// Only acquisitions that find the lock taken are timed: an uncontended one
// costs nothing more than before.
type WaitStats struct {
	SharedWaits, SharedNanos       atomic.Int64
	ExclusiveWaits, ExclusiveNanos atomic.Int64
}

// SetWaitStats makes the lock time its blocked acquisitions into s. Call
// it once, before first use.
func (m *RWMutex) SetWaitStats(s *WaitStats) { m.wait = s }

// Init sets the lock's rank and the key that orders it among locks of the
// same rank (0 = its address). Call it once before first use.
func (m *RWMutex) Init(r Rank, key uintptr) {
	m.rank = r
	m.key = key
}

func (m *RWMutex) orderKey() uintptr {
	if m.key != 0 {
		return m.key
	}
	return uintptr(unsafe.Pointer(m))
}

// Lock takes the lock exclusive.
func (m *RWMutex) Lock() {
	Acquire(m.rank, m.orderKey())
	if !m.mu.TryLock() {
		m.waiters.Add(1)
		var start time.Time
		if m.wait != nil {
			start = time.Now()
		}
		m.mu.Lock()
		if m.wait != nil {
			m.wait.ExclusiveWaits.Add(1)
			m.wait.ExclusiveNanos.Add(int64(time.Since(start)))
		}
		m.waiters.Add(-1)
	}
	m.excl.Store(true)
}

// Unlock releases an exclusive hold.
func (m *RWMutex) Unlock() {
	// Release first: if it panics (the lock is not held by this goroutine),
	// the lock stays held and its state must say so.
	Release(m.rank, m.orderKey())
	m.excl.Store(false)
	m.mu.Unlock()
}

// RLock takes the lock shared.
func (m *RWMutex) RLock() {
	Acquire(m.rank, m.orderKey())
	if !m.mu.TryRLock() {
		m.waiters.Add(1)
		var start time.Time
		if m.wait != nil {
			start = time.Now()
		}
		m.mu.RLock()
		if m.wait != nil {
			m.wait.SharedWaits.Add(1)
			m.wait.SharedNanos.Add(int64(time.Since(start)))
		}
		m.waiters.Add(-1)
	}
	m.readers.Add(1)
}

// RUnlock releases a shared hold.
func (m *RWMutex) RUnlock() {
	// Release first, as in Unlock.
	Release(m.rank, m.orderKey())
	m.readers.Add(-1)
	m.mu.RUnlock()
}

// HeldExclusive reports whether some goroutine holds the lock exclusive.
func (m *RWMutex) HeldExclusive() bool { return m.excl.Load() }

// Held reports whether the lock is held, shared or exclusive, by anyone.
func (m *RWMutex) Held() bool { return m.excl.Load() || m.readers.Load() > 0 }

// Waiters reports how many goroutines are blocked taking the lock.
func (m *RWMutex) Waiters() int { return int(m.waiters.Load()) }
