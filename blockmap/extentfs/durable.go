package extentfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/holefs/holefs/meta"
)

// Restore returns the store of an image's device of nblocks blocks holding
// the given files' extents (by inode number), committing changes through
// j. Block 0 (the superblock) is never allocated; every other block that no
// extent owns is free. Freed blocks are quarantined until the commit that
// freed them is durable (FS implements meta.Quarantine). Extents that
// overlap, or fall outside the device, are corruption: Restore fails with
// EUCLEAN naming both owners, and holefs fsck can repair the image.
//
// With cow set every written block is written out of place (the block
// keeps its content while a committed map points at it), as data checksums
// need. With reflink set, written blocks may be mapped by several extents
// (clones): their reference counts are rebuilt from the extents, and files
// can share blocks; an unwritten extent may still share nothing.
func Restore(nblocks int64, files map[uint64][]meta.Extent, j *meta.Journal, cow, reflink bool) (*FS, error) {
	if nblocks < 2 {
		return nil, fmt.Errorf("extentfs: restore: device of %d blocks: %w", nblocks, syscall.EINVAL)
	}
	fs := &FS{alloc: newAllocator(0), files: make(map[uint64]*File), journal: j, reflink: reflink}
	a := fs.alloc
	a.total, a.first, a.quarantine, a.cow = nblocks, 1, true, cow

	type owned struct {
		start, count int64
		ino          uint64
		page         int64
		unwritten    bool
	}
	var all []owned
	for ino, xs := range files {
		f := newFile(fs, ino)
		for _, x := range xs {
			if x.Count <= 0 || x.Page < 0 || x.Page > MaxPages-x.Count || x.Block < 1 || x.Block > nblocks-x.Count {
				return nil, fmt.Errorf("extentfs: restore: inode %d extent at page %d (blocks [%d, +%d)): outside the file or device: %w",
					ino, x.Page, x.Block, x.Count, syscall.EUCLEAN)
			}
			if y, ok := f.tree.atOrBefore(x.Page + x.Count - 1); ok && y.end() > x.Page {
				return nil, fmt.Errorf("extentfs: restore: inode %d: extents at pages %d and %d overlap: %w", ino, y.page, x.Page, syscall.EUCLEAN)
			}
			f.tree.insert(extent{page: x.Page, count: x.Count, block: x.Block, unwritten: x.Unwritten})
			f.blocks += x.Count
			all = append(all, owned{x.Block, x.Count, ino, x.Page, x.Unwritten})
		}
		fs.files[ino] = f
		fs.nextID = max(fs.nextID, ino)
	}
	slices.SortFunc(all, func(x, y owned) int { return cmp.Compare(x.start, y.start) })
	// Sweep the block space in order of extent starts: the active extents
	// at a block are its owners. A block with two owners is corruption,
	// unless reflink allows it and both are written: then it is shared.
	var active []owned // owners of the blocks at pos, by end
	pos := int64(1)
	advance := func(to int64) error {
		for pos < to {
			if len(active) == 0 {
				a.insertFree(run{pos, to - pos})
				pos = to
				break
			}
			end := to
			for _, o := range active {
				end = min(end, o.start+o.count)
			}
			if len(active) > 1 {
				p, o := active[0], active[1]
				if !reflink || p.unwritten || o.unwritten {
					return fmt.Errorf("extentfs: restore: block %d owned by inode %d (page %d) and inode %d (page %d): %w",
						pos, p.ino, p.page+pos-p.start, o.ino, o.page+pos-o.start, syscall.EUCLEAN)
				}
				a.refs.t.ReplaceOrInsert(refRun{pos, end - pos, int64(len(active))})
			}
			pos = end
			active = slices.DeleteFunc(active, func(o owned) bool { return o.start+o.count <= pos })
		}
		return nil
	}
	for _, o := range all {
		if err := advance(o.start); err != nil {
			return nil, err
		}
		active = append(active, o)
	}
	if err := advance(nblocks); err != nil {
		return nil, err
	}
	a.anyShared.Store(a.refs.t.Len() > 0)
	return fs, nil
}

// File returns the extent map of inode ino, restored or created.
func (fs *FS) File(ino uint64) (*File, bool) {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	f, ok := fs.files[ino]
	return f, ok
}

// Seal closes the current quarantine generation (meta.Quarantine).
func (fs *FS) Seal() uint64 { return fs.alloc.seal() }

// Release frees the quarantined blocks of generations <= gen
// (meta.Quarantine), discarding them first if SetDiscard asked for it:
// they are still quarantined then, so none can be allocated and written
// before its discard. A block found free already is corruption; the commit
// that calls Release has succeeded, so it is not failed: CheckInvariants
// reports it.
func (fs *FS) Release(gen uint64) {
	if fs.discard != nil && !fs.discardOff.Load() {
		for _, r := range fs.alloc.sealedUpTo(gen) {
			if !fs.discardRun(r.start, r.count) {
				break
			}
		}
	}
	fs.alloc.unquarantine(gen)
}

// SetDiscard makes Release discard the blocks it frees with fn (an image
// punches them out of its data file, so the space goes back to the host).
// Call it before the store is used. A failed discard costs only space: it
// is counted (see Discarded), and a device that cannot discard at all
// (EOPNOTSUPP) is not asked again.
func (fs *FS) SetDiscard(fn func(start, count int64) error) { fs.discard = fn }

// discardRun discards one run with fs.discard and reports whether to go on.
func (fs *FS) discardRun(start, count int64) bool {
	if err := fs.discard(start, count); err != nil {
		fs.discardFails.Add(1)
		if errors.Is(err, syscall.EOPNOTSUPP) {
			fs.discardOff.Store(true)
			return false
		}
		return true
	}
	fs.discarded.Add(count)
	return true
}

// Discarded returns the blocks Release discarded and the discards that
// failed.
func (fs *FS) Discarded() (blocks, failed int64) {
	return fs.discarded.Load(), fs.discardFails.Load()
}

// Trim discards with fn every free block of the device, as fstrim(8) does
// for a mounted filesystem, and returns how many it discarded. Quarantined
// blocks are not free yet: a commit first releases them. Each free run is
// kept from allocation while fn runs on it.
func (fs *FS) Trim(fn func(start, count int64) error) (int64, error) {
	return fs.alloc.trim(0, fs.alloc.total, fn)
}

// TrimExtents is Trim limited to the blocks of xs (the extents of files
// Restore dropped, say): the free ones among them are discarded; blocks
// another file still maps (reflink) are not free and are left alone.
func (fs *FS) TrimExtents(xs []meta.Extent, fn func(start, count int64) error) (int64, error) {
	var n int64
	for _, x := range xs {
		k, err := fs.alloc.trim(x.Block, x.Block+x.Count, fn)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// reclaim commits the journal when an allocation found only quarantined
// space, and reports whether that freed anything to retry with. If the
// commit fails it returns the commit's error, which the allocation must
// return instead of ENOSPC: the space exists, a failing device (EIO,
// usually) keeps it from being released.
func (fs *FS) reclaim() (bool, error) {
	if fs.journal == nil || fs.alloc.quarantined() == 0 {
		return false, nil
	}
	if err := fs.journal.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// DurableExtents returns the file's extents for a commit; ok is false once
// the file is released.
func (f *File) DurableExtents() (xs []meta.Extent, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return nil, false
	}
	xs = make([]meta.Extent, 0, f.tree.t.Len())
	f.tree.t.Ascend(func(x extent) bool {
		xs = append(xs, meta.Extent{Page: x.page, Count: x.count, Block: x.block, Unwritten: x.unwritten})
		return true
	})
	return xs, true
}
