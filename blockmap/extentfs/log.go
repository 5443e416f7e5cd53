package extentfs

import (
	"cmp"
	"slices"

	"github.com/holefs/holefs/blockmap"
)

// A log-structured store (f2fs-like) writes every page out of place, at
// the log head, and frees the block it replaces: the most hostile case for
// stale mappings, since every overwrite frees a block a cache may still
// map. Free space fragments as files are overwritten; the cleaner picks
// the segment with the fewest live blocks and the VFS relocates them to
// the head (relocation removes blocks from under the page cache, so it
// follows the same protocol as a punch).

// SegmentBlocks is the cleaner's unit: 1 MiB.
const SegmentBlocks = 256

// NewLog returns a log-structured store of a device of nblocks blocks.
func NewLog(nblocks int64) *FS {
	fs := New(nblocks)
	fs.alloc.log = true
	return fs
}

var _ blockmap.Cleaner = (*FS)(nil)

// CleanVictim returns the data-fork runs of the segment with the fewest
// live blocks (at least one free, so cleaning gains space; never the
// segment of the log head), by file and page. It returns nothing when no
// segment is worth cleaning, and for a store that is not a log.
func (fs *FS) CleanVictim() []blockmap.Owner {
	a := fs.alloc
	if !a.log {
		return nil
	}
	a.mu.Lock()
	nseg := (a.total + SegmentBlocks - 1) / SegmentBlocks
	free := make([]int64, nseg)
	a.free.Ascend(func(r run) bool {
		for b := r.start; b < r.end(); {
			s := b / SegmentBlocks
			e := min(r.end(), (s+1)*SegmentBlocks)
			free[s] += e - b
			b = e
		}
		return true
	})
	headSeg := a.head / SegmentBlocks
	a.mu.Unlock()
	victim, best := int64(-1), int64(SegmentBlocks)
	for s := range nseg {
		size := min(a.total, (s+1)*SegmentBlocks) - s*SegmentBlocks
		live := size - free[s]
		if s == 0 {
			live -= a.first
		}
		if s == headSeg || free[s] == 0 || live <= 0 {
			continue
		}
		if live < best {
			victim, best = s, live
		}
	}
	if victim < 0 {
		return nil
	}
	lo, hi := victim*SegmentBlocks, min(a.total, (victim+1)*SegmentBlocks)
	fs.filesMu.Lock()
	files := make([]*File, 0, len(fs.files))
	for _, f := range fs.files {
		files = append(files, f)
	}
	fs.filesMu.Unlock()
	var owners []blockmap.Owner
	for _, f := range files {
		f.mu.RLock()
		f.tree.t.Ascend(func(x extent) bool {
			b0, b1 := max(x.block, lo), min(x.block+x.count, hi)
			if b0 < b1 && !x.unwritten {
				owners = append(owners, blockmap.Owner{Ino: f.id, Page: x.page + (b0 - x.block), Count: b1 - b0})
			}
			return true
		})
		f.mu.RUnlock()
	}
	slices.SortFunc(owners, func(x, y blockmap.Owner) int {
		return cmp.Or(cmp.Compare(x.Ino, y.Ino), cmp.Compare(x.Page, y.Page))
	})
	return owners
}
