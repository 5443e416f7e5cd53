package blockdev

import (
	"sync"
	"testing"
	"time"
)

// TestSleep: every sleeper wakes, none before its deadline, and the poller
// goroutine goes away when nobody waits. (How late they wake is measured
// by holefs bench, not asserted here.)
func TestSleep(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(d time.Duration) {
			defer wg.Done()
			start := time.Now()
			Sleep(d)
			if got := time.Since(start); got < d {
				t.Errorf("Sleep(%v) returned after %v", d, got)
			}
		}(time.Duration(i%7) * 40 * time.Microsecond)
	}
	wg.Wait()
	Sleep(4 * time.Millisecond) // the time.Sleep path
	sleeper.mu.Lock()
	defer sleeper.mu.Unlock()
	if sleeper.polling || len(sleeper.waiters) != 0 {
		t.Fatalf("after all sleepers woke: polling %v, %d waiters", sleeper.polling, len(sleeper.waiters))
	}
}
