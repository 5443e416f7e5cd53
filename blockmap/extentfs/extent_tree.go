package extentfs

import (
	"github.com/google/btree"

	"github.com/holefs/holefs/blockmap"
)

// extent maps file pages [page, page+count) to device blocks
// [block, block+count). Pages not covered by any extent are holes.
type extent struct {
	page, count, block int64
	unwritten          bool
}

func (x extent) end() int64 { return x.page + x.count }

// joins reports whether y continues x in both file and device space with the
// same kind, so the two must be stored as one extent: keeping maps maximal
// keeps the tree small and makes Lookup return the longest run it can.
func (x extent) joins(y extent) bool {
	return x.end() == y.page && x.block+x.count == y.block && x.unwritten == y.unwritten
}

func (x extent) kind() blockmap.Kind {
	if x.unwritten {
		return blockmap.Unwritten
	}
	return blockmap.Mapped
}

func (x extent) public() blockmap.Extent {
	return blockmap.Extent{Page: x.page, Count: x.count, Kind: x.kind(), Block: x.block}
}

// hole is a gap to fill; goal is the block after its preceding extent, -1
// if it has none.
type hole struct {
	page, count, goal int64
}

// extentTree is a B-tree of non-overlapping extents keyed by file page.
// Every lookup is one descent, O(log n); range operations add O(log n) per
// extent they touch. Callers hold the file's extent-map lock.
type extentTree struct {
	t *btree.BTreeG[extent]
}

func newExtentTree() extentTree {
	return extentTree{btree.NewG(16, func(x, y extent) bool { return x.page < y.page })}
}

// atOrBefore returns the extent with the greatest start page <= p.
func (et extentTree) atOrBefore(p int64) (extent, bool) {
	var got extent
	var ok bool
	et.t.DescendLessOrEqual(extent{page: p}, func(x extent) bool {
		got, ok = x, true
		return false
	})
	return got, ok
}

// containing returns the extent covering page p.
func (et extentTree) containing(p int64) (extent, bool) {
	x, ok := et.atOrBefore(p)
	if !ok || x.end() <= p {
		return extent{}, false
	}
	return x, true
}

// from iterates, in page order, over every extent that covers p or starts
// after it.
func (et extentTree) from(p int64, fn func(extent) bool) {
	if x, ok := et.containing(p); ok {
		p = x.page
	}
	et.t.AscendGreaterOrEqual(extent{page: p}, fn)
}

// splitAt makes p an extent boundary, so that range operations can work on
// whole extents. It does not change what any page maps to.
func (et extentTree) splitAt(p int64) {
	x, ok := et.containing(p)
	if !ok || x.page == p {
		return
	}
	left := x
	left.count = p - x.page
	right := extent{page: p, count: x.end() - p, block: x.block + left.count, unwritten: x.unwritten}
	et.t.ReplaceOrInsert(left) // same key: replaces x
	et.t.ReplaceOrInsert(right)
}

// cut removes and returns the extents inside [s, e), splitting the extents
// that straddle s or e first.
func (et extentTree) cut(s, e int64) []extent {
	et.splitAt(s)
	et.splitAt(e)
	var out []extent
	et.t.AscendRange(extent{page: s}, extent{page: e}, func(x extent) bool {
		out = append(out, x)
		return true
	})
	for _, x := range out {
		et.t.Delete(x)
	}
	return out
}

// cutFrom removes and returns every extent at or after s.
func (et extentTree) cutFrom(s int64) []extent {
	et.splitAt(s)
	var out []extent
	et.t.AscendGreaterOrEqual(extent{page: s}, func(x extent) bool {
		out = append(out, x)
		return true
	})
	for _, x := range out {
		et.t.Delete(x)
	}
	return out
}

// insert adds x into a range known to be empty and merges it with the
// extents on either side when they join it, so the tree stays maximal no
// matter what order extents are put back in.
func (et extentTree) insert(x extent) {
	if l, ok := et.atOrBefore(x.page - 1); ok && l.joins(x) {
		et.t.Delete(l)
		x = extent{page: l.page, count: l.count + x.count, block: l.block, unwritten: x.unwritten}
	}
	if r, ok := et.t.Get(extent{page: x.end()}); ok && x.joins(r) {
		et.t.Delete(r)
		x.count += r.count
	}
	et.t.ReplaceOrInsert(x)
}

// holes lists the gaps in [s, e) with their allocation goals. A gap's goal
// comes from the extent just before it, which for every gap but the first is
// an extent inside the range, so the goals are known before anything is
// allocated and allocation can be all-or-nothing.
func (et extentTree) holes(s, e int64) []hole {
	var hs []hole
	pos, goal := s, int64(-1)
	if x, ok := et.atOrBefore(s); ok {
		goal = x.block + x.count
		pos = max(pos, x.end())
	}
	if pos < e {
		et.t.AscendRange(extent{page: pos}, extent{page: e}, func(x extent) bool {
			if x.page > pos {
				hs = append(hs, hole{pos, x.page - pos, goal})
			}
			pos, goal = x.end(), x.block+x.count
			return pos < e
		})
	}
	if pos < e {
		hs = append(hs, hole{pos, e - pos, goal})
	}
	return hs
}

func (et extentTree) all() []extent {
	out := make([]extent, 0, et.t.Len())
	et.t.Ascend(func(x extent) bool {
		out = append(out, x)
		return true
	})
	return out
}
