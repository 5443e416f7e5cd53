package blockdev

import "sync"

// DAXDevice is a Device whose blocks are memory the engine may address in
// place, as persistent memory is (Linux's dax_device and
// dax_direct_access). A filesystem in DAX mode reads, writes and maps a
// file's blocks through it with no page cache in between.
type DAXDevice interface {
	Device
	// DirectAccess returns the memory of block. It stays that block's
	// memory for the device's lifetime: ReadBlocks and WriteBlocks see
	// stores made through it and the other way round.
	DirectAccess(block int64) (DAXBlock, error)
}

// DAXBlock is the memory of one block of a DAXDevice. Go gives plain
// concurrent loads and stores no meaning, where a CPU's caches keep
// persistent memory coherent, so every access copies under the block's
// content lock (shared with the device's own I/O to the block): Bytes is
// only touched between Lock and Unlock, or RLock and RUnlock to load.
// The zero DAXBlock is no memory at all (Valid is false).
type DAXBlock struct {
	mu   *sync.RWMutex
	data *[BlockSize]byte
}

// Valid reports whether b is the memory of a block.
func (b DAXBlock) Valid() bool { return b.data != nil }

// Bytes returns the block's memory, BlockSize bytes.
func (b DAXBlock) Bytes() []byte { return b.data[:] }

// Lock takes the content lock for a store.
func (b DAXBlock) Lock() { b.mu.Lock() }

// Unlock releases Lock.
func (b DAXBlock) Unlock() { b.mu.Unlock() }

// RLock takes the content lock for a load.
func (b DAXBlock) RLock() { b.mu.RLock() }

// RUnlock releases RLock.
func (b DAXBlock) RUnlock() { b.mu.RUnlock() }

// Same reports whether a and b are the memory of the same block.
func (b DAXBlock) Same(o DAXBlock) bool { return b.data == o.data }
