package blockdev

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FaultOptions configures a Faulty device.
type FaultOptions struct {
	// Latency is added to every read, write and flush.
	Latency time.Duration
	// Jitter, if positive, adds a uniformly random extra delay in
	// [0, Jitter) to every read, write and flush.
	Jitter time.Duration
	// Seed seeds the random source of the jitter, so a run can be
	// repeated.
	Seed int64
}

// Faulty wraps a Device, delays its I/O and injects errors into it, for
// tests. Faults are checked before the wrapped device is called, so a failed
// read or write never touches (let alone modifies) the device. It is safe
// for concurrent use, and faults and latency may be changed while I/O is in
// progress.
type Faulty struct {
	d Device

	latency atomic.Int64 // time.Duration
	jitter  atomic.Int64 // time.Duration
	closed  atomic.Bool

	ops    atomic.Int64
	reads  atomic.Int64
	writes atomic.Int64

	rngMu sync.Mutex
	rng   *rand.Rand // guarded by rngMu

	mu        sync.Mutex // guards the faults below
	readFail  map[int64]error
	writeFail map[int64]error
	flushErr  error
	afterErr  error  // non-nil: FailAfter armed
	afterLeft int64  // successful ops still allowed while FailAfter is armed
	afterGen  uint64 // counts FailAfter and Clear calls
}

// allowance records that an operation used up one of FailAfter's successes,
// so that it can be given back if the operation fails after all.
type allowance struct {
	taken bool
	gen   uint64 // f.afterGen when taken
}

// NewFaulty returns a Faulty device wrapping d, with no faults injected.
// Closing it closes d.
func NewFaulty(d Device, opts FaultOptions) *Faulty {
	f := &Faulty{
		d:         d,
		rng:       rand.New(rand.NewPCG(uint64(opts.Seed), 0x686f6c656673)),
		readFail:  make(map[int64]error),
		writeFail: make(map[int64]error),
	}
	f.SetLatency(opts.Latency, opts.Jitter)
	return f
}

// SetLatency changes the delay of every later read, write and flush to
// latency plus a uniformly random extra in [0, jitter). Negative values
// count as 0. It may be called while I/O is in progress.
func (f *Faulty) SetLatency(latency, jitter time.Duration) {
	f.latency.Store(int64(max(latency, 0)))
	f.jitter.Store(int64(max(jitter, 0)))
}

// FailRead makes every later read touching block fail with err (wrapped),
// until Clear or FailRead(block, nil).
func (f *Faulty) FailRead(block int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.readFail, block)
	} else {
		f.readFail[block] = err
	}
}

// FailWrite makes every later write touching block fail with err (wrapped),
// until Clear or FailWrite(block, nil). A failed write changes no block,
// including the other blocks it covers.
func (f *Faulty) FailWrite(block int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.writeFail, block)
	} else {
		f.writeFail[block] = err
	}
}

// FailFlush makes every later Flush fail with err (wrapped), until Clear or
// FailFlush(nil). The wrapped device is not flushed.
func (f *Faulty) FailFlush(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushErr = err
}

// FailAfter lets the next n operations (reads, writes and flushes together)
// succeed and makes every one after them fail with err (wrapped), until
// Clear or FailAfter(n, nil). n <= 0 fails the very next operation.
//
// An operation counts as one of the n only if it succeeds; one that fails
// for another reason (a bad argument, another injected fault, an error of
// the wrapped device) does not use up the allowance. Concurrent operations
// never get more than n successes between them, though one may fail while
// another that later fails on its own still holds the last allowance.
func (f *Faulty) FailAfter(n int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterErr = err
	f.afterLeft = max(n, 0)
	f.afterGen++
}

// Clear removes every injected fault. Latency is unchanged.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.readFail)
	clear(f.writeFail)
	f.flushErr = nil
	f.afterErr = nil
	f.afterLeft = 0
	f.afterGen++
}

// Ops returns the number of reads, writes and flushes attempted so far,
// including those that failed.
func (f *Faulty) Ops() int64 { return f.ops.Load() }

// Reads returns the number of blocks read successfully so far.
func (f *Faulty) Reads() int64 { return f.reads.Load() }

// Writes returns the number of blocks written successfully so far.
func (f *Faulty) Writes() int64 { return f.writes.Load() }

// ReadBlocks reads len(p)/BlockSize blocks starting at block into p, after
// the configured delay, unless a fault is injected.
func (f *Faulty) ReadBlocks(p []byte, block int64) error {
	n, a, err := f.begin("read", p, block, f.readFail)
	if err != nil {
		return err
	}
	err = f.d.ReadBlocks(p, block)
	f.end(a, err)
	if err == nil {
		f.reads.Add(n)
	}
	return err
}

// WriteBlocks writes p to len(p)/BlockSize blocks starting at block, after
// the configured delay, unless a fault is injected.
func (f *Faulty) WriteBlocks(p []byte, block int64) error {
	n, a, err := f.begin("write", p, block, f.writeFail)
	if err != nil {
		return err
	}
	err = f.d.WriteBlocks(p, block)
	f.end(a, err)
	if err == nil {
		f.writes.Add(n)
	}
	return err
}

// Flush flushes the wrapped device, after the configured delay, unless a
// fault is injected.
func (f *Faulty) Flush() error {
	f.ops.Add(1)
	if f.closed.Load() {
		return errClosed("flush")
	}
	f.sleep()
	f.mu.Lock()
	var a allowance
	err := f.flushErr
	if err == nil {
		a, err = f.takeAllowance()
	}
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("blockdev: flush: %w", err)
	}
	err = f.d.Flush()
	f.end(a, err)
	return err
}

// NumBlocks returns the wrapped device's size in blocks.
func (f *Faulty) NumBlocks() int64 { return f.d.NumBlocks() }

// Close closes the wrapped device. Further I/O returns an error wrapping
// syscall.EBADF, as does a second Close.
func (f *Faulty) Close() error {
	if f.closed.Swap(true) {
		return errClosedTwice()
	}
	return f.d.Close()
}

// begin counts, validates, delays and fault-checks a read or write, and
// returns the number of blocks it covers. On success the caller must call
// end with the allowance and the wrapped device's result.
func (f *Faulty) begin(op string, p []byte, block int64, fail map[int64]error) (int64, allowance, error) {
	f.ops.Add(1)
	if f.closed.Load() {
		return 0, allowance{}, errClosed(op)
	}
	n, err := checkIO(op, p, block, f.d.NumBlocks())
	if err != nil {
		return 0, allowance{}, err
	}
	f.sleep()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(fail) > 0 {
		for b := block; b < block+n; b++ {
			if err := fail[b]; err != nil {
				return 0, allowance{}, fmt.Errorf("blockdev: %s block %d: %w", op, b, err)
			}
		}
	}
	a, err := f.takeAllowance()
	if err != nil {
		return 0, allowance{}, fmt.Errorf("blockdev: %s of %d blocks at block %d: %w", op, n, block, err)
	}
	return n, a, nil
}

// takeAllowance uses up one of FailAfter's successes, or returns its error
// when none is left. It takes nothing and returns nil when FailAfter is not
// armed. f.mu must be held.
func (f *Faulty) takeAllowance() (allowance, error) {
	if f.afterErr == nil {
		return allowance{}, nil
	}
	if f.afterLeft == 0 {
		return allowance{}, f.afterErr
	}
	f.afterLeft--
	return allowance{taken: true, gen: f.afterGen}, nil
}

// end gives back the allowance a if the wrapped device failed, unless
// FailAfter or Clear was called since it was taken.
func (f *Faulty) end(a allowance, err error) {
	if err == nil || !a.taken {
		return
	}
	f.mu.Lock()
	if f.afterGen == a.gen {
		f.afterLeft++
	}
	f.mu.Unlock()
}

// sleep waits the configured latency plus jitter.
func (f *Faulty) sleep() {
	d := time.Duration(f.latency.Load())
	if j := f.jitter.Load(); j > 0 {
		f.rngMu.Lock()
		d += time.Duration(f.rng.Int64N(j))
		f.rngMu.Unlock()
	}
	Sleep(d)
}
