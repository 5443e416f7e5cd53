package bench

import (
	"context"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: exact below 64,
// then 32 buckets per power of two (about 3% resolution). Not safe for
// concurrent use: each goroutine records into its own and they are merged.
type hist struct {
	counts [64 + 58*32]uint64
	n      uint64
	sum    uint64
	max    uint64
}

func histBucket(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	return 64 + (e-1)*32 + int(v>>e) - 32
}

// histValue is the middle of bucket b.
func histValue(b int) float64 {
	if b < 64 {
		return float64(b)
	}
	e := (b-64)/32 + 1
	m := uint64((b-64)%32 + 32)
	lo := m << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histBucket(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q <= 1) in nanoseconds.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histValue(b), float64(h.max))
		}
	}
	return float64(h.max)
}

func (h *hist) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// run is what workers of a timed configuration watch: stopped says to
// return, measuring whether the operation about to start counts (it is
// false during the warm-up).
type run struct{ stop, on atomic.Bool }

func (r *run) stopped() bool   { return r.stop.Load() }
func (r *run) measuring() bool { return r.on.Load() }

// timing is how a timed configuration went.
type timing struct {
	elapsed time.Duration // from the end of the warm-up until the last worker returned
	// otherCPU is the CPU time other processes used while it was
	// measured, in cores (0 where /proc/stat is missing): the machine's
	// busy time minus this process's.
	otherCPU float64
}

func (t timing) seconds() float64 { return t.elapsed.Seconds() }

// timed runs fn on n goroutines: a warm-up (operations not counted), then
// d or until ctx is done. fn must return soon after r.stopped(), and count
// only operations started while r.measuring(). Progress gets the elapsed
// fraction of warm-up plus d.
func timed(ctx context.Context, warmup, d time.Duration, p Progress, n int, fn func(g int, r *run)) timing {
	// Start from a collected heap, so the previous configuration's garbage
	// (a closed filesystem and its cache) is not collected during this one.
	runtime.GC()
	var r run
	var wg sync.WaitGroup
	start := time.Now()
	total := warmup + d
	if warmup <= 0 {
		r.on.Store(true)
	}
	var t0 time.Time
	var c0 cpuSample
	if warmup <= 0 {
		t0, c0 = time.Now(), sampleCPU()
	}
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(g, &r)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var warm <-chan time.Time
	if warmup > 0 {
		wt := time.NewTimer(warmup)
		defer wt.Stop()
		warm = wt.C
	}
	var deadline <-chan time.Time
	if warmup <= 0 {
		dt := time.NewTimer(d)
		defer dt.Stop()
		deadline = dt.C
	}
loop:
	for {
		select {
		case <-tick.C:
			p.Fraction(min(float64(time.Since(start))/float64(total), 1))
		case <-warm:
			t0, c0 = time.Now(), sampleCPU()
			r.on.Store(true)
			dt := time.NewTimer(d)
			defer dt.Stop()
			deadline = dt.C
		case <-deadline:
			break loop
		case <-ctx.Done():
			break loop
		case <-done:
			break loop
		}
	}
	r.stop.Store(true)
	<-done
	p.Fraction(1)
	if t0.IsZero() { // cancelled during the warm-up
		return timing{elapsed: time.Nanosecond}
	}
	el := time.Since(t0)
	return timing{elapsed: el, otherCPU: sampleCPU().otherSince(c0, el)}
}

// cpuSample is the machine's busy CPU time and this process's CPU time.
type cpuSample struct {
	busy, own time.Duration
	ok        bool
}

func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.own = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s
		}
		ticks += n
	}
	s.busy = time.Duration(ticks) * (time.Second / 100) // USER_HZ
	s.ok = true
	return s
}

// otherSince returns the cores other processes kept busy since s0, over el.
func (s cpuSample) otherSince(s0 cpuSample, el time.Duration) float64 {
	if !s.ok || !s0.ok || el <= 0 {
		return 0
	}
	other := (s.busy - s0.busy) - (s.own - s0.own)
	return max(float64(other)/float64(el), 0)
}
