package pagecache

import (
	"sync"
	"testing"
)

// waitSleeper waits until someone sleeps on p (the Waiters bit is set by a
// sleeper, under its bucket lock, before it checks the bits it waits on).
func waitSleeper(t *testing.T, p *Page, what string) {
	t.Helper()
	eventually(t, what, func() bool { return p.has(pgWaiters) })
}

func TestPageLockContention(t *testing.T) {
	p := newPage(0)
	p.lock()
	if p.tryLock() {
		t.Fatal("tryLock succeeded on a locked page")
	}
	got := make(chan struct{})
	go func() {
		p.lock()
		close(got)
		p.unlock()
	}()
	waitSleeper(t, p, "a second locker to sleep on the page")
	select {
	case <-got:
		t.Fatal("second locker got the page lock while it was held")
	default:
	}
	p.unlock()
	within(t, "the woken locker", func() { <-got })
	eventually(t, "the page to be unlocked", func() bool { return !p.has(pgLocked) })
	if !p.tryLock() {
		t.Fatal("tryLock failed on a free page")
	}
	p.unlock()
}

// TestPageLockExclusion has many goroutines increment a counter under the
// page lock; -race and the final count catch a lock that admits two.
func TestPageLockExclusion(t *testing.T) {
	p := newPage(7)
	const workers, iters = 8, 300
	var wg sync.WaitGroup
	counter, inside := 0, 0
	bad := false
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				p.lock()
				inside++
				if inside != 1 {
					bad = true
				}
				counter++
				inside--
				p.unlock()
			}
		}()
	}
	within(t, "the lockers", wg.Wait)
	if bad || counter != workers*iters {
		t.Fatalf("counter = %d (want %d), two holders at once: %v", counter, workers*iters, bad)
	}
}

// TestPageWaitSharedBucket puts sleepers on two pages that hash to the same
// wait bucket: waking one page must not lose the other's sleeper, and must
// not let it through while its page is still locked.
func TestPageWaitSharedBucket(t *testing.T) {
	a := newPage(0)
	var b *Page
	var keep []*Page // keep candidates alive so addresses are not reused
	for i := 1; b == nil; i++ {
		q := newPage(int64(i))
		keep = append(keep, q)
		if q.bucket() == a.bucket() {
			b = q
		}
		if i > 1<<16 {
			t.Skip("no two pages share a wait bucket")
		}
	}
	_ = keep
	// Take both locks in address order, as the checker requires.
	first, second := a, b
	if second.lockKey() < first.lockKey() {
		first, second = second, first
	}
	first.lock()
	second.lock()
	gotA, gotB := make(chan struct{}), make(chan struct{})
	go func() { a.lock(); close(gotA); a.unlock() }()
	go func() { b.lock(); close(gotB); b.unlock() }()
	waitSleeper(t, a, "a sleeper on page a")
	waitSleeper(t, b, "a sleeper on page b")
	a.unlock()
	within(t, "page a's sleeper", func() { <-gotA })
	select {
	case <-gotB:
		t.Fatal("page b's sleeper got its lock while b was held")
	default:
	}
	// The broadcast for a woke b's sleeper too; it must go back to sleep
	// and say so again, or b's unlock would not wake it.
	waitSleeper(t, b, "page b's sleeper to sleep again")
	b.unlock()
	within(t, "page b's sleeper", func() { <-gotB })
}

func TestPageWaitWriteback(t *testing.T) {
	p := newPage(3)
	// No writeback: returns at once.
	within(t, "waitWriteback on an idle page", p.waitWriteback)

	p.set(pgWriteback)
	done := make(chan struct{})
	go func() {
		p.waitWriteback()
		close(done)
	}()
	waitSleeper(t, p, "a writeback waiter")
	select {
	case <-done:
		t.Fatal("waitWriteback returned while the page was under writeback")
	default:
	}
	p.endWriteback()
	within(t, "waitWriteback after endWriteback", func() { <-done })
	if p.has(pgWriteback) {
		t.Fatalf("flags after endWriteback = %#x", p.flags.Load())
	}
}

// TestPageWaitUnlockedDoesNotTakeLock checks waitUnlocked returns when the
// lock is released and leaves the page unlocked.
func TestPageWaitUnlockedDoesNotTakeLock(t *testing.T) {
	p := newPage(0)
	p.lock()
	done := make(chan struct{})
	go func() {
		p.waitUnlocked()
		close(done)
	}()
	waitSleeper(t, p, "a waitUnlocked sleeper")
	p.unlock()
	within(t, "waitUnlocked", func() { <-done })
	if p.has(pgLocked) {
		t.Fatal("waitUnlocked left the page locked")
	}
}

// TestPageContentLock copies whole pages in and out concurrently: every
// copy out must see one copy in, never a mix (and -race must see no race).
func TestPageContentLock(t *testing.T) {
	p := newPage(0)
	var wg sync.WaitGroup
	torn := make(chan byte, 1)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf [PageSize]byte
			for i := 0; i < 300; i++ {
				p.copyOut(buf[:], 0)
				for _, c := range buf {
					if c != buf[0] {
						select {
						case torn <- c:
						default:
						}
						return
					}
				}
			}
		}()
	}
	var src [PageSize]byte
	for i := 0; i < 300; i++ {
		for k := range src {
			src[k] = byte(i)
		}
		p.copyIn(src[:], 0)
	}
	p.zero(0, PageSize)
	wg.Wait()
	select {
	case <-torn:
		t.Fatal("a copy out saw a torn page")
	default:
	}
	var buf [PageSize]byte
	if n := p.copyOut(buf[:], 100); n != PageSize-100 {
		t.Fatalf("copyOut from 100 = %d bytes, want %d", n, PageSize-100)
	}
	if buf != [PageSize]byte{} {
		t.Fatal("page not zero after zero(0, PageSize)")
	}
}
