package bench

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holefs/holefs/blockdev"
)

// latencyDevice wraps a device, delays every I/O by the latency plus a
// uniform random extra in [0, jitter), and measures the delay each I/O
// really took. It sleeps with blockdev.Sleep, which keeps tens of
// microseconds (time.Sleep takes about a millisecond on an idle process);
// Config.SleepDevice switches to time.Sleep, to compare.
//
// The delay is applied to every read, write and flush; the latency can
// change at any time (SetLatency), so workloads can fill a device quickly
// and then measure with the latency on.
type latencyDevice struct {
	blockdev.Device
	*latency
}

// latency is the delay and the I/O counters of one or more latencyDevices:
// the devices of every file of a passthrough filesystem share one.
type latency struct {
	latency, jitter atomic.Int64
	sleepMode       bool

	rngMu sync.Mutex
	rng   *rand.Rand

	reads, readNs, writes, writeNs atomic.Int64
}

func newLatencyDevice(d blockdev.Device, seed uint64, sleepMode bool) *latencyDevice {
	return newLatency(seed, sleepMode).wrap(d)
}

func newLatency(seed uint64, sleepMode bool) *latency {
	return &latency{sleepMode: sleepMode, rng: rand.New(rand.NewPCG(seed, 0xde71ce))}
}

// wrap returns d delayed and counted by l.
func (l *latency) wrap(d blockdev.Device) *latencyDevice {
	return &latencyDevice{Device: d, latency: l}
}

// SetLatency sets the delay of later I/O.
func (l *latency) SetLatency(latency, jitter time.Duration) {
	l.latency.Store(int64(latency))
	l.jitter.Store(int64(jitter))
}

func (l *latency) delay() time.Duration {
	d := time.Duration(l.latency.Load())
	if j := l.jitter.Load(); j > 0 {
		l.rngMu.Lock()
		d += time.Duration(l.rng.Int64N(j))
		l.rngMu.Unlock()
	}
	return d
}

// sleep waits d.
func (l *latency) sleep(d time.Duration) {
	if l.sleepMode {
		time.Sleep(d)
		return
	}
	blockdev.Sleep(d)
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

// devStats is a snapshot of a latencyDevice's counters.
type devStats struct{ reads, readNs, writes, writeNs int64 }

func (l *latency) stats() devStats {
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
