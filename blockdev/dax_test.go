package blockdev_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
)

// A Memory device is a DAXDevice; wrappers that add I/O of their own are not.
var _ blockdev.DAXDevice = (*blockdev.Memory)(nil)

// TestDirectAccessCoherent checks that stores through a block's memory and
// the device's reads and writes see each other, and that a zero write
// or a discard does not free memory that was handed out (a mapped view
// would keep addressing a detached copy).
func TestDirectAccessCoherent(t *testing.T) {
	d := blockdev.NewMemory(8)
	defer d.Close()
	steps := []struct {
		name  string
		run   func(b blockdev.DAXBlock) error
		want  []byte // the block's content after the step, read both ways
		alloc int64  // Allocated() after the step
	}{
		{"fresh block reads zeros", func(blockdev.DAXBlock) error { return nil }, blocks(1), 1},
		{"store shows in ReadBlocks", func(b blockdev.DAXBlock) error {
			b.Lock()
			copy(b.Bytes(), pattern(7, 1))
			b.Unlock()
			return nil
		}, pattern(7, 1), 1},
		{"WriteBlocks shows in the memory", func(blockdev.DAXBlock) error { return d.WriteBlocks(pattern(9, 1), 3) },
			pattern(9, 1), 1},
		{"zero write keeps the memory", func(blockdev.DAXBlock) error { return d.WriteBlocks(blocks(1), 3) },
			blocks(1), 1},
		{"store after the zero write still shows", func(b blockdev.DAXBlock) error {
			b.Lock()
			copy(b.Bytes(), pattern(5, 1))
			b.Unlock()
			return nil
		}, pattern(5, 1), 1},
		{"discard zeroes the memory in place", func(blockdev.DAXBlock) error { return d.Discard(3, 1) },
			blocks(1), 1},
		{"store after the discard still shows", func(b blockdev.DAXBlock) error {
			b.Lock()
			copy(b.Bytes(), pattern(6, 1))
			b.Unlock()
			return nil
		}, pattern(6, 1), 1},
	}
	b, err := d.DirectAccess(3)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Valid() {
		t.Fatal("DirectAccess returned no memory")
	}
	for _, s := range steps {
		if err := s.run(b); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := make([]byte, blockdev.BlockSize)
		if err := d.ReadBlocks(got, 3); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, s.want) {
			t.Errorf("%s: ReadBlocks read %q..., want %q...", s.name, got[:4], s.want[:4])
		}
		b.RLock()
		mem := bytes.Clone(b.Bytes())
		b.RUnlock()
		if !bytes.Equal(mem, s.want) {
			t.Errorf("%s: memory holds %q..., want %q...", s.name, mem[:4], s.want[:4])
		}
		if got := d.Allocated(); got != s.alloc {
			t.Errorf("%s: Allocated() = %d, want %d", s.name, got, s.alloc)
		}
	}
	again, err := d.DirectAccess(3)
	if err != nil || !again.Same(b) {
		t.Errorf("a second DirectAccess of the block gave other memory (err %v)", err)
	}
}

func TestDirectAccessErrors(t *testing.T) {
	d := blockdev.NewMemory(8)
	cases := []struct {
		name  string
		block int64
		close bool
		want  syscall.Errno
	}{
		{"negative block", -1, false, syscall.EINVAL},
		{"past the end", 8, false, syscall.EINVAL},
		{"closed device", 0, true, syscall.EBADF},
	}
	for _, c := range cases {
		if c.close {
			_ = d.Close()
		}
		b, err := d.DirectAccess(c.block)
		if !errors.Is(err, c.want) || b.Valid() {
			t.Errorf("%s: DirectAccess(%d) = valid %v, %v; want %v", c.name, c.block, b.Valid(), err, c.want)
		}
	}
}
