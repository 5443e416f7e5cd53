package blockdev_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
)

func TestMemoryLazyAllocation(t *testing.T) {
	const tib = 1 << 40 / blockdev.BlockSize
	d := blockdev.NewMemory(tib)
	defer d.Close()
	if got := d.NumBlocks(); got != tib {
		t.Fatalf("NumBlocks() = %d, want %d", got, tib)
	}
	steps := []struct {
		name  string
		block int64
		p     []byte
		want  int64 // Allocated() after the write
	}{
		{"write last block", tib - 1, pattern(1, 1), 1},
		{"write first two blocks", 0, pattern(2, 2), 3},
		{"overwrite a block", 1, pattern(3, 1), 3},
		{"zero a block", 0, blocks(1), 2},
		{"zero an unallocated block", 12345, blocks(1), 2},
		{"zero the rest", tib - 1, blocks(1), 1},
	}
	for _, s := range steps {
		if err := d.WriteBlocks(s.p, s.block); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := d.Allocated(); got != s.want {
			t.Errorf("%s: Allocated() = %d, want %d", s.name, got, s.want)
		}
		got := bytes.Repeat([]byte{0xEE}, len(s.p))
		if err := d.ReadBlocks(got, s.block); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, s.p) {
			t.Errorf("%s: read back wrong", s.name)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := d.Allocated(); got != 0 {
		t.Errorf("Allocated() after Close = %d, want 0", got)
	}
}

func TestMemoryWriteDoesNotAlias(t *testing.T) {
	d := blockdev.NewMemory(4)
	p := pattern(1, 1)
	if err := d.WriteBlocks(p, 2); err != nil {
		t.Fatal(err)
	}
	p[0]++ // the device must have copied p
	got := blocks(1)
	if err := d.ReadBlocks(got, 2); err != nil {
		t.Fatal(err)
	}
	got[1]++ // and must hand out copies
	again := blocks(1)
	if err := d.ReadBlocks(again, 2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, pattern(1, 1)) {
		t.Error("device content changed through a caller's buffer")
	}
}

func TestMemoryNonPositiveSize(t *testing.T) {
	for _, n := range []int64{0, -1, -1 << 62} {
		d := blockdev.NewMemory(n)
		if got := d.NumBlocks(); got != 0 {
			t.Errorf("NewMemory(%d).NumBlocks() = %d, want 0", n, got)
		}
		if err := d.ReadBlocks(blocks(1), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("NewMemory(%d): read error = %v, want EINVAL", n, err)
		}
		if err := d.WriteBlocks(blocks(1), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("NewMemory(%d): write error = %v, want EINVAL", n, err)
		}
		if err := d.Flush(); err != nil {
			t.Errorf("NewMemory(%d): Flush: %v", n, err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("NewMemory(%d): Close: %v", n, err)
		}
	}
}

var _ blockdev.Device = (*blockdev.Memory)(nil)
