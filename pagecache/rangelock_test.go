package pagecache

import (
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

// rangeHolder holds one range of a RangeLock from its own goroutine (the
// checker wants a lock released by the goroutine that took it) until
// release is closed.
type rangeHolder struct {
	got, release, done chan struct{}
}

func holdRange(l *RangeLock, excl bool, first, last int64) *rangeHolder {
	h := &rangeHolder{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	go func() {
		defer close(h.done)
		var r RangeHold
		if excl {
			r = l.Lock(first, last)
		} else {
			r = l.RLock(first, last)
		}
		close(h.got)
		<-h.release
		r.Unlock()
	}()
	return h
}

func (h *rangeHolder) granted() bool {
	select {
	case <-h.got:
		return true
	default:
		return false
	}
}

func (h *rangeHolder) unlock(t *testing.T) {
	t.Helper()
	close(h.release)
	within(t, "a range's release", func() { <-h.done })
}

type lockSpan struct {
	excl        bool
	first, last int64
}

func (s lockSpan) String() string {
	return fmt.Sprintf("%s[%d,%d)", map[bool]string{true: "excl", false: "shared"}[s.excl], s.first, s.last)
}

// TestRangeLockConflicts holds range a, then asks for range b: b is granted
// at once exactly when the two do not conflict, and otherwise once a is
// released. slow runs both with an exclusive range held far away, so that
// shared ranges take the range list instead of the fast path; whole is the
// per-file mode.
func TestRangeLockConflicts(t *testing.T) {
	sh := func(f, l int64) lockSpan { return lockSpan{false, f, l} }
	ex := func(f, l int64) lockSpan { return lockSpan{true, f, l} }
	tests := []struct {
		a, b        lockSpan
		slow, whole bool
		granted     bool
	}{
		{a: sh(0, 8), b: sh(4, 12), granted: true},
		{a: sh(0, 8), b: sh(4, 12), slow: true, granted: true},
		{a: ex(0, 8), b: sh(8, 12), granted: true}, // adjacent: [0,8) and [8,12) share no page
		{a: ex(0, 8), b: sh(7, 12), granted: false},
		{a: ex(0, 8), b: ex(20, 30), granted: true},
		{a: ex(0, 8), b: ex(5, 6), granted: false},
		{a: sh(0, 8), b: ex(5, 6), slow: true, granted: false},
		{a: sh(0, 8), b: ex(20, 30), slow: true, granted: true},
		// A fast-path shared hold records no range: an exclusive range
		// waits for every fast-path holder of its arrival to leave.
		{a: sh(0, 8), b: ex(20, 30), granted: false},
		// Per-file mode: every range is the whole file, as Linux's lock.
		{a: ex(0, 8), b: sh(20, 30), whole: true, granted: false},
		{a: sh(0, 8), b: sh(20, 30), whole: true, granted: true},
		{a: ex(0, 8), b: ex(20, 30), whole: true, granted: false},
		// To the end of the file: a truncate or collapse at page 10.
		{a: ex(10, maxPageIdx+1), b: sh(9, 10), granted: true},
		{a: ex(10, maxPageIdx+1), b: sh(1<<40, 1<<40+1), granted: false},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%v/%v/slow=%v/whole=%v", tc.a, tc.b, tc.slow, tc.whole)
		t.Run(name, func(t *testing.T) {
			var l RangeLock
			l.init(1, tc.whole, nil)
			var far *rangeHolder
			if tc.slow {
				far = holdRange(&l, true, 1000, 1001)
				within(t, "the far exclusive range", func() { <-far.got })
			}
			a := holdRange(&l, tc.a.excl, tc.a.first, tc.a.last)
			within(t, "range a", func() { <-a.got })
			b := holdRange(&l, tc.b.excl, tc.b.first, tc.b.last)
			if tc.granted {
				within(t, "range b next to a held range", func() { <-b.got })
				b.unlock(t)
				a.unlock(t)
			} else {
				eventually(t, "range b to wait", func() bool { return l.Waiters() == 1 })
				if b.granted() {
					t.Fatalf("%v granted while %v is held", tc.b, tc.a)
				}
				a.unlock(t)
				within(t, "range b once a is released", func() { <-b.got })
				b.unlock(t)
			}
			if far != nil {
				far.unlock(t)
			}
			if l.Held() {
				t.Fatal("lock still held after every range was released")
			}
		})
	}
}

// TestRangeLockWriterPreference: an exclusive range waiting for a shared
// holder keeps later overlapping shared ranges out, as sync.RWMutex keeps
// readers out behind a waiting writer, so a stream of fills cannot starve a
// punch; a shared range elsewhere still goes through.
func TestRangeLockWriterPreference(t *testing.T) {
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow=%v", slow), func(t *testing.T) {
			var l RangeLock
			l.init(1, false, nil)
			if slow {
				far := holdRange(&l, true, 1000, 1001)
				within(t, "the far exclusive range", func() { <-far.got })
				defer far.unlock(t)
			}
			s1 := holdRange(&l, false, 0, 10)
			within(t, "the first fill", func() { <-s1.got })
			punch := holdRange(&l, true, 4, 6)
			eventually(t, "the punch to wait", func() bool { return l.Waiters() == 1 })
			s2 := holdRange(&l, false, 5, 7) // overlaps the punch, arrives after it
			eventually(t, "the second fill to queue behind the punch", func() bool { return l.Waiters() == 2 })
			s3 := holdRange(&l, false, 20, 30) // elsewhere
			within(t, "a fill elsewhere", func() { <-s3.got })
			s3.unlock(t)
			if punch.granted() || s2.granted() {
				t.Fatal("granted past a held overlapping range")
			}
			s1.unlock(t)
			within(t, "the punch", func() { <-punch.got })
			if s2.granted() {
				t.Fatal("a fill queued behind the punch was granted with the punch")
			}
			punch.unlock(t)
			within(t, "the second fill", func() { <-s2.got })
			s2.unlock(t)
		})
	}
}

// TestRangeLockOneRangePerMapping: a goroutine holds at most one range of a
// mapping (two would be unordered against another goroutine's two); the
// checker refuses the second one, and ranges of two mappings are taken in
// ascending key order.
func TestRangeLockOneRangePerMapping(t *testing.T) {
	var a, b RangeLock
	a.init(1, false, nil)
	b.init(2, false, nil)
	refused := func(what string, take func() RangeHold) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "lock order violation") {
				t.Fatalf("%s: got %v, want a lock order violation", what, r)
			}
		}()
		take().Unlock()
	}
	h := a.RLock(0, 1)
	refused("a second range of the same mapping", func() RangeHold { return a.RLock(10, 11) })
	g := b.Lock(0, 1) // ascending key: allowed
	g.Unlock()
	h.Unlock()
	h = b.RLock(0, 1)
	refused("a lower-keyed mapping's range", func() RangeHold { return a.Lock(5, 6) })
	h.Unlock()
}

// TestRangeLockStress takes random shared and exclusive ranges from many
// goroutines and checks, page by page, that no exclusive range is ever
// held with an overlapping one; run it under -race. The page counters are
// the checker: the test without the lock (none) shows that they catch an
// overlap.
func TestRangeLockStress(t *testing.T) {
	const pages, workers = 64, 8
	const ops = 1000
	for _, mode := range []string{"range", "whole", "none"} {
		t.Run(mode, func(t *testing.T) {
			var l RangeLock
			l.init(1, mode == "whole", nil)
			var state [pages]atomic.Int32 // >0: shared holders; -1: exclusive
			var violations atomic.Int64
			enter := func(excl bool, first, last int64) {
				for p := first; p < last; p++ {
					if excl {
						if !state[p].CompareAndSwap(0, -1) {
							violations.Add(1)
						}
					} else if state[p].Add(1) <= 0 {
						violations.Add(1)
					}
				}
			}
			leave := func(excl bool, first, last int64) {
				for p := first; p < last; p++ {
					if excl {
						state[p].CompareAndSwap(-1, 0)
					} else {
						state[p].Add(-1)
					}
				}
			}
			if mode == "none" {
				// Deterministic overlap: an exclusive and a shared holder of
				// one page at once.
				enter(true, 3, 5)
				enter(false, 4, 6)
				if violations.Load() == 0 {
					t.Fatal("the page checker missed an exclusive range held with an overlapping one")
				}
				return
			}
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewSource(int64(w)))
					for range ops {
						first := rng.Int63n(pages)
						last := first + 1 + rng.Int63n(min(8, pages-first))
						excl := rng.Intn(4) == 0
						var h RangeHold
						if excl {
							h = l.Lock(first, last)
						} else {
							h = l.RLock(first, last)
						}
						enter(excl, first, last)
						if rng.Intn(8) == 0 {
							runtime.Gosched()
						}
						leave(excl, first, last)
						h.Unlock()
					}
				}()
			}
			wg.Wait()
			if v := violations.Load(); v != 0 {
				t.Fatalf("%d pages held exclusive with an overlapping range", v)
			}
			if l.Held() || l.fast.Load() != 0 || len(l.entries) != 0 {
				t.Fatalf("after every release: held %v, fast %#x, %d entries", l.Held(), l.fast.Load(), len(l.entries))
			}
		})
	}
}

// BenchmarkFillLock compares the fill path's uncontended shared
// acquisition of a range with the RLock of the per-file RWMutex it
// replaced: the fast path must cost no more.
func BenchmarkFillLock(b *testing.B) {
	b.Run("range", func(b *testing.B) {
		var l RangeLock
		l.init(1, false, nil)
		b.RunParallel(func(pb *testing.PB) {
			for i := int64(0); pb.Next(); i++ {
				l.RLock(i&1023, i&1023+1).Unlock()
			}
		})
	})
	b.Run("rwmutex", func(b *testing.B) {
		var l lockcheck.RWMutex
		l.Init(lockcheck.RankInvalidate, 1)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.RLock()
				l.RUnlock()
			}
		})
	})
	b.Run("range-punch-elsewhere", func(b *testing.B) {
		// With an exclusive range held elsewhere every shared range takes
		// the list under its leaf mutex: the cost while a removal runs.
		var l RangeLock
		l.init(1, false, nil)
		far := holdRange(&l, true, 1<<20, 1<<20+1)
		<-far.got
		b.RunParallel(func(pb *testing.PB) {
			for i := int64(0); pb.Next(); i++ {
				l.RLock(i&1023, i&1023+1).Unlock()
			}
		})
		close(far.release)
		<-far.done
	})
}
