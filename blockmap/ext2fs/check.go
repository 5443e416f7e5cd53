package ext2fs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
)

// Walk reads the tree below roots (i_block[15]) from dev alone and calls
// data for every linked page and indirect for every indirect block with
// its depth (1: it points at data). A pointer past the device, or a read
// error, ends the walk with the error (EUCLEAN, or the device's).
// Reservations are never on the device, so a walk sees linked data only.
func Walk(dev blockdev.Device, roots [NRoots]uint32, data func(page int64, blk uint32), indirect func(blk uint32, depth int)) error {
	return walkTree(dev, roots, func(p int64, b uint32) error { data(p, b); return nil },
		func(b uint32, d int, _ int64, _ *[PtrsPerBlock]uint32) error { indirect(b, d); return nil })
}

// walkTree is Walk that also hands each indirect block's pointers (and
// the first page under it) to indirect, parents before children, and
// stops at the first error a callback returns.
func walkTree(dev blockdev.Device, roots [NRoots]uint32, data func(page int64, blk uint32) error,
	indirect func(blk uint32, depth int, base int64, ptr *[PtrsPerBlock]uint32) error) error {
	nblocks := dev.NumBlocks()
	for p, b := range roots[:NDirect] {
		if b == 0 {
			continue
		}
		if int64(b) >= nblocks {
			return fmt.Errorf("ext2fs: i_block[%d] points at block %d, past the device's %d blocks: %w", p, b, nblocks, syscall.EUCLEAN)
		}
		if err := data(int64(p), b); err != nil {
			return err
		}
	}
	buf := make([]byte, blockmap.PageSize)
	var walk func(blk uint32, depth int, base int64) error
	walk = func(blk uint32, depth int, base int64) error {
		if err := dev.ReadBlocks(buf, int64(blk)); err != nil {
			return fmt.Errorf("ext2fs: read indirect block %d: %w", blk, err)
		}
		ptr, err := DecodeIndirect(buf, nblocks)
		if err != nil {
			return fmt.Errorf("indirect block %d (depth %d, first page %d): %w", blk, depth, base, err)
		}
		if err := indirect(blk, depth, base, &ptr); err != nil {
			return err
		}
		s := span(depth)
		for i, p := range ptr {
			switch {
			case p == 0:
			case depth == 1:
				if err := data(base+int64(i), p); err != nil {
					return err
				}
			default:
				if err := walk(p, depth-1, base+int64(i)*s); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for t := range 3 {
		b := roots[NDirect+t]
		if b == 0 {
			continue
		}
		if int64(b) >= nblocks {
			return fmt.Errorf("ext2fs: i_block[%d] points at block %d, past the device's %d blocks: %w", NDirect+t, b, nblocks, syscall.EUCLEAN)
		}
		if err := walk(b, t+1, treeBase[t]); err != nil {
			return err
		}
	}
	return nil
}

// Check verifies the store with no change running: every block a file
// owns (data, reserved or indirect) is inside the device, allocated in
// the bitmap and owned once; every indirect block on the device holds what
// its node in memory holds; each file's block count is right; and no
// allocated block is owned by nobody (a leak), quarantined blocks being
// owned by the quarantine. On an image, indirect blocks changed since the
// last commit are compared at the next. It returns every problem
// found (at most 20), each wrapping EUCLEAN.
func (fs *FS) Check() error {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	files := make([]*File, 0, len(fs.files))
	for _, f := range fs.files {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b *File) int { return cmp.Compare(a.id, b.id) })
	for _, f := range files {
		f.mu.RLock()
		defer f.mu.RUnlock()
	}
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf("ext2fs: check: "+format+": %w", append(args, syscall.EUCLEAN)...))
		}
	}
	type ownerOf struct {
		ino  uint64
		what string
	}
	owner := make(map[int64]ownerOf)
	buf := make([]byte, blockmap.PageSize)
	for _, f := range files {
		var count int64
		claim := func(b uint32, what string) {
			count++
			blk := int64(b)
			switch o, dup := owner[blk]; {
			case blk <= 0 || blk >= fs.alloc.total:
				bad("inode %d %s: block %d outside the device", f.id, what, blk)
			case dup:
				bad("block %d owned twice: inode %d %s and inode %d %s", blk, o.ino, o.what, f.id, what)
			case !fs.alloc.isUsed(blk):
				bad("inode %d %s: block %d is free in the bitmap", f.id, what, blk)
			}
			owner[blk] = ownerOf{f.id, what}
		}
		for p := range f.direct {
			if f.direct[p] != 0 && f.dresv[p] != 0 {
				bad("inode %d page %d: linked and reserved", f.id, p)
			}
			if b := f.direct[p] | f.dresv[p]; b != 0 {
				claim(b, fmt.Sprintf("page %d", p))
			}
		}
		var walk func(n *node, base int64)
		walk = func(n *node, base int64) {
			claim(uint32(n.block), fmt.Sprintf("indirect block (depth %d) at page %d", n.depth, base))
			// On an image a changed block reaches the device at the
			// next commit.
			_, pending := f.dirty[n]
			if onDevice := !pending && (f.entry == nil || n.written); onDevice {
				if err := fs.dev.ReadBlocks(buf, n.block); err != nil {
					bad("inode %d: read indirect block %d: %v", f.id, n.block, err)
				} else if ptr, err := DecodeIndirect(buf, fs.alloc.total); err != nil || ptr != n.ptr {
					bad("inode %d: indirect block %d on the device differs from the map (%v)", f.id, n.block, err)
				}
			}
			used := 0
			for i := range PtrsPerBlock {
				pb := base + int64(i)*span(n.depth)
				if n.depth == 1 {
					if n.ptr[i] != 0 && n.resv[i] != 0 {
						bad("inode %d page %d: linked and reserved", f.id, pb)
					}
					if b := n.ptr[i] | n.resv[i]; b != 0 {
						used++
						claim(b, fmt.Sprintf("page %d", pb))
					}
					continue
				}
				k := n.kids[i]
				if (k == nil) != (n.ptr[i] == 0) || (k != nil && (uint32(k.block) != n.ptr[i] || k.depth != n.depth-1)) {
					bad("inode %d: indirect block %d slot %d does not point at its child", f.id, n.block, i)
				}
				if k != nil {
					used++
					walk(k, pb)
				}
			}
			if used != n.used || used == 0 {
				bad("inode %d: indirect block %d has %d used slots, counted %d", f.id, n.block, used, n.used)
			}
		}
		for t, n := range f.top {
			if n != nil {
				walk(n, treeBase[t])
			}
		}
		if count != f.blocks {
			bad("inode %d owns %d blocks, counted %d", f.id, count, f.blocks)
		}
	}
	fs.alloc.mu.Lock()
	for blk := range fs.alloc.inHeld {
		if o, dup := owner[blk]; dup {
			bad("block %d quarantined and owned by inode %d %s", blk, o.ino, o.what)
		}
		owner[blk] = ownerOf{0, "quarantine"}
	}
	for _, err := range fs.alloc.lateErrs {
		bad("%v", err)
	}
	var inUse int64
	for blk := int64(1); blk < fs.alloc.total; blk++ {
		if !fs.alloc.used(blk) {
			continue
		}
		inUse++
		if _, ok := owner[blk]; !ok {
			bad("block %d allocated but owned by no file (leaked)", blk)
		}
	}
	if free := fs.alloc.total - 1 - inUse; free != fs.alloc.nfree {
		bad("bitmap has %d free blocks, counted %d", free, fs.alloc.nfree)
	}
	fs.alloc.mu.Unlock()
	return errors.Join(errs...)
}
