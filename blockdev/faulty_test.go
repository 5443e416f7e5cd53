package blockdev_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs/blockdev"
)

var _ blockdev.Device = (*blockdev.Faulty)(nil)

func newFaulty(t *testing.T, nblocks int64) (*blockdev.Faulty, *blockdev.Memory) {
	t.Helper()
	m := blockdev.NewMemory(nblocks)
	f := blockdev.NewFaulty(m, blockdev.FaultOptions{})
	t.Cleanup(func() { f.Close() })
	return f, m
}

func TestFaultyFailRead(t *testing.T) {
	f, _ := newFaulty(t, 16)
	if err := f.WriteBlocks(pattern(1, 16), 0); err != nil {
		t.Fatal(err)
	}
	f.FailRead(5, syscall.EIO)
	tests := []struct {
		block   int64
		n       int
		fail    bool
		failing int64 // block named in the error
	}{
		{5, 1, true, 5},
		{4, 2, true, 5},
		{3, 3, true, 5},
		{0, 16, true, 5},
		{4, 1, false, 0},
		{6, 1, false, 0},
		{6, 10, false, 0},
		{0, 5, false, 0},
	}
	for _, tc := range tests {
		p := blocks(tc.n)
		err := f.ReadBlocks(p, tc.block)
		if !tc.fail {
			if err != nil {
				t.Errorf("read of %d blocks at %d: %v", tc.n, tc.block, err)
			} else if want := pattern(1, 16)[tc.block*blockdev.BlockSize:][:len(p)]; !bytes.Equal(p, want) {
				t.Errorf("read of %d blocks at %d: wrong data", tc.n, tc.block)
			}
			continue
		}
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read of %d blocks at %d: error = %v, want EIO", tc.n, tc.block, err)
		} else if want := "blockdev: read block 5: input/output error"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	// Writes to the failing block are unaffected.
	if err := f.WriteBlocks(pattern(2, 1), 5); err != nil {
		t.Errorf("write to a read-failing block: %v", err)
	}
	// Clearing the one block.
	f.FailRead(5, nil)
	p := blocks(1)
	if err := f.ReadBlocks(p, 5); err != nil {
		t.Fatalf("read after FailRead(5, nil): %v", err)
	}
	if !bytes.Equal(p, pattern(2, 1)) {
		t.Error("write to a read-failing block was lost")
	}
}

func TestFaultyFailReadCustomError(t *testing.T) {
	f, _ := newFaulty(t, 4)
	errMedium := errors.New("medium error")
	f.FailRead(0, errMedium)
	f.FailRead(2, syscall.EIO)
	err := f.ReadBlocks(blocks(4), 0)
	if !errors.Is(err, errMedium) || !strings.Contains(err.Error(), "read block 0") {
		t.Errorf("error = %v, want the injected error for block 0", err)
	}
}

func TestFaultyFailWriteLeavesDeviceUnchanged(t *testing.T) {
	f, m := newFaulty(t, 16)
	before := pattern(1, 16)
	if err := f.WriteBlocks(before, 0); err != nil {
		t.Fatal(err)
	}
	writesBefore := f.Writes()
	f.FailWrite(7, syscall.EIO)
	tests := []struct {
		block int64
		n     int
		fail  bool
	}{
		{7, 1, true},
		{6, 3, true},  // blocks 6 and 8 must not be written either
		{0, 16, true}, // nor any block of a whole-device write
		{8, 1, false},
		{0, 7, false},
	}
	model := bytes.Clone(before)
	for i, tc := range tests {
		p := pattern(10+i, tc.n)
		err := f.WriteBlocks(p, tc.block)
		if tc.fail {
			if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "write block 7") {
				t.Errorf("write of %d blocks at %d: error = %v, want EIO at block 7", tc.n, tc.block, err)
			}
		} else {
			if err != nil {
				t.Errorf("write of %d blocks at %d: %v", tc.n, tc.block, err)
			}
			copy(model[tc.block*blockdev.BlockSize:], p)
		}
		// Check the wrapped device directly, and through the wrapper.
		got := blocks(16)
		if err := m.ReadBlocks(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("after write of %d blocks at %d (fail=%t): device content wrong", tc.n, tc.block, tc.fail)
		}
		if err := f.ReadBlocks(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("after write of %d blocks at %d: read through Faulty wrong", tc.n, tc.block)
		}
	}
	if got, want := f.Writes()-writesBefore, int64(1+7); got != want {
		t.Errorf("Writes() grew by %d, want %d (failed writes do not count)", got, want)
	}
	// Reads of the write-failing block work.
	if err := f.ReadBlocks(blocks(1), 7); err != nil {
		t.Errorf("read of a write-failing block: %v", err)
	}
}

func TestFaultyFailAfter(t *testing.T) {
	type op struct {
		name string
		do   func(f *blockdev.Faulty) error
	}
	read := op{"read", func(f *blockdev.Faulty) error { return f.ReadBlocks(blocks(2), 1) }}
	write := op{"write", func(f *blockdev.Faulty) error { return f.WriteBlocks(pattern(1, 1), 3) }}
	flush := op{"flush", func(f *blockdev.Faulty) error { return f.Flush() }}
	mixed := []op{read, write, flush, write, read, read, flush, write}

	for _, n := range []int64{0, 1, 2, 3, 5} {
		f, m := newFaulty(t, 8)
		f.FailAfter(n, syscall.ENOSPC)
		var ok int64
		for i := range 2 * len(mixed) {
			o := mixed[i%len(mixed)]
			err := o.do(f)
			if int64(i) < n {
				if err != nil {
					t.Errorf("FailAfter(%d): op %d (%s) failed early: %v", n, i, o.name, err)
				}
				ok++
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("FailAfter(%d): op %d (%s): error = %v, want ENOSPC", n, i, o.name, err)
			}
		}
		if ok != n {
			t.Errorf("FailAfter(%d): %d ops succeeded", n, ok)
		}
		if got := f.Ops(); got != int64(2*len(mixed)) {
			t.Errorf("FailAfter(%d): Ops() = %d, want %d", n, got, 2*len(mixed))
		}
		// Failed writes did not reach the device: block 3 holds data
		// only if one of the first n ops was a write.
		got := blocks(1)
		if err := m.ReadBlocks(got, 3); err != nil {
			t.Fatal(err)
		}
		if wrote := n >= 2; bytes.Equal(got, blocks(1)) == wrote {
			t.Errorf("FailAfter(%d): block 3 written = %t, want %t", n, !wrote, wrote)
		}
		f.Clear()
		for _, o := range mixed {
			if err := o.do(f); err != nil {
				t.Errorf("FailAfter(%d): %s after Clear: %v", n, o.name, err)
			}
		}
	}
}

func TestFaultyFailAfterOtherFailuresDoNotCount(t *testing.T) {
	f, _ := newFaulty(t, 8)
	f.FailRead(0, syscall.EIO)
	f.FailAfter(2, syscall.ENOSPC)
	// Neither a bad argument nor another injected fault uses up the
	// allowance.
	if err := f.ReadBlocks(blocks(1), 100); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("out-of-range read: %v", err)
	}
	if err := f.ReadBlocks(blocks(1), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of failing block: %v", err)
	}
	for i := range 2 {
		if err := f.ReadBlocks(blocks(1), 1); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if err := f.ReadBlocks(blocks(1), 1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("third read: error = %v, want ENOSPC", err)
	}
	// Re-arming resets the allowance; FailAfter(n, nil) disarms.
	f.FailAfter(1, syscall.EIO)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second flush: error = %v, want EIO", err)
	}
	f.FailAfter(0, nil)
	if err := f.Flush(); err != nil {
		t.Fatalf("flush after FailAfter(0, nil): %v", err)
	}
}

// TestFaultyFailAfterConcurrent checks that concurrent ops never get more
// than n successes between them.
func TestFaultyFailAfterConcurrent(t *testing.T) {
	const n, goroutines, each = 37, 8, 20
	f, _ := newFaulty(t, 64)
	f.FailAfter(n, syscall.EIO)
	var (
		mu sync.Mutex
		ok int
		wg sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var err error
				if i%2 == 0 {
					err = f.WriteBlocks(pattern(g, 1), int64(g))
				} else {
					err = f.ReadBlocks(blocks(1), int64(g))
				}
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, syscall.EIO) {
					t.Errorf("unexpected error %v", err)
				}
			}
		})
	}
	wg.Wait()
	if ok != n {
		t.Errorf("%d ops succeeded, want exactly %d", ok, n)
	}
}

func TestFaultyFailFlush(t *testing.T) {
	f, _ := newFaulty(t, 4)
	f.FailFlush(syscall.EIO)
	for i := range 3 {
		err := f.Flush()
		if !errors.Is(err, syscall.EIO) || !strings.HasPrefix(err.Error(), "blockdev: flush: ") {
			t.Errorf("flush %d: error = %v, want wrapped EIO", i, err)
		}
	}
	if err := f.WriteBlocks(pattern(1, 1), 0); err != nil {
		t.Errorf("write with a failing flush: %v", err)
	}
	if err := f.ReadBlocks(blocks(1), 0); err != nil {
		t.Errorf("read with a failing flush: %v", err)
	}
	f.FailFlush(nil)
	if err := f.Flush(); err != nil {
		t.Errorf("flush after FailFlush(nil): %v", err)
	}
}

func TestFaultyClear(t *testing.T) {
	f, _ := newFaulty(t, 8)
	f.FailRead(1, syscall.EIO)
	f.FailWrite(2, syscall.EIO)
	f.FailFlush(syscall.EIO)
	f.FailAfter(0, syscall.ENOSPC)
	if err := f.ReadBlocks(blocks(1), 5); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("before Clear: error = %v, want ENOSPC", err)
	}
	f.Clear()
	ops := []struct {
		name string
		do   func() error
	}{
		{"read 1", func() error { return f.ReadBlocks(blocks(1), 1) }},
		{"write 2", func() error { return f.WriteBlocks(pattern(1, 1), 2) }},
		{"flush", f.Flush},
		{"read all", func() error { return f.ReadBlocks(blocks(8), 0) }},
		{"write all", func() error { return f.WriteBlocks(pattern(2, 8), 0) }},
	}
	for _, op := range ops {
		if err := op.do(); err != nil {
			t.Errorf("%s after Clear: %v", op.name, err)
		}
	}
}

func TestFaultyCounters(t *testing.T) {
	f, _ := newFaulty(t, 16)
	f.FailRead(9, syscall.EIO)
	steps := []struct {
		name               string
		do                 func() error
		ops, reads, writes int64 // counters after the step
	}{
		{"write 4", func() error { return f.WriteBlocks(blocks(4), 0) }, 1, 0, 4},
		{"read 3", func() error { return f.ReadBlocks(blocks(3), 1) }, 2, 3, 4},
		{"flush", f.Flush, 3, 3, 4},
		{"failed read", func() error { return f.ReadBlocks(blocks(2), 8) }, 4, 3, 4},
		{"invalid write", func() error { return f.WriteBlocks(blocks(1), 16) }, 5, 3, 4},
		{"misaligned read", func() error { return f.ReadBlocks(make([]byte, 10), 0) }, 6, 3, 4},
		{"read 1", func() error { return f.ReadBlocks(blocks(1), 15) }, 7, 4, 4},
		{"write 16", func() error { return f.WriteBlocks(blocks(16), 0) }, 8, 4, 20},
	}
	for _, s := range steps {
		s.do()
		if f.Ops() != s.ops || f.Reads() != s.reads || f.Writes() != s.writes {
			t.Errorf("after %s: Ops, Reads, Writes = %d, %d, %d; want %d, %d, %d",
				s.name, f.Ops(), f.Reads(), f.Writes(), s.ops, s.reads, s.writes)
		}
	}
}

// TestFaultyLatency only checks that delayed I/O works and is counted, and
// that latency can change under load: it never asserts a duration.
func TestFaultyLatency(t *testing.T) {
	tests := []struct {
		name            string
		latency, jitter time.Duration
	}{
		{"none", 0, 0},
		{"latency", 200 * time.Microsecond, 0},
		{"jitter", 0, 500 * time.Microsecond},
		{"both", 100 * time.Microsecond, time.Millisecond},
		{"negative", -time.Second, -time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := blockdev.NewFaulty(blockdev.NewMemory(8), blockdev.FaultOptions{
				Latency: tc.latency, Jitter: tc.jitter, Seed: 42,
			})
			defer f.Close()
			const goroutines, rounds = 4, 5
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for r := range rounds {
						p := pattern(g*rounds+r, 2)
						if err := f.WriteBlocks(p, int64(2*g)); err != nil {
							t.Error(err)
							return
						}
						got := blocks(2)
						if err := f.ReadBlocks(got, int64(2*g)); err != nil {
							t.Error(err)
							return
						}
						if !bytes.Equal(got, p) {
							t.Errorf("goroutine %d: read back wrong", g)
						}
						if err := f.Flush(); err != nil {
							t.Error(err)
						}
					}
				})
			}
			// Change the latency while I/O is running.
			wg.Go(func() {
				for i := range rounds {
					f.SetLatency(time.Duration(i)*50*time.Microsecond, time.Duration(rounds-i)*50*time.Microsecond)
				}
			})
			wg.Wait()
			if got, want := f.Ops(), int64(goroutines*rounds*3); got != want {
				t.Errorf("Ops() = %d, want %d", got, want)
			}
			if got, want := f.Reads(), int64(goroutines*rounds*2); got != want {
				t.Errorf("Reads() = %d, want %d", got, want)
			}
			if got, want := f.Writes(), int64(goroutines*rounds*2); got != want {
				t.Errorf("Writes() = %d, want %d", got, want)
			}
		})
	}
}

func TestFaultyInjectionAfterClose(t *testing.T) {
	f, m := newFaulty(t, 4)
	f.FailRead(0, syscall.EIO)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed wins over injected faults, and the wrapped device is closed.
	if err := f.ReadBlocks(blocks(1), 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read after Close: error = %v, want EBADF", err)
	}
	if err := m.ReadBlocks(blocks(1), 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("wrapped device read after Close: error = %v, want EBADF", err)
	}
}

// TestFaultyWrappedDeviceError checks that an error of the wrapped device
// is passed through, and does not use up FailAfter's allowance.
func TestFaultyWrappedDeviceError(t *testing.T) {
	m := blockdev.NewMemory(4)
	inner := blockdev.NewFaulty(m, blockdev.FaultOptions{})
	f := blockdev.NewFaulty(inner, blockdev.FaultOptions{})
	defer f.Close()
	inner.FailWrite(1, syscall.EROFS)
	f.FailAfter(1, syscall.ENOSPC)
	if err := f.WriteBlocks(blocks(1), 1); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("error = %v, want the wrapped device's EROFS", err)
	}
	if err := f.WriteBlocks(blocks(1), 0); err != nil {
		t.Fatalf("allowance used up by a failed op: %v", err)
	}
	if err := f.WriteBlocks(blocks(1), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error = %v, want ENOSPC", err)
	}
}
