package blockdev

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// memShards is the number of independently locked parts of a Memory
// device's block table. Block b lives in shard b%memShards, so I/O to
// different blocks rarely contends on one lock.
const memShards = 64

// Memory is an in-memory Device. Storage is allocated one block at a time
// when the block is first written with non-zero data, so a huge device costs
// nothing until used; blocks never written (or last written with zeros) read
// as zeros and hold no memory. It is a DAXDevice: DirectAccess hands out a
// block's memory, which from then on stays allocated (a zero write clears
// it in place), as persistent memory is always there. It is safe for
// concurrent use.
type Memory struct {
	nblocks int64
	closed  atomic.Bool
	shards  [memShards]memShard
}

type memShard struct {
	mu     sync.RWMutex
	blocks map[int64]*memBlock // nil once the device is closed
}

// memBlock is one block's storage. dax is set, under the shard lock, once
// DirectAccess handed the memory out: it may be mapped, so it is never
// freed.
type memBlock struct {
	data [BlockSize]byte
	dax  bool
}

// NewMemory returns an in-memory device of nblocks blocks, all zero.
// A device of nblocks <= 0 has no blocks: every read and write of it fails
// with an error wrapping syscall.EINVAL.
func NewMemory(nblocks int64) *Memory {
	if nblocks < 0 {
		nblocks = 0
	}
	m := &Memory{nblocks: nblocks}
	for i := range m.shards {
		m.shards[i].blocks = make(map[int64]*memBlock)
	}
	return m
}

func (m *Memory) shard(block int64) *memShard { return &m.shards[block%memShards] }

// ReadBlocks reads len(p)/BlockSize blocks starting at block into p.
func (m *Memory) ReadBlocks(p []byte, block int64) error {
	if m.closed.Load() {
		return errClosed("read")
	}
	n, err := checkIO("read", p, block, m.nblocks)
	if err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		dst := p[i*BlockSize : (i+1)*BlockSize]
		s := m.shard(block + i)
		s.mu.RLock()
		if s.blocks == nil {
			s.mu.RUnlock()
			return errClosed("read")
		}
		if b := s.blocks[block+i]; b != nil {
			copy(dst, b.data[:])
		} else {
			clear(dst)
		}
		s.mu.RUnlock()
	}
	return nil
}

// WriteBlocks writes p to len(p)/BlockSize blocks starting at block.
// Writing a block of zeros frees its storage.
func (m *Memory) WriteBlocks(p []byte, block int64) error {
	if m.closed.Load() {
		return errClosed("write")
	}
	n, err := checkIO("write", p, block, m.nblocks)
	if err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		src := p[i*BlockSize : (i+1)*BlockSize]
		zero := isZero(src)
		s := m.shard(block + i)
		s.mu.Lock()
		if s.blocks == nil {
			s.mu.Unlock()
			return errClosed("write")
		}
		switch b := s.blocks[block+i]; {
		case zero && (b == nil || !b.dax):
			delete(s.blocks, block+i)
		case b != nil:
			copy(b.data[:], src)
		default:
			b = new(memBlock)
			copy(b.data[:], src)
			s.blocks[block+i] = b
		}
		s.mu.Unlock()
	}
	return nil
}

// Discard frees blocks [block, block+count): they read as zeros after,
// as a discard (TRIM) leaves them on an SSD that zeroes discarded blocks.
// A block DirectAccess handed out is zeroed in place instead, as a zero
// write leaves it: its memory may be mapped.
func (m *Memory) Discard(block, count int64) error {
	if m.closed.Load() {
		return errClosed("discard")
	}
	if block < 0 || count <= 0 || block > m.nblocks || count > m.nblocks-block {
		return fmt.Errorf("blockdev: discard of %d blocks at block %d of a %d-block device: %w", count, block, m.nblocks, syscall.EINVAL)
	}
	for b := block; b < block+count; b++ {
		s := m.shard(b)
		s.mu.Lock()
		if s.blocks == nil {
			s.mu.Unlock()
			return errClosed("discard")
		}
		if mb := s.blocks[b]; mb != nil && mb.dax {
			clear(mb.data[:])
		} else {
			delete(s.blocks, b)
		}
		s.mu.Unlock()
	}
	return nil
}

// Flush does nothing: memory has no volatile cache to drain. It fails only
// after Close.
func (m *Memory) Flush() error {
	if m.closed.Load() {
		return errClosed("flush")
	}
	return nil
}

// DirectAccess returns the memory of block, allocating it (zeroed) if it
// holds none yet; the memory is the block's until Close. Its content lock
// is the lock of the block's shard, which ReadBlocks and WriteBlocks hold
// while they copy.
func (m *Memory) DirectAccess(block int64) (DAXBlock, error) {
	if m.closed.Load() {
		return DAXBlock{}, errClosed("direct access")
	}
	if block < 0 || block >= m.nblocks {
		return DAXBlock{}, fmt.Errorf("blockdev: direct access of block %d outside the %d-block device: %w",
			block, m.nblocks, syscall.EINVAL)
	}
	s := m.shard(block)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocks == nil {
		return DAXBlock{}, errClosed("direct access")
	}
	b := s.blocks[block]
	if b == nil {
		b = new(memBlock)
		s.blocks[block] = b
	}
	b.dax = true
	return DAXBlock{mu: &s.mu, data: &b.data}, nil
}

// NumBlocks returns the device size in blocks.
func (m *Memory) NumBlocks() int64 { return m.nblocks }

// Allocated returns the number of blocks that currently hold storage: those
// whose last write was not all zeros. It is 0 after Close.
func (m *Memory) Allocated() int64 {
	var total int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		total += int64(len(s.blocks))
		s.mu.RUnlock()
	}
	return total
}

// Close frees the device's storage. Further I/O returns an error wrapping
// syscall.EBADF, as does a second Close.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return errClosedTwice()
	}
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.blocks = nil
		s.mu.Unlock()
	}
	return nil
}

// isZero reports whether p holds only zero bytes.
func isZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
