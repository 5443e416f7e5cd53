package ext2fs

import (
	"fmt"
	"math"
	"syscall"
)

// The shape of ext2's i_block[15] with 4 KiB blocks and 32-bit pointers.
const (
	// NDirect is the number of direct pointers (EXT2_NDIR_BLOCKS).
	NDirect = 12
	// NRoots is the number of root pointers: the direct ones, then the
	// single-, double- and triple-indirect block (EXT2_N_BLOCKS).
	NRoots = NDirect + 3
	// PtrsPerBlock is the number of pointers in an indirect block.
	PtrsPerBlock = 1024

	ptrShift = 10 // log2(PtrsPerBlock)

	indBase  = NDirect                              // first page under the single-indirect block
	dindBase = indBase + PtrsPerBlock               // first page under the double-indirect block
	tindBase = dindBase + PtrsPerBlock*PtrsPerBlock // first page under the triple-indirect block
	tindEnd  = tindBase + PtrsPerBlock*PtrsPerBlock*PtrsPerBlock

	// MaxPages is the number of pages the tree reaches; ranges past it
	// fail with EFBIG.
	MaxPages = int64(tindEnd)

	// MaxBlocks is the largest device a 32-bit pointer addresses.
	MaxBlocks = int64(1) << 32
)

// treeBase is the first page under each indirect root; depth is the
// number of indirect levels below the root pointer (1, 2, 3).
var treeBase = [3]int64{indBase, dindBase, tindBase}

// span returns the pages one slot of a node at depth d covers (a leaf
// node, depth 1, has slots of one page).
func span(d int) int64 { return int64(1) << (ptrShift * (d - 1)) }

// tree returns which indirect root (0, 1, 2) covers page p, or -1 for a
// direct page; p < MaxPages.
func tree(p int64) int {
	switch {
	case p < indBase:
		return -1
	case p < dindBase:
		return 0
	case p < tindBase:
		return 1
	}
	return 2
}

// checkRange validates [index, index+n) for op: bad arguments are EINVAL,
// a range past the tree's reach EFBIG.
func checkRange(op string, index, n int64) error {
	if err := checkSpan(op, index, n); err != nil {
		return err
	}
	if index+n > MaxPages {
		return fmt.Errorf("ext2fs: %s(index=%d, n=%d): range ends past the %d pages the indirect blocks reach: %w",
			op, index, n, MaxPages, syscall.EFBIG)
	}
	return nil
}

// checkSpan rejects a negative index, a non-positive count and a range
// whose end overflows.
func checkSpan(op string, index, n int64) error {
	if index < 0 || n <= 0 || index > math.MaxInt64-n {
		return fmt.Errorf("ext2fs: %s(index=%d, n=%d): invalid range: %w", op, index, n, syscall.EINVAL)
	}
	return nil
}

func errReleased(op string) error {
	return fmt.Errorf("ext2fs: %s: file already released: %w", op, syscall.EIO)
}

func errNoFallocate(op string) error {
	return fmt.Errorf("ext2fs: %s: ext2 has no fallocate: %w", op, syscall.EOPNOTSUPP)
}
