package ext2fs

import (
	"errors"
	"fmt"
	"math/bits"
	"syscall"

	"github.com/holefs/holefs/internal/lockcheck"
)

// bitmap is the block allocator: one bit per device block, set when the
// block is in use, as ext2's block bitmaps. Block 0 is always in use.
type bitmap struct {
	mu    lockcheck.Mutex // RankAllocator; taken inside map locks
	words []uint64        // guarded by mu
	nfree int64           // guarded by mu
	low   int             // guarded by mu; every word below low is full
	total int64           // device blocks; immutable
	// reserve is how many free blocks only commits may take, for the
	// copies of indirect blocks (images; 0 otherwise); immutable after
	// Restore.
	reserve int64

	// Quarantine (images only): a freed block keeps its bit, so nothing
	// allocates it, until the commit that stopped pointing at it is
	// durable (package meta). held is the open generation, sealed the
	// closed ones by number; inHeld finds a block freed twice.
	quarantine bool           // immutable after Restore
	held       []int64        // guarded by mu
	sealed     []sealedBlocks // guarded by mu
	gen        uint64         // guarded by mu
	inHeld     map[int64]bool // guarded by mu
	lateErrs   []error        // guarded by mu; double frees found at release, for Check
}

// sealedBlocks is one closed generation of the quarantine.
type sealedBlocks struct {
	gen    uint64
	blocks []int64
}

func newBitmap(nblocks int64) *bitmap {
	b := &bitmap{words: make([]uint64, (nblocks+63)/64), total: nblocks}
	b.mu.Init(lockcheck.RankAllocator)
	// Bits past the device's end are in use, so the search never finds them.
	for i := nblocks; i < int64(len(b.words))*64; i++ {
		b.words[i/64] |= 1 << (i % 64)
	}
	if nblocks > 0 {
		b.words[0] |= 1
	}
	b.nfree = max(nblocks-1, 0)
	return b
}

func (b *bitmap) used(blk int64) bool { return b.words[blk/64]&(1<<(blk%64)) != 0 }

// alloc takes n blocks, all or none (ENOSPC). Each block is the one after
// the previous (the first: goal) when that is free, else the lowest free
// block, so a run of allocations stays contiguous where it can. Only a
// commit's copies (commit set) may take the reserve.
func (b *bitmap) alloc(n, goal int64, commit bool) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	avail := b.nfree
	if !commit {
		avail -= b.reserve
	}
	if n > avail {
		return nil, fmt.Errorf("need %d blocks, %d free: %w", n, max(avail, 0), syscall.ENOSPC)
	}
	out := make([]int64, 0, n)
	for int64(len(out)) < n {
		blk := goal
		if blk <= 0 || blk >= b.total || b.used(blk) {
			blk = b.lowest()
		}
		b.words[blk/64] |= 1 << (blk % 64)
		b.nfree--
		out = append(out, blk)
		goal = blk + 1
	}
	return out, nil
}

// lowest returns the lowest free block; the caller checked nfree > 0.
func (b *bitmap) lowest() int64 {
	for b.words[b.low] == ^uint64(0) {
		b.low++
	}
	return int64(b.low)*64 + int64(bits.TrailingZeros64(^b.words[b.low]))
}

// free returns blocks to the bitmap. A block outside the device or already
// free means a block map is corrupt (a block owned twice): EUCLEAN naming
// it, and the other blocks are still freed.
func (b *bitmap) free(blks []int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, blk := range blks {
		if blk <= 0 || blk >= b.total {
			errs = append(errs, fmt.Errorf("ext2fs: free block %d: outside the device's blocks [1, %d): %w", blk, b.total, syscall.EUCLEAN))
			continue
		}
		if !b.used(blk) || b.inHeld[blk] {
			errs = append(errs, fmt.Errorf("ext2fs: free block %d: already free: %w", blk, syscall.EUCLEAN))
			continue
		}
		if b.quarantine {
			b.held = append(b.held, blk)
			b.inHeld[blk] = true
			continue
		}
		b.words[blk/64] &^= 1 << (blk % 64)
		b.nfree++
		b.low = min(b.low, int(blk/64))
	}
	return errors.Join(errs...)
}

func (b *bitmap) statfs() (total, free int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.total-1, 0), b.nfree
}

// isUsed reports whether blk is allocated, for Check.
func (b *bitmap) isUsed(blk int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return blk > 0 && blk < b.total && b.used(blk)
}

// seal closes the open quarantine generation and returns its number.
func (b *bitmap) seal() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.gen
	if len(b.held) > 0 {
		b.sealed = append(b.sealed, sealedBlocks{g, b.held})
		b.held = nil
	}
	b.gen++
	return g
}

// unquarantine makes the blocks of every sealed generation <= gen free.
func (b *bitmap) unquarantine(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := 0
	for _, s := range b.sealed {
		if s.gen > gen {
			break
		}
		for _, blk := range s.blocks {
			delete(b.inHeld, blk)
			if !b.used(blk) {
				if len(b.lateErrs) < 10 {
					b.lateErrs = append(b.lateErrs, fmt.Errorf("ext2fs: release quarantined block %d: already free: %w", blk, syscall.EUCLEAN))
				}
				continue
			}
			b.words[blk/64] &^= 1 << (blk % 64)
			b.nfree++
			b.low = min(b.low, int(blk/64))
		}
		k++
	}
	b.sealed = b.sealed[k:]
}

// quarantined reports how many freed blocks wait for a commit.
func (b *bitmap) quarantined() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.inHeld)
}
