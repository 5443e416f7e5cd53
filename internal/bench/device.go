package bench

import (
	"container/heap"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs/blockdev"
)

// latencyDevice wraps a device, delays every I/O by the latency plus a
// uniform random extra in [0, jitter), and measures the delay each I/O
// really took.
//
// It exists because time.Sleep cannot do 50 µs in Go: when every
// goroutine is blocked, the runtime waits for the next timer in epoll
// with a timeout in whole milliseconds, so a 50 µs sleep takes about 1 ms
// on an idle process (blockdev.Faulty, behind Options.Latency, sleeps
// this way). Here one timer goroutine keeps the deadlines of all waiting
// I/Os in a heap and, while any is waiting, polls the clock, yielding the
// processor between polls (runtime.Gosched), so it only takes CPU time no
// other goroutine wants; waiters sleep on a channel. Config.SleepDevice
// switches to time.Sleep, to compare.
//
// The delay is applied to every read, write and flush, setting and
// latency can change at any time (SetLatency), so workloads can fill a
// device quickly and then measure with the latency on.
type latencyDevice struct {
	blockdev.Device
	latency, jitter atomic.Int64
	sleepMode       bool

	rngMu sync.Mutex
	rng   *rand.Rand

	mu      sync.Mutex
	waiters waitHeap
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	reads, readNs, writes, writeNs atomic.Int64
}

func newLatencyDevice(d blockdev.Device, seed uint64, sleepMode bool) *latencyDevice {
	l := &latencyDevice{Device: d, sleepMode: sleepMode, rng: rand.New(rand.NewPCG(seed, 0xde71ce)),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.timer()
	return l
}

// SetLatency sets the delay of later I/O.
func (l *latencyDevice) SetLatency(latency, jitter time.Duration) {
	l.latency.Store(int64(latency))
	l.jitter.Store(int64(jitter))
}

func (l *latencyDevice) delay() time.Duration {
	d := time.Duration(l.latency.Load())
	if j := l.jitter.Load(); j > 0 {
		l.rngMu.Lock()
		d += time.Duration(l.rng.Int64N(j))
		l.rngMu.Unlock()
	}
	return d
}

type waiter struct {
	deadline int64 // nanotime
	ch       chan struct{}
}

type waitHeap []waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waiter)) }
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

var chanPool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) }

// sleep waits d.
func (l *latencyDevice) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if l.sleepMode {
		time.Sleep(d)
		return
	}
	ch := chanPool.Get().(chan struct{})
	l.mu.Lock()
	heap.Push(&l.waiters, waiter{deadline: nanotime() + int64(d), ch: ch})
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	<-ch
	chanPool.Put(ch)
}

// timer wakes waiters at their deadlines.
func (l *latencyDevice) timer() {
	defer close(l.done)
	for {
		l.mu.Lock()
		now := nanotime()
		for len(l.waiters) > 0 && l.waiters[0].deadline <= now {
			w := heap.Pop(&l.waiters).(waiter)
			w.ch <- struct{}{}
		}
		var next int64 = -1
		if len(l.waiters) > 0 {
			next = l.waiters[0].deadline
		}
		l.mu.Unlock()
		switch {
		case next < 0:
			select {
			case <-l.kick:
			case <-l.stop:
				return
			}
		case next-now > int64(3*time.Millisecond):
			// Far deadlines (a huge latency setting): sleep most of the way.
			time.Sleep(time.Duration(next-now) - 2*time.Millisecond)
		default:
			runtime.Gosched()
		}
	}
}

func (l *latencyDevice) ReadBlocks(p []byte, block int64) error {
	t := time.Now()
	l.sleep(l.delay())
	err := l.Device.ReadBlocks(p, block)
	l.reads.Add(1)
	l.readNs.Add(int64(time.Since(t)))
	return err
}

func (l *latencyDevice) WriteBlocks(p []byte, block int64) error {
	t := time.Now()
	l.sleep(l.delay())
	err := l.Device.WriteBlocks(p, block)
	l.writes.Add(1)
	l.writeNs.Add(int64(time.Since(t)))
	return err
}

func (l *latencyDevice) Flush() error {
	l.sleep(l.delay())
	return l.Device.Flush()
}

func (l *latencyDevice) Close() error {
	close(l.stop)
	<-l.done
	return l.Device.Close()
}

// devStats is a snapshot of a latencyDevice's counters.
type devStats struct{ reads, readNs, writes, writeNs int64 }

func (l *latencyDevice) stats() devStats {
	return devStats{l.reads.Load(), l.readNs.Load(), l.writes.Load(), l.writeNs.Load()}
}

func (s devStats) sub(o devStats) devStats {
	return devStats{s.reads - o.reads, s.readNs - o.readNs, s.writes - o.writes, s.writeNs - o.writeNs}
}

// meanReadUs is the mean wall time of a device read, delay included, in µs.
func (s devStats) meanReadUs() float64 {
	if s.reads == 0 {
		return 0
	}
	return float64(s.readNs) / float64(s.reads) / 1e3
}
