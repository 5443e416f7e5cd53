package extentfs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/meta"
)

// File is the extent map of one extentfs file. It implements blockmap.File
// and is safe for concurrent use: every method takes the file's extent-map
// lock, exclusive for changes and shared for Lookup, NextData, Blocks and
// Extents, and takes the allocator lock inside it when it allocates or frees.
type File struct {
	fs *FS
	id uint64 // orders extent-map locks of different files (CheckInvariants)

	mu       lockcheck.RWMutex // RankExtentMap, key id
	entry    *meta.Entry       // the inode's journal entry; nil without an image; immutable
	tree     extentTree        // guarded by mu; the data fork: what reads see
	blocks   int64             // guarded by mu; blocks of the data fork, kept so Blocks is O(1)
	cow      extentTree        // guarded by mu; the CoW fork: blocks reserved for out-of-place writes (cow.go)
	inflight extentTree        // guarded by mu; CoW blocks being written, remapped by CommitWrite
	cowCount int64             // guarded by mu; blocks in cow and inflight
	released bool              // guarded by mu
}

var _ blockmap.File = (*File)(nil)

func newFile(fs *FS, id uint64) *File {
	f := &File{fs: fs, id: id, tree: newExtentTree(), cow: newExtentTree(), inflight: newExtentTree(),
		entry: fs.journal.Entry(id)}
	f.mu.Init(lockcheck.RankExtentMap, uintptr(id))
	return f
}

// Lookup returns the extent containing page index, clipped to
// [index, index+max). A hole extends to the next allocated page, clipped;
// its Block is -1 so that a caller that wrongly does I/O to a hole gets an
// error from the device instead of touching block 0, which belongs to some
// file. Lookups past MaxPages are holes, not errors: reading there is
// harmless. Cost: O(log n).
func (f *File) Lookup(index, max int64) (blockmap.Extent, error) {
	if err := checkSpan("lookup", index, max); err != nil {
		return blockmap.Extent{}, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return blockmap.Extent{}, errReleased("lookup")
	}
	end := index + max
	if x, ok := f.tree.containing(index); ok {
		off := index - x.page
		e := blockmap.Extent{Page: index, Count: min(x.end(), end) - index, Kind: x.kind(), Block: x.block + off}
		if !x.unwritten {
			if sh, ok := f.fs.alloc.firstShared(run{e.Block, e.Count}); ok {
				if sh.start == e.Block {
					e.Count, e.Shared = sh.count, true
				} else {
					e.Count = sh.start - e.Block
				}
			}
		}
		return e, nil
	}
	holeEnd := end
	f.tree.t.AscendGreaterOrEqual(extent{page: index}, func(x extent) bool {
		holeEnd = min(holeEnd, x.page)
		return false
	})
	return blockmap.Extent{Page: index, Count: holeEnd - index, Kind: blockmap.Hole, Block: -1}, nil
}

// Allocate backs every hole in [index, index+n) with new Unwritten blocks,
// each hole starting at the block after its preceding extent when that block
// is free, otherwise at the lowest free blocks. On ENOSPC nothing changes.
// Cost: O((h+k) log n + r log F) for h holes, k extents in range, r runs
// allocated and F free runs.
func (f *File) Allocate(index, n int64) error {
	return f.change("allocate", index, n, func() error {
		return f.fill(f.tree.holes(index, index+n), f.cowNeeds(index, index+n))
	})
}

// change runs fn with the extent-map lock held exclusive, after checking
// the range and that the file is live; fn's error is wrapped with the
// operation and its range. On an image, an fn that fails with ENOSPC while
// freed blocks wait in quarantine runs once more after a commit has
// released them (fn changes nothing when it fails for want of space).
func (f *File) change(op string, index, n int64, fn func() error) error {
	if err := checkRange(op, index, n); err != nil {
		return err
	}
	for retried := false; ; retried = true {
		f.mu.Lock()
		err := errReleased(op)
		if !f.released {
			err = fn()
		}
		f.mu.Unlock()
		if err == nil {
			return nil
		}
		if !retried && errors.Is(err, syscall.ENOSPC) {
			freed, cerr := f.fs.reclaim()
			if freed {
				continue
			}
			if cerr != nil {
				err = cerr
			}
		}
		if f.released {
			return err
		}
		return fmt.Errorf("extentfs: %s(index=%d, n=%d): %w", op, index, n, err)
	}
}

// dirty queues the file for the next commit. Every change calls it under
// the extent-map lock before it frees a block, which the quarantine's
// correctness rests on (package meta).
func (f *File) dirty() { f.entry.Dirty() }

// fill allocates and maps the holes, and reserves the CoW blocks of the
// pages in cows (cow.go), all or none.
func (f *File) fill(hs []hole, cows []hole) error {
	if len(hs) == 0 && len(cows) == 0 {
		return nil
	}
	f.dirty()
	reqs := make([]allocReq, 0, len(hs)+len(cows))
	for _, h := range append(hs, cows...) {
		reqs = append(reqs, allocReq{goal: h.goal, n: h.count})
	}
	runs, err := f.fs.alloc.alloc(reqs)
	if err != nil {
		return err
	}
	for i, h := range hs {
		page := h.page
		for _, r := range runs[i] {
			f.tree.insert(extent{page: page, count: r.count, block: r.start, unwritten: true})
			page += r.count
		}
		f.blocks += h.count
	}
	for i, h := range cows {
		page := h.page
		for _, r := range runs[len(hs)+i] {
			f.cow.insert(extent{page: page, count: r.count, block: r.start, unwritten: true})
			page += r.count
		}
		f.cowCount += h.count
	}
	return nil
}

// MarkWritten converts the Unwritten extents in [index, index+n) to Mapped.
// Holes in the range stay holes: the data written there has no block to
// claim, and inventing one would map garbage. Cost: O((k+1) log n).
func (f *File) MarkWritten(index, n int64) error {
	return f.change("markwritten", index, n, func() error { return f.markWritten(index, index+n) })
}

func (f *File) markWritten(index, e int64) error {
	anyUnwritten := false
	f.tree.from(index, func(x extent) bool {
		if x.page >= e {
			return false
		}
		anyUnwritten = x.unwritten
		return !anyUnwritten
	})
	if !anyUnwritten {
		// Writeback re-marks written ranges; skip the split and re-merge.
		return nil
	}
	f.dirty()
	for _, x := range f.tree.cut(index, e) {
		x.unwritten = false
		f.tree.insert(x)
	}
	return nil
}

// Punch removes [index, index+n) from the map and frees its blocks at once,
// which is what makes a stale page-cache mapping of them dangerous: the next
// allocation anywhere reuses them. Cost: O((k+1) log n + k log F).
func (f *File) Punch(index, n int64) error {
	return f.change("punch", index, n, func() error {
		err := f.drop(f.tree.cut(index, index+n))
		return errors.Join(err, f.dropCow(f.cow.cut(index, index+n)))
	})
}

// drop frees the blocks of extents already removed from the tree.
func (f *File) drop(xs []extent) error {
	if len(xs) == 0 {
		return nil
	}
	f.dirty()
	runs := make([]run, len(xs))
	for i, x := range xs {
		runs[i] = run{x.block, x.count}
		f.blocks -= x.count
	}
	return f.fs.alloc.release(runs)
}

// ZeroRange makes [index, index+n) read as zeros while keeping it
// allocated: Mapped extents become Unwritten and holes get new Unwritten
// blocks. The blocks needed are allocated before the map is touched, so on
// ENOSPC nothing changes — except for shared blocks and, out of place,
// all blocks of the range, which are freed first and stay holes then.
// Cost: O((h+k+1) log n + r log F).
func (f *File) ZeroRange(index, n int64) error {
	return f.change("zerorange", index, n, func() error {
		e := index + n
		// A shared block must not become an unwritten block of this file:
		// unwritten blocks are written in place. Punch the shared parts
		// first; they are holes now and get new blocks below (if that
		// fails for want of space they stay holes, which read as zeros
		// too).
		if err := f.punchShared(index, e); err != nil {
			return err
		}
		// Out of place (data checksums, a log), the blocks the durable map
		// holds as written must not be written again before the next
		// commit: made unwritten they would be, in place, and a crash
		// would pair new data with the old checksum. Free them (they wait
		// in quarantine) and zero the range with new blocks, as for
		// shared ones.
		if f.fs.alloc.outOfPlace() {
			if err := f.drop(f.tree.cut(index, e)); err != nil {
				return err
			}
		}
		if err := f.fill(f.tree.holes(index, e), nil); err != nil {
			return err
		}
		f.dirty()
		for _, x := range f.tree.cut(index, e) {
			x.unwritten = true
			f.tree.insert(x)
		}
		return f.dropCow(f.cow.cut(index, e))
	})
}

// Collapse removes [index, index+n), frees its blocks and shifts every later
// extent n pages down. Cost: O((k+m+1) log n + k log F) for k extents
// removed and m extents shifted; shifting is linear in the extents after
// the range, as in ext4, because the tree is keyed by absolute page.
func (f *File) Collapse(index, n int64) error {
	return f.change("collapse", index, n, func() error {
		e := index + n
		f.dirty()
		// Dirty pages past index were written back by the caller, so the
		// CoW fork from index on holds only stale reservations.
		err := errors.Join(f.drop(f.tree.cut(index, e)), f.dropCow(f.cow.cutFrom(index)))
		// The map change completes even if freeing reported corruption, so
		// the file is left in the shape the caller asked for.
		for _, x := range f.tree.cutFrom(e) {
			x.page -= n
			f.tree.insert(x)
		}
		return err
	})
}

// Insert shifts every extent at or after index n pages up, leaving an
// n-page hole at index; an extent straddling index is split. It fails with
// EFBIG, changing nothing, if the last extent would end past MaxPages.
// Cost: O((m+1) log n) for m extents shifted.
func (f *File) Insert(index, n int64) error {
	return f.change("insert", index, n, func() error {
		if last, ok := f.tree.t.Max(); ok && last.end() > index && last.end() > MaxPages-n {
			return fmt.Errorf("last extent would end past the maximum file size of %d pages: %w", MaxPages, syscall.EFBIG)
		}
		f.dirty()
		if err := f.dropCow(f.cow.cutFrom(index)); err != nil {
			return err
		}
		for _, x := range f.tree.cutFrom(index) {
			x.page += n
			// The shifted extents were maximal before and stay so: nothing
			// can join them across the new hole.
			f.tree.t.ReplaceOrInsert(x)
		}
		return nil
	})
}

// Truncate removes every page at or after index and frees its blocks.
// Cost: O((k+1) log n + k log F) for k extents removed.
func (f *File) Truncate(index int64) error {
	const op = "truncate"
	if err := checkIndex(op, index); err != nil {
		return err
	}
	if index > MaxPages {
		return fmt.Errorf("extentfs: %s(index=%d): past the maximum file size of %d pages: %w", op, index, MaxPages, syscall.EFBIG)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return errReleased(op)
	}
	if err := errors.Join(f.drop(f.tree.cutFrom(index)), f.dropCow(f.cow.cutFrom(index))); err != nil {
		return fmt.Errorf("extentfs: %s(index=%d): %w", op, index, err)
	}
	return nil
}

// NextData returns the first page >= index in a Mapped extent, or -1.
// Unwritten extents are skipped because they read as zeros, which is what
// SEEK_DATA callers want treated as a hole. Cost: O(log n + u) for u
// Unwritten extents skipped.
func (f *File) NextData(index int64) (int64, error) {
	const op = "nextdata"
	if err := checkIndex(op, index); err != nil {
		return -1, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return -1, errReleased(op)
	}
	next := int64(-1)
	f.tree.from(index, func(x extent) bool {
		if x.unwritten {
			return true
		}
		next = max(x.page, index)
		return false
	})
	return next, nil
}

// Blocks returns the number of blocks the file owns, Mapped and Unwritten;
// 0 once released. Cost: O(1).
func (f *File) Blocks() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.blocks
}

// Release frees every block of the file. The File is unusable after: every
// later call, including another Release, fails with EIO, so a use after
// release cannot silently map blocks that now belong to someone else.
// Cost: O(n + n log F).
func (f *File) Release() error {
	const op = "release"
	f.mu.Lock()
	if f.released {
		f.mu.Unlock()
		return errReleased(op)
	}
	xs := f.tree.all()
	f.tree.t.Clear(false)
	f.released = true
	err := errors.Join(f.drop(xs), f.dropCow(f.cow.all()), f.dropCow(f.inflight.all()))
	f.cow.t.Clear(false)
	f.inflight.t.Clear(false)
	f.mu.Unlock()
	// Outside the extent-map lock: filesMu is taken outermost by
	// CheckInvariants.
	f.fs.forget(f)
	if err != nil {
		return fmt.Errorf("extentfs: %s: %w", op, err)
	}
	return nil
}

// Extents returns a snapshot of the file's allocated extents in page order;
// holes are the gaps between them. It is meant for tests, fsck and
// debugging. Cost: O(n).
func (f *File) Extents() []blockmap.Extent {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return nil
	}
	out := make([]blockmap.Extent, 0, f.tree.t.Len())
	for _, x := range f.tree.all() {
		out = append(out, x.public())
	}
	return out
}
