package blockdev

import (
	"container/heap"
	"runtime"
	"sync"
	"time"
)

// Sleep waits for d with microsecond precision, for device latencies of
// tens of microseconds. time.Sleep cannot do that: when every goroutine is
// blocked, the runtime waits for its next timer in epoll with a timeout in
// whole milliseconds, so a 50 µs sleep takes about 1 ms on an idle process.
// Here one poller goroutine, alive only while someone waits, keeps the
// deadlines in a heap and polls the clock, yielding the processor between
// polls, so it only uses CPU time no other goroutine wants; waiters sleep
// on a channel. Delays of a few milliseconds or more use time.Sleep.
func Sleep(d time.Duration) {
	switch {
	case d <= 0:
		return
	case d >= 3*time.Millisecond:
		time.Sleep(d)
		return
	}
	ch := make(chan struct{}, 1)
	sleeper.mu.Lock()
	heap.Push(&sleeper.waiters, waiter{deadline: time.Now().Add(d), ch: ch})
	if !sleeper.polling {
		sleeper.polling = true
		go poll()
	}
	sleeper.mu.Unlock()
	<-ch
}

var sleeper struct {
	mu      sync.Mutex
	waiters waitHeap // +checklocks:mu
	polling bool     // a poll goroutine runs; +checklocks:mu
}

// poll wakes waiters at their deadlines and exits when none is left.
func poll() {
	for {
		sleeper.mu.Lock()
		now := time.Now()
		for len(sleeper.waiters) > 0 && !sleeper.waiters[0].deadline.After(now) {
			heap.Pop(&sleeper.waiters).(waiter).ch <- struct{}{}
		}
		if len(sleeper.waiters) == 0 {
			sleeper.polling = false
			sleeper.mu.Unlock()
			return
		}
		sleeper.mu.Unlock()
		runtime.Gosched()
	}
}

type waiter struct {
	deadline time.Time
	ch       chan struct{}
}

type waitHeap []waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waiter)) }
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}
