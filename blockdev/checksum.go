package blockdev

import (
	"fmt"
	"hash/crc32"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksummed keeps a CRC-32C of every block written through it and checks
// every block read against the checksum it knows: a mismatch fails the read
// with EIO and is counted. Checksums of blocks written since the last Take
// are held here; older ones come from Lookup (an image's meta.db). It is
// meant for a store that never rewrites a block in place while a committed
// map points at it, so that a crash cannot pair new data with an old
// checksum.
type Checksummed struct {
	Device
	// Lookup returns the persisted checksum of a block, if any.
	Lookup func(block int64) (uint32, bool)

	mu         sync.Mutex
	pending    map[int64]uint32 // guarded by mu
	mismatches atomic.Int64
}

// NewChecksummed wraps d.
func NewChecksummed(d Device, lookup func(block int64) (uint32, bool)) *Checksummed {
	return &Checksummed{Device: d, Lookup: lookup, pending: map[int64]uint32{}}
}

// WriteBlocks writes p and records its blocks' checksums.
func (c *Checksummed) WriteBlocks(p []byte, block int64) error {
	if err := c.Device.WriteBlocks(p, block); err != nil {
		return err
	}
	c.mu.Lock()
	for i := 0; i+BlockSize <= len(p); i += BlockSize {
		c.pending[block+int64(i/BlockSize)] = crc32.Checksum(p[i:i+BlockSize], castagnoli)
	}
	c.mu.Unlock()
	return nil
}

// ReadBlocks reads p and checks every block with a known checksum.
func (c *Checksummed) ReadBlocks(p []byte, block int64) error {
	if err := c.Device.ReadBlocks(p, block); err != nil {
		return err
	}
	for i := 0; i+BlockSize <= len(p); i += BlockSize {
		b := block + int64(i/BlockSize)
		c.mu.Lock()
		want, ok := c.pending[b]
		c.mu.Unlock()
		if !ok && c.Lookup != nil {
			want, ok = c.Lookup(b)
		}
		if !ok {
			continue
		}
		if got := crc32.Checksum(p[i:i+BlockSize], castagnoli); got != want {
			c.mismatches.Add(1)
			return fmt.Errorf("blockdev: block %d: data checksum %08x, stored %08x: %w", b, got, want, syscall.EIO)
		}
	}
	return nil
}

// Take returns the checksums recorded since the last Take and forgets them
// here: the caller persists them (a journal commit).
func (c *Checksummed) Take() map[int64]uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.pending
	c.pending = map[int64]uint32{}
	return m
}

// Untake gives back checksums a failed commit could not persist; newer
// ones recorded since win.
func (c *Checksummed) Untake(m map[int64]uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.Copy(m, c.pending)
	c.pending = m
}

// Mismatches returns the number of reads that failed their checksum.
func (c *Checksummed) Mismatches() int64 { return c.mismatches.Load() }
