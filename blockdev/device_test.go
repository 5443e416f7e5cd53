package blockdev_test

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holefs/holefs/blockdev"
)

// devices lists every Device implementation, as constructors.
var devices = []struct {
	name string
	open func(t *testing.T, nblocks int64) blockdev.Device
}{
	{"Memory", func(t *testing.T, n int64) blockdev.Device { return blockdev.NewMemory(n) }},
	{"File", openTempFile},
	{"Faulty(Memory)", func(t *testing.T, n int64) blockdev.Device {
		return blockdev.NewFaulty(blockdev.NewMemory(n), blockdev.FaultOptions{})
	}},
	{"Faulty(File)", func(t *testing.T, n int64) blockdev.Device {
		return blockdev.NewFaulty(openTempFile(t, n), blockdev.FaultOptions{})
	}},
	{"Faulty(Memory)+latency", func(t *testing.T, n int64) blockdev.Device {
		return blockdev.NewFaulty(blockdev.NewMemory(n), blockdev.FaultOptions{
			Latency: time.Microsecond, Jitter: 10 * time.Microsecond, Seed: 1,
		})
	}},
}

func openTempFile(t *testing.T, nblocks int64) blockdev.Device {
	t.Helper()
	f, err := blockdev.OpenFile(filepath.Join(t.TempDir(), "dev"), nblocks)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// forEachDevice runs fn as a subtest on a fresh device of each kind, and
// closes the device afterwards unless fn did.
func forEachDevice(t *testing.T, nblocks int64, fn func(t *testing.T, d blockdev.Device)) {
	for _, dc := range devices {
		t.Run(dc.name, func(t *testing.T) {
			d := dc.open(t, nblocks)
			t.Cleanup(func() { d.Close() })
			fn(t, d)
		})
	}
}

// pattern returns n blocks whose bytes depend on seed and on their position,
// so that a block read from the wrong place or written by the wrong writer
// is noticed.
func pattern(seed, n int) []byte {
	p := make([]byte, n*blockdev.BlockSize)
	for i := range p {
		p[i] = byte(seed*131 + i/blockdev.BlockSize*7 + i%251 + 1)
	}
	return p
}

func blocks(n int) []byte { return make([]byte, n*blockdev.BlockSize) }

func TestRoundTrip(t *testing.T) {
	const nblocks = 64
	writes := []struct {
		name  string
		block int64
		n     int
	}{
		{"first block", 0, 1},
		{"last block", nblocks - 1, 1},
		{"run", 10, 5},
		{"overwrite part of run", 12, 2},
		{"run to end", nblocks - 4, 4},
	}
	forEachDevice(t, nblocks, func(t *testing.T, d blockdev.Device) {
		if got := d.NumBlocks(); got != nblocks {
			t.Fatalf("NumBlocks() = %d, want %d", got, nblocks)
		}
		want := blocks(nblocks) // model of the device
		for i, w := range writes {
			p := pattern(i, w.n)
			if err := d.WriteBlocks(p, w.block); err != nil {
				t.Fatalf("%s: WriteBlocks(%d blocks, %d): %v", w.name, w.n, w.block, err)
			}
			copy(want[w.block*blockdev.BlockSize:], p)
			got := bytes.Repeat([]byte{0xEE}, len(p))
			if err := d.ReadBlocks(got, w.block); err != nil {
				t.Fatalf("%s: ReadBlocks: %v", w.name, err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("%s: read back differs from what was written", w.name)
			}
		}
		// The whole device in one read, and block by block.
		got := bytes.Repeat([]byte{0xEE}, nblocks*blockdev.BlockSize)
		if err := d.ReadBlocks(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("whole-device read differs from the model")
		}
		for b := int64(0); b < nblocks; b++ {
			one := blocks(1)
			if err := d.ReadBlocks(one, b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(one, want[b*blockdev.BlockSize:(b+1)*blockdev.BlockSize]) {
				t.Fatalf("block %d differs from the model", b)
			}
		}
		if err := d.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	})
}

func TestUnwrittenBlocksReadZero(t *testing.T) {
	forEachDevice(t, 16, func(t *testing.T, d blockdev.Device) {
		if err := d.WriteBlocks(pattern(1, 1), 5); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			block int64
			n     int
		}{{0, 1}, {4, 1}, {6, 10}, {15, 1}} {
			p := bytes.Repeat([]byte{0xAA}, tc.n*blockdev.BlockSize)
			if err := d.ReadBlocks(p, tc.block); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, blocks(tc.n)) {
				t.Errorf("%d never-written blocks at %d do not read as zeros", tc.n, tc.block)
			}
		}
		// A read spanning written and unwritten blocks.
		p := bytes.Repeat([]byte{0xAA}, 3*blockdev.BlockSize)
		if err := d.ReadBlocks(p, 4); err != nil {
			t.Fatal(err)
		}
		want := append(append(blocks(1), pattern(1, 1)...), blocks(1)...)
		if !bytes.Equal(p, want) {
			t.Error("read across a written block: unwritten neighbours not zero or data wrong")
		}
	})
}

func TestBadArgumentsEINVAL(t *testing.T) {
	const nblocks = 1024
	tests := []struct {
		name  string
		len   int
		block int64
		msg   string // substring of the read error
	}{
		{"nil buffer", -1, 0, "read of 0 bytes at block 0"},
		{"empty buffer", 0, 0, "read of 0 bytes at block 0"},
		{"one byte", 1, 0, "read of 1 bytes at block 0: length is not a positive multiple"},
		{"block size minus one", blockdev.BlockSize - 1, 3, "read of 4095 bytes at block 3"},
		{"block size plus one", blockdev.BlockSize + 1, 3, "read of 4097 bytes at block 3"},
		{"half a block past whole ones", 2*blockdev.BlockSize + 2048, 0, "length is not a positive multiple"},
		{"negative block", blockdev.BlockSize, -1, "read of 1 blocks at negative block -1"},
		{"most negative block", blockdev.BlockSize, math.MinInt64, "negative block"},
		{"block at end", blockdev.BlockSize, nblocks, "read of 1 blocks at block 1024 beyond end of 1024-block device"},
		{"block far past end", blockdev.BlockSize, 1 << 40, "beyond end of 1024-block device"},
		{"largest block", blockdev.BlockSize, math.MaxInt64, "beyond end"},
		{"run straddling end", 3 * blockdev.BlockSize, nblocks - 2, "read of 3 blocks at block 1022 beyond end of 1024-block device: invalid argument"},
		{"run longer than device", (nblocks + 1) * blockdev.BlockSize, 0, "read of 1025 blocks at block 0 beyond end"},
	}
	forEachDevice(t, nblocks, func(t *testing.T, d blockdev.Device) {
		for _, tc := range tests {
			var p []byte
			if tc.len >= 0 {
				p = bytes.Repeat([]byte{0x5A}, tc.len)
			}
			err := d.ReadBlocks(p, tc.block)
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s: ReadBlocks error = %v, want EINVAL", tc.name, err)
			} else if !strings.HasPrefix(err.Error(), "blockdev: ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: ReadBlocks error %q does not contain %q", tc.name, err, tc.msg)
			}
			err = d.WriteBlocks(p, tc.block)
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s: WriteBlocks error = %v, want EINVAL", tc.name, err)
			} else if wmsg := strings.Replace(tc.msg, "read", "write", 1); !strings.Contains(err.Error(), wmsg) {
				t.Errorf("%s: WriteBlocks error %q does not contain %q", tc.name, err, wmsg)
			}
		}
		// The rejected straddling write must not have written its in-range
		// part.
		tail := bytes.Repeat([]byte{0xEE}, 2*blockdev.BlockSize)
		if err := d.ReadBlocks(tail, nblocks-2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tail, blocks(2)) {
			t.Error("a rejected write changed the device")
		}
	})
}

func TestExactBoundsMessage(t *testing.T) {
	forEachDevice(t, 1024, func(t *testing.T, d blockdev.Device) {
		err := d.ReadBlocks(blocks(3), 1022)
		const want = "blockdev: read of 3 blocks at block 1022 beyond end of 1024-block device: invalid argument"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v, want %q", err, want)
		}
	})
}

func TestClosedEBADF(t *testing.T) {
	forEachDevice(t, 8, func(t *testing.T, d blockdev.Device) {
		if err := d.WriteBlocks(pattern(1, 1), 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		ops := []struct {
			name string
			do   func() error
		}{
			{"read", func() error { return d.ReadBlocks(blocks(1), 0) }},
			{"write", func() error { return d.WriteBlocks(blocks(1), 0) }},
			{"flush", func() error { return d.Flush() }},
			{"bad read", func() error { return d.ReadBlocks(nil, -1) }},
			{"second close", func() error { return d.Close() }},
		}
		for _, op := range ops {
			err := op.do()
			if !errors.Is(err, syscall.EBADF) {
				t.Errorf("%s after Close: error = %v, want EBADF", op.name, err)
				continue
			}
			if !strings.Contains(err.Error(), "closed") {
				t.Errorf("%s after Close: error %q does not say the device is closed", op.name, err)
			}
		}
		if got := d.NumBlocks(); got != 8 {
			t.Errorf("NumBlocks() after Close = %d, want 8", got)
		}
	})
}

// TestConcurrentDistinctBlocks has writers rewrite their own blocks and read
// them back while readers check blocks nobody writes, and then checks every
// block. Run it with -race.
func TestConcurrentDistinctBlocks(t *testing.T) {
	const (
		writers = 8
		readers = 4
		perG    = 4 // blocks owned by each writer
		rounds  = 50
		stable  = 8 // blocks only read, after the device's writer blocks
		nblocks = writers*perG + stable
	)
	forEachDevice(t, nblocks, func(t *testing.T, d blockdev.Device) {
		for b := 0; b < stable; b++ {
			if err := d.WriteBlocks(pattern(1000+b, 1), int64(writers*perG+b)); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for r := range rounds {
					// Alternate single-block and whole-run writes, owned blocks
					// interleaved with other writers' (block = i*writers + g).
					for i := range perG {
						b := int64(i*writers + g)
						p := pattern(g*rounds+r, 1)
						if err := d.WriteBlocks(p, b); err != nil {
							t.Errorf("writer %d: %v", g, err)
							return
						}
						got := blocks(1)
						if err := d.ReadBlocks(got, b); err != nil {
							t.Errorf("writer %d: %v", g, err)
							return
						}
						if !bytes.Equal(got, p) {
							t.Errorf("writer %d round %d: block %d read back wrong", g, r, b)
							return
						}
					}
				}
			})
		}
		for g := range readers {
			wg.Go(func() {
				for r := range rounds {
					b := (g + r) % stable
					got := blocks(1)
					if err := d.ReadBlocks(got, int64(writers*perG+b)); err != nil {
						t.Errorf("reader %d: %v", g, err)
						return
					}
					if !bytes.Equal(got, pattern(1000+b, 1)) {
						t.Errorf("reader %d: stable block %d changed", g, b)
						return
					}
				}
			})
		}
		wg.Wait()
		for g := range writers {
			for i := range perG {
				b := int64(i*writers + g)
				got := blocks(1)
				if err := d.ReadBlocks(got, b); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, pattern(g*rounds+rounds-1, 1)) {
					t.Errorf("block %d of writer %d: final content is not its last write", b, g)
				}
			}
		}
	})
}
