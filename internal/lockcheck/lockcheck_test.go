package lockcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	Enable()
	code := m.Run()
	if code == 0 {
		// Every test must release what it took, including after the
		// panics it provokes.
		mu.Lock()
		nholds := len(holds)
		mu.Unlock()
		if nholds != 0 {
			fmt.Fprintf(os.Stderr, "lockcheck: tests left %d goroutines holding locks\n", nholds)
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// panicMessage runs fn and returns the message it panicked with, failing
// the test if it did not panic.
func panicMessage(t *testing.T, fn func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("no panic")
			return
		}
		s, ok := r.(string)
		if !ok {
			t.Errorf("panic value %v (%T) is not a string", r, r)
		}
		msg = s
	}()
	fn()
	return ""
}

// lockDesc is how the checker names a lock in its messages.
func lockDesc(r Rank, key uintptr) string { return fmt.Sprintf("%v lock %#x", r, key) }

func newMutex(r Rank) *Mutex {
	m := new(Mutex)
	m.Init(r)
	return m
}

// waitFor polls until cond holds. It never gives up: a test that would
// wait forever is stopped by go test's -timeout with every goroutine's
// stack, which says more than a timing failure would.
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

func TestRankString(t *testing.T) {
	tests := []struct {
		r    Rank
		want string
	}{
		{RankNamespace, "namespace"},
		{RankInode, "inode"},
		{RankInvalidate, "invalidate"},
		{RankView, "view"},
		{RankPage, "page"},
		{RankCommit, "commit"},
		{RankExtentMap, "extentmap"},
		{RankAllocator, "allocator"},
		{RankCache, "cache"},
		{0, "rank0"},
		{RankCache + 1, "rank10"},
		{255, "rank255"},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("Rank(%d).String() = %q, want %q", uint8(tc.r), got, tc.want)
		}
	}
}

// (a) Locks of increasing rank may be taken, and Held counts them.
func TestInOrderAcquisition(t *testing.T) {
	tests := []struct {
		name  string
		ranks []Rank
	}{
		{"single", []Rank{RankPage}},
		{"all ranks", []Rank{RankNamespace, RankInode, RankInvalidate, RankView, RankPage, RankExtentMap, RankAllocator, RankCache}},
		{"skipping ranks", []Rank{RankInode, RankPage, RankCache}},
		{"outermost and leaf", []Rank{RankNamespace, RankCache}},
		{"write path", []Rank{RankInode, RankInvalidate, RankPage, RankExtentMap, RankAllocator}},
	}
	for _, tc := range tests {
		for _, reverse := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/release reverse=%t", tc.name, reverse), func(t *testing.T) {
				if n := Held(); n != 0 {
					t.Fatalf("Held() = %d at start", n)
				}
				locks := make([]*Mutex, len(tc.ranks))
				for i, r := range tc.ranks {
					locks[i] = newMutex(r)
					locks[i].Lock()
					if got := Held(); got != i+1 {
						t.Errorf("after taking %d locks: Held() = %d", i+1, got)
					}
				}
				// Release order is free: only acquisition order is checked.
				for i := range locks {
					j := i
					if reverse {
						j = len(locks) - 1 - i
					}
					locks[j].Unlock()
					if got, want := Held(), len(locks)-1-i; got != want {
						t.Errorf("after releasing %d locks: Held() = %d, want %d", i+1, got, want)
					}
				}
			})
		}
	}
}

// (b) Taking a lock of a lower rank than one held panics, naming both.
func TestOutOfOrderPanics(t *testing.T) {
	tests := []struct {
		name      string
		hold      []Rank
		take      Rank
		violating int // index in hold of the lock the message names
	}{
		{"cache then page", []Rank{RankCache}, RankPage, 0},
		{"inode then namespace", []Rank{RankInode}, RankNamespace, 0},
		{"allocator then extent map", []Rank{RankAllocator}, RankExtentMap, 0},
		{"page then invalidate", []Rank{RankPage}, RankInvalidate, 0},
		{"view into namespace,page", []Rank{RankNamespace, RankPage}, RankView, 1},
		{"invalidate into inode,page,cache", []Rank{RankInode, RankPage, RankCache}, RankInvalidate, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			held := make([]*Mutex, len(tc.hold))
			for i, r := range tc.hold {
				held[i] = newMutex(r)
				held[i].Lock()
			}
			defer func() {
				for _, m := range held {
					m.Unlock()
				}
			}()
			m := newMutex(tc.take)
			msg := panicMessage(t, m.Lock)
			v := held[tc.violating]
			for _, want := range []string{
				"lockcheck: lock order violation",
				"taking " + lockDesc(tc.take, m.key()),
				"while holding " + lockDesc(v.rank, v.key()),
				"(order: namespace > inode > invalidate > view > page > commit > extentmap > allocator > cache)",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("panic message %q does not contain %q", msg, want)
				}
			}
			// The lock was neither recorded nor taken.
			if got := Held(); got != len(held) {
				t.Errorf("Held() after the panic = %d, want %d", got, len(held))
			}
			if !m.mu.TryLock() {
				t.Error("the lock whose acquisition panicked is locked")
			} else {
				m.mu.Unlock()
			}
		})
	}
}

// Taking a lock already held is a self-deadlock; the checker reports it as
// an order violation of the lock with itself.
func TestRecursiveAcquisitionPanics(t *testing.T) {
	m := newMutex(RankPage)
	m.Lock()
	msg := panicMessage(t, m.Lock)
	m.Unlock()
	want := "taking " + lockDesc(RankPage, m.key()) + " while holding " + lockDesc(RankPage, m.key())
	if !strings.Contains(msg, want) {
		t.Errorf("panic message %q does not contain %q", msg, want)
	}

	rw := new(RWMutex)
	rw.Init(RankInode, 7)
	rw.RLock()
	defer rw.RUnlock()
	// A recursive read lock deadlocks if a writer queued in between.
	msg = panicMessage(t, rw.RLock)
	if want := "taking inode lock 0x7 while holding inode lock 0x7"; !strings.Contains(msg, want) {
		t.Errorf("panic message %q does not contain %q", msg, want)
	}
}

// (c) Locks of one rank must be taken in strictly ascending key order.
func TestSameRankKeyOrder(t *testing.T) {
	type lk struct {
		rank Rank
		key  uintptr
	}
	tests := []struct {
		name  string
		locks []lk
		panic string // "" if the sequence is allowed, else what the panic says
	}{
		{"two inodes ascending", []lk{{RankInode, 1}, {RankInode, 2}}, ""},
		{"pages by index", []lk{{RankPage, 10}, {RankPage, 11}, {RankPage, 300}}, ""},
		{"ascending then lower rank", []lk{{RankInode, 1}, {RankInode, 2}, {RankPage, 1}}, ""},
		{"higher rank keys are independent", []lk{{RankInode, 9}, {RankPage, 1}, {RankPage, 2}}, ""},
		{"descending", []lk{{RankInode, 2}, {RankInode, 1}}, "taking inode lock 0x1 while holding inode lock 0x2"},
		{"equal keys", []lk{{RankPage, 5}, {RankPage, 5}}, "taking page lock 0x5 while holding page lock 0x5"},
		{"descending after ascending", []lk{{RankPage, 1}, {RankPage, 3}, {RankPage, 2}}, "taking page lock 0x2 while holding page lock 0x3"},
		{"same rank after a higher one", []lk{{RankInode, 1}, {RankPage, 1}, {RankInode, 2}}, "taking inode lock 0x2 while holding page lock 0x1"},
	}
	for _, tc := range tests {
		for _, rw := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/rwmutex=%t", tc.name, rw), func(t *testing.T) {
				var release []func()
				defer func() {
					for i := len(release) - 1; i >= 0; i-- {
						release[i]()
					}
					if n := Held(); n != 0 {
						t.Errorf("Held() = %d after cleanup", n)
					}
				}()
				for i, l := range tc.locks {
					last := i == len(tc.locks)-1
					take, drop := func() { Acquire(l.rank, l.key) }, func() { Release(l.rank, l.key) }
					if rw {
						m := new(RWMutex)
						m.Init(l.rank, l.key)
						take, drop = m.Lock, m.Unlock
						if i%2 == 1 {
							take, drop = m.RLock, m.RUnlock
						}
					}
					if last && tc.panic != "" {
						msg := panicMessage(t, take)
						if !strings.Contains(msg, tc.panic) {
							t.Errorf("panic message %q does not contain %q", msg, tc.panic)
						}
						if got := Held(); got != len(tc.locks)-1 {
							t.Errorf("Held() after the panic = %d, want %d", got, len(tc.locks)-1)
						}
						return
					}
					take()
					release = append(release, drop)
				}
				if got := Held(); got != len(tc.locks) {
					t.Errorf("Held() = %d, want %d", got, len(tc.locks))
				}
			})
		}
	}
}

// An RWMutex with key 0 is ordered by its address.
func TestRWMutexDefaultKey(t *testing.T) {
	pair := new([2]RWMutex)
	a, b := &pair[0], &pair[1] // a's address is below b's
	a.Init(RankInode, 0)
	b.Init(RankInode, 0)
	if a.orderKey() >= b.orderKey() {
		t.Fatalf("keys %#x, %#x not ordered by address", a.orderKey(), b.orderKey())
	}
	a.Lock()
	b.Lock()
	b.Unlock()
	a.Unlock()

	b.Lock()
	msg := panicMessage(t, a.Lock)
	b.Unlock()
	want := "taking " + lockDesc(RankInode, a.orderKey()) + " while holding " + lockDesc(RankInode, b.orderKey())
	if !strings.Contains(msg, want) {
		t.Errorf("panic message %q does not contain %q", msg, want)
	}
}

// (d) Releasing a lock the goroutine does not hold panics.
func TestReleaseUnheldPanics(t *testing.T) {
	t.Run("never taken", func(t *testing.T) {
		msg := panicMessage(t, func() { Release(RankPage, 0x42) })
		if want := "lockcheck: releasing page lock 0x42 that this goroutine does not hold"; msg != want {
			t.Errorf("panic message %q, want %q", msg, want)
		}
	})
	t.Run("released twice", func(t *testing.T) {
		Acquire(RankCache, 1)
		Release(RankCache, 1)
		msg := panicMessage(t, func() { Release(RankCache, 1) })
		if !strings.Contains(msg, "releasing cache lock 0x1 that this goroutine does not hold") {
			t.Errorf("panic message %q", msg)
		}
	})
	t.Run("wrong rank or key", func(t *testing.T) {
		Acquire(RankPage, 1)
		panicMessage(t, func() { Release(RankCache, 1) })
		panicMessage(t, func() { Release(RankPage, 2) })
		// The lock actually held is still recorded and can be released.
		if n := Held(); n != 1 {
			t.Errorf("Held() = %d, want 1", n)
		}
		Release(RankPage, 1)
	})

	// Unlocking on another goroutine than the locking one: the panic
	// happens before the lock is released, so it stays held (and says so)
	// and its owner can still unlock it.
	other := func(fn func()) string {
		ch := make(chan string)
		go func() {
			defer func() { ch <- fmt.Sprint(recover()) }()
			fn()
		}()
		return <-ch
	}
	t.Run("Mutex unlocked by another goroutine", func(t *testing.T) {
		m := newMutex(RankPage)
		m.Lock()
		msg := other(m.Unlock)
		if want := "releasing " + lockDesc(RankPage, m.key()) + " that this goroutine does not hold"; !strings.Contains(msg, want) {
			t.Errorf("panic message %q does not contain %q", msg, want)
		}
		if m.mu.TryLock() {
			t.Error("the mutex was unlocked by the panicking Unlock")
			m.mu.Unlock()
		}
		if n := Held(); n != 1 {
			t.Errorf("owner's Held() = %d, want 1", n)
		}
		m.Unlock()
	})
	t.Run("RWMutex unlocked by another goroutine", func(t *testing.T) {
		m := new(RWMutex)
		m.Init(RankInode, 0)
		m.Lock()
		if msg := other(m.Unlock); !strings.Contains(msg, "does not hold") {
			t.Errorf("Unlock on another goroutine: panic %q", msg)
		}
		if !m.HeldExclusive() || !m.Held() {
			t.Error("after a panicking Unlock: lock no longer reported held exclusive")
		}
		m.Unlock()
		if m.HeldExclusive() || m.Held() {
			t.Error("after the owner's Unlock: lock still reported held")
		}
	})
	t.Run("RWMutex read-unlocked by another goroutine", func(t *testing.T) {
		m := new(RWMutex)
		m.Init(RankInode, 0)
		m.RLock()
		if msg := other(m.RUnlock); !strings.Contains(msg, "does not hold") {
			t.Errorf("RUnlock on another goroutine: panic %q", msg)
		}
		if !m.Held() {
			t.Error("after a panicking RUnlock: lock no longer reported held")
		}
		m.RUnlock()
		if m.Held() {
			t.Error("after the owner's RUnlock: lock still reported held")
		}
	})
}

// (e) An RWMutex knows how it is held and who waits for it.
func TestRWMutexState(t *testing.T) {
	m := new(RWMutex)
	m.Init(RankInvalidate, 0)
	check := func(step string, held, excl bool) {
		t.Helper()
		if m.Held() != held || m.HeldExclusive() != excl {
			t.Errorf("%s: Held, HeldExclusive = %t, %t; want %t, %t", step, m.Held(), m.HeldExclusive(), held, excl)
		}
	}
	check("new", false, false)
	m.Lock()
	check("Lock", true, true)
	m.Unlock()
	check("Unlock", false, false)
	m.RLock()
	check("RLock", true, false)

	// A second reader on another goroutine.
	var wg sync.WaitGroup
	r2held, r2release := make(chan struct{}), make(chan struct{})
	wg.Go(func() {
		m.RLock()
		close(r2held)
		<-r2release
		m.RUnlock()
	})
	<-r2held
	check("two readers", true, false)
	m.RUnlock()
	check("one reader left", true, false)
	close(r2release)
	wg.Wait()
	check("readers gone", false, false)

	// Waiters: a writer and a reader block behind an exclusive hold.
	if n := m.Waiters(); n != 0 {
		t.Fatalf("Waiters() = %d with nobody waiting", n)
	}
	m.Lock()
	wg.Go(func() {
		m.Lock()
		if !m.HeldExclusive() {
			t.Error("waiting writer got the lock, but it is not reported exclusive")
		}
		m.Unlock()
	})
	waitFor(func() bool { return m.Waiters() == 1 })
	wg.Go(func() {
		m.RLock()
		if m.HeldExclusive() {
			t.Error("waiting reader got the lock, but it is reported exclusive")
		}
		m.RUnlock()
	})
	waitFor(func() bool { return m.Waiters() == 2 })
	check("held with waiters", true, true)
	m.Unlock()
	wg.Wait()
	if n := m.Waiters(); n != 0 {
		t.Errorf("Waiters() = %d after the waiters got the lock", n)
	}
	check("all done", false, false)
}

func TestMutexWaiters(t *testing.T) {
	m := newMutex(RankPage)
	m.Lock()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			m.Lock()
			m.Unlock()
		})
	}
	waitFor(func() bool { return m.Waiters() == 3 })
	m.Unlock()
	wg.Wait()
	if n := m.Waiters(); n != 0 {
		t.Errorf("Waiters() = %d after the waiters got the lock", n)
	}
}

// (g) Mutex and RWMutex under concurrent use: run with -race. Each
// goroutine's held list is its own.
func TestConcurrentUse(t *testing.T) {
	const goroutines, rounds = 8, 200
	var (
		inode   = new(RWMutex)
		page    = newMutex(RankPage)
		cache   = newMutex(RankCache)
		counter int // guarded by page
		hits    int // guarded by cache
		shared  int // guarded by inode
	)
	inode.Init(RankInode, 0)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				if n := Held(); n != 0 {
					t.Errorf("goroutine %d: Held() = %d before locking", g, n)
					return
				}
				if (g+r)%4 == 0 {
					inode.Lock()
					if !inode.HeldExclusive() {
						t.Error("write-locked inode not held exclusive")
					}
					shared++
				} else {
					inode.RLock()
					if inode.HeldExclusive() {
						t.Error("read-locked inode held exclusive")
					}
					_ = shared
				}
				page.Lock()
				counter++
				cache.Lock()
				hits++
				if n := Held(); n != 3 {
					t.Errorf("goroutine %d: Held() = %d, want 3", g, n)
				}
				cache.Unlock()
				page.Unlock()
				if (g+r)%4 == 0 {
					inode.Unlock()
				} else {
					inode.RUnlock()
				}
				// The leaf lock alone, while other goroutines hold outer
				// ones: their holds do not constrain this goroutine.
				cache.Lock()
				hits++
				cache.Unlock()
			}
		})
	}
	wg.Wait()
	if counter != goroutines*rounds || hits != 2*goroutines*rounds || shared != goroutines*rounds/4 {
		t.Errorf("counter, hits, shared = %d, %d, %d; want %d, %d, %d",
			counter, hits, shared, goroutines*rounds, 2*goroutines*rounds, goroutines*rounds/4)
	}
	if inode.Held() || inode.Waiters() != 0 || page.Waiters() != 0 || cache.Waiters() != 0 {
		t.Error("locks held or waited for after all goroutines finished")
	}
}

// A checker panic leaves the checker usable: its global lock is not held
// while it panics, the panicking goroutine's held list is exactly what it
// was before the call (the lock that broke the order is not recorded, and
// nothing held is forgotten), and other goroutines are unaffected. The
// goroutine must still release what it holds; if it died instead, its list
// would stay in the checker for good (goroutine ids are not reused, so this
// costs memory only).
func TestPanicLeavesCheckerUsable(t *testing.T) {
	outer := newMutex(RankInvalidate)
	outer.Lock()
	inner := newMutex(RankExtentMap)
	inner.Lock()

	bad := newMutex(RankInode)
	panicMessage(t, bad.Lock)                               // order violation
	panicMessage(t, func() { Release(RankNamespace, 0x1) }) // not held
	if n := Held(); n != 2 {
		t.Errorf("Held() after the panics = %d, want 2", n)
	}

	// Another goroutine can use the checker: its lock is free.
	done := make(chan struct{})
	go func() {
		defer close(done)
		bad.Lock()
		if n := Held(); n != 1 {
			t.Errorf("other goroutine: Held() = %d, want 1", n)
		}
		bad.Unlock()
	}()
	<-done

	// The panicking goroutine still holds and can release its locks, and
	// after that may take the lock that violated the order.
	inner.Unlock()
	outer.Unlock()
	bad.Lock()
	bad.Unlock()
	if n := Held(); n != 0 {
		t.Errorf("Held() = %d at the end", n)
	}
}

func TestDisabled(t *testing.T) {
	enabled.Store(false)
	defer Enable()
	if Enabled() {
		t.Fatal("Enabled() after disabling")
	}
	// Nothing is checked or recorded.
	cache, page := newMutex(RankCache), newMutex(RankPage)
	cache.Lock()
	page.Lock() // out of order: no panic
	if n := Held(); n != 0 {
		t.Errorf("Held() = %d while disabled", n)
	}
	page.Unlock()
	cache.Unlock()
	Release(RankPage, 1) // not held: no panic
	Enable()
	if !Enabled() {
		t.Error("Enabled() false after Enable")
	}
}
