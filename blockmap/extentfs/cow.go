package extentfs

import (
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// Out-of-place writes (XFS's CoW fork, f2fs's log).
//
// A shared block (after Clone) must not be written in place: the other
// files that map it would see the write. Nor, in a log-structured store,
// may any written block. So a write reserves a new block for each such page
// in the file's CoW fork when it is made (Allocate, called by write,
// page_mkwrite and direct I/O before any byte is copied: ENOSPC surfaces
// there, never at writeback). Reads keep using the data fork, so a partial
// page write still reads the old bytes from the old block. Writeback asks
// WriteTarget where to write: a page with a reservation goes to it (the
// block moves to the in-flight fork), and CommitWrite, after the data is
// on the device, remaps the data fork to the new block and releases the
// old one (one reference of a shared block; the block itself in a log).

var (
	_ blockmap.Remapper = (*File)(nil)
	_ blockmap.Cloner   = (*File)(nil)
)

// cowNeeds lists the pages of [s, e) that must be written out of place and
// have no reservation yet, as holes to allocate. The caller holds mu.
func (f *File) cowNeeds(s, e int64) []hole {
	var need []hole
	add := func(page, count int64) {
		// Subtract what the CoW fork already reserves.
		pos := page
		end := page + count
		f.cow.from(pos, func(c extent) bool {
			if c.page >= end {
				return false
			}
			if c.page > pos {
				need = append(need, hole{pos, c.page - pos, -1})
			}
			pos = max(pos, c.end())
			return pos < end
		})
		if pos < end {
			need = append(need, hole{pos, end - pos, -1})
		}
	}
	f.tree.from(s, func(x extent) bool {
		if x.page >= e {
			return false
		}
		if x.unwritten {
			return true // holds no data yet: written in place
		}
		lo, hi := max(x.page, s), min(x.end(), e)
		if f.fs.alloc.outOfPlace() {
			add(lo, hi-lo)
			return true
		}
		for lo < hi {
			b := x.block + (lo - x.page)
			sh, ok := f.fs.alloc.firstShared(run{b, hi - lo})
			if !ok {
				break
			}
			p := x.page + (sh.start - x.block)
			add(p, sh.count)
			lo = p + sh.count
		}
		return true
	})
	return need
}

// punchShared punches the shared blocks of [s, e) out of the data fork,
// dropping this file's reference. The caller holds mu.
func (f *File) punchShared(s, e int64) error {
	var parts []hole
	f.tree.from(s, func(x extent) bool {
		if x.page >= e {
			return false
		}
		lo, hi := max(x.page, s), min(x.end(), e)
		for lo < hi {
			sh, ok := f.fs.alloc.firstShared(run{x.block + (lo - x.page), hi - lo})
			if !ok {
				break
			}
			p := x.page + (sh.start - x.block)
			parts = append(parts, hole{p, sh.count, -1})
			lo = p + sh.count
		}
		return true
	})
	var xs []extent
	for _, h := range parts {
		xs = append(xs, f.tree.cut(h.page, h.page+h.count)...)
	}
	return f.drop(xs)
}

// dropCow releases reserved or in-flight blocks already removed from
// their fork. The caller holds mu.
func (f *File) dropCow(xs []extent) error {
	if len(xs) == 0 {
		return nil
	}
	runs := make([]run, len(xs))
	for i, x := range xs {
		runs[i] = run{x.block, x.count}
		f.cowCount -= x.count
	}
	return f.fs.alloc.release(runs)
}

// WritesInPlace reports whether the page cache may remember a page's block
// and write there again without asking: not in a log-structured store, or
// on an image with data checksums, where every write moves.
func (f *File) WritesInPlace() bool { return !f.fs.alloc.outOfPlace() }

// WriteTarget returns where to write the pages starting at index (at most
// max of them): a run that is written in place (Mapped or Unwritten, as
// Lookup would say), or out of place (a new block; CommitWrite or
// AbortWrite must follow), or a hole. Cost: O(log n) plus, for an
// unreserved shared page, an allocation.
func (f *File) WriteTarget(index, max int64) (e blockmap.Extent, outOfPlace bool, err error) {
	if err := checkSpan("writetarget", index, max); err != nil {
		return blockmap.Extent{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return blockmap.Extent{}, false, errReleased("writetarget")
	}
	end := index + max
	if c, ok := f.cow.containing(index); ok {
		k := min(c.end(), end) - index
		for _, x := range f.cow.cut(index, index+k) {
			f.inflight.insert(x)
		}
		return blockmap.Extent{Page: index, Count: k, Kind: blockmap.Unwritten, Block: c.block + (index - c.page)}, true, nil
	}
	f.cow.t.AscendGreaterOrEqual(extent{page: index}, func(c extent) bool {
		end = min(end, c.page)
		return false
	})
	x, ok := f.tree.containing(index)
	if !ok {
		holeEnd := end
		f.tree.t.AscendGreaterOrEqual(extent{page: index}, func(y extent) bool {
			holeEnd = min(holeEnd, y.page)
			return false
		})
		return blockmap.Extent{Page: index, Count: holeEnd - index, Kind: blockmap.Hole, Block: -1}, false, nil
	}
	off := index - x.page
	e = blockmap.Extent{Page: index, Count: min(x.end(), end) - index, Kind: x.kind(), Block: x.block + off}
	if x.unwritten {
		return e, false, nil
	}
	moveAll := f.fs.alloc.outOfPlace()
	if !moveAll {
		sh, shared := f.fs.alloc.firstShared(run{e.Block, e.Count})
		switch {
		case !shared:
			return e, false, nil
		case sh.start > e.Block:
			e.Count = sh.start - e.Block // the private part before the shared one
			return e, false, nil
		}
		e.Count = sh.count
	}
	// Out of place with no reservation: a page dirtied by a path that did
	// not reserve (only LockNone races allow it). Allocate now.
	f.dirty()
	runs, err := f.fs.alloc.alloc([]allocReq{{goal: -1, n: e.Count}})
	if err != nil {
		return blockmap.Extent{}, false, fmt.Errorf("extentfs: writetarget(index=%d): %w", index, err)
	}
	page := index
	for i, r := range runs[0] {
		x := extent{page: page, count: r.count, block: r.start, unwritten: true}
		if i == 0 {
			f.inflight.insert(x)
			e = blockmap.Extent{Page: page, Count: r.count, Kind: blockmap.Unwritten, Block: r.start}
		} else {
			f.cow.insert(x) // the next pages' reservations
		}
		f.cowCount += r.count
		page += r.count
	}
	return e, true, nil
}

// CommitWrite makes the in-flight blocks of [index, index+n), whose data
// is on the device, the file's blocks, and releases the blocks they
// replace.
func (f *File) CommitWrite(index, n int64) error {
	return f.change("commitwrite", index, n, func() error {
		f.dirty()
		var errs error
		for _, x := range f.inflight.cut(index, index+n) {
			if err := f.drop(f.tree.cut(x.page, x.end())); err != nil && errs == nil {
				errs = err
			}
			x.unwritten = false
			f.tree.insert(x)
			f.blocks += x.count
			f.cowCount -= x.count
		}
		return errs
	})
}

// AbortWrite releases the in-flight blocks of [index, index+n) after
// their write failed; the data fork is unchanged.
func (f *File) AbortWrite(index, n int64) error {
	return f.change("abortwrite", index, n, func() error {
		return f.dropCow(f.inflight.cut(index, index+n))
	})
}

// CanClone reports whether files of this store can share blocks: not on
// an image made without the reflink feature.
func (f *File) CanClone() bool { return f.fs.journal == nil || f.fs.reflink }

// CloneFrom makes pages [dstIdx, dstIdx+n) of f share the blocks of pages
// [srcIdx, srcIdx+n) of src (FICLONERANGE), dropping what f mapped there.
// Holes and unwritten extents of src become holes of f. src may be f with
// a range that does not overlap. The caller holds both files' inode and
// invalidate locks exclusive and wrote back both ranges.
func (f *File) CloneFrom(from blockmap.File, srcIdx, dstIdx, n int64) error {
	src, ok := from.(*File)
	if !ok {
		return fmt.Errorf("extentfs: clone: source is not an extentfs file: %w", syscall.EXDEV)
	}
	if err := checkRange("clone", srcIdx, n); err != nil {
		return err
	}
	if err := checkRange("clone", dstIdx, n); err != nil {
		return err
	}
	switch {
	case src.fs != f.fs:
		return fmt.Errorf("extentfs: clone: files of different filesystems: %w", syscall.EXDEV)
	case !f.CanClone():
		return fmt.Errorf("extentfs: clone: the image was made without reflink: %w", syscall.EOPNOTSUPP)
	case src == f && srcIdx < dstIdx+n && dstIdx < srcIdx+n:
		return fmt.Errorf("extentfs: clone: overlapping ranges of one file: %w", syscall.EINVAL)
	}
	first, second := f, src
	if second.id < first.id {
		first, second = second, first
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	if f.released || src.released {
		return errReleased("clone")
	}
	f.dirty()
	err := f.drop(f.tree.cut(dstIdx, dstIdx+n))
	if cerr := f.dropCow(f.cow.cut(dstIdx, dstIdx+n)); err == nil {
		err = cerr
	}
	var share []run
	var add []extent
	srcEnd := srcIdx + n
	src.tree.from(srcIdx, func(x extent) bool {
		if x.page >= srcEnd {
			return false
		}
		if x.unwritten {
			return true
		}
		lo, hi := max(x.page, srcIdx), min(x.end(), srcEnd)
		b := x.block + (lo - x.page)
		share = append(share, run{b, hi - lo})
		add = append(add, extent{page: dstIdx + (lo - srcIdx), count: hi - lo, block: b})
		return true
	})
	f.fs.alloc.share(share)
	for _, x := range add {
		f.tree.insert(x)
		f.blocks += x.count
	}
	return err
}
