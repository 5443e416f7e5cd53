package ext2fs

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// node is the in-memory copy of one indirect block of a file's tree.
type node struct {
	block int64                // device block holding ptr
	depth int                  // 1: ptr are data blocks; 2, 3: ptr are indirect blocks (kids)
	ptr   [PtrsPerBlock]uint32 // what the block on the device holds (images: once the next commit wrote it)
	resv  []uint32             // depth 1: blocks Allocate reserved for holes, linked by MarkWritten; memory only
	kids  []*node              // depth > 1: the nodes ptr points at
	used  int                  // slots with a pointer or a reservation; 0: the block can go

	// Images only (see durable.go): parent and slot locate the pointer
	// to this block (parent nil: i_block); written says a commit may
	// point at the block, so a change must go to a new block (File.dirty
	// holds the nodes whose ptr changed since they were written).
	parent  *node
	slot    int
	written bool
}

func newNode(block int64, depth int) *node {
	n := &node{block: block, depth: depth}
	if depth == 1 {
		n.resv = make([]uint32, PtrsPerBlock)
	} else {
		n.kids = make([]*node, PtrsPerBlock)
	}
	return n
}

// encodeIndirect writes ptr as an indirect block into buf (one block).
func encodeIndirect(ptr *[PtrsPerBlock]uint32, buf []byte) {
	for i, p := range ptr {
		binary.LittleEndian.PutUint32(buf[4*i:], p)
	}
}

// DecodeIndirect reads an indirect block of a device of nblocks blocks.
// A pointer is 0 (a hole) or a block in [1, nblocks); anything else means
// the block is not an indirect block of this device: EUCLEAN, naming the
// slot. A buffer that is not one block is EINVAL.
func DecodeIndirect(buf []byte, nblocks int64) ([PtrsPerBlock]uint32, error) {
	var ptr [PtrsPerBlock]uint32
	if len(buf) != blockmap.PageSize {
		return ptr, fmt.Errorf("ext2fs: indirect block of %d bytes, want %d: %w", len(buf), blockmap.PageSize, syscall.EINVAL)
	}
	for i := range ptr {
		p := binary.LittleEndian.Uint32(buf[4*i:])
		if p != 0 && int64(p) >= nblocks {
			return ptr, fmt.Errorf("ext2fs: indirect block slot %d points at block %d, past the device's %d blocks: %w",
				i, p, nblocks, syscall.EUCLEAN)
		}
		ptr[i] = p
	}
	return ptr, nil
}
