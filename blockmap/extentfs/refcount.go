package extentfs

import "github.com/google/btree"

// refRun says that every block of [start, start+count) is referenced by
// refs block-map entries. Blocks with one reference, the usual case, are
// not in the tree at all (XFS's refcount btree does the same), so a
// filesystem that never clones pays nothing.
type refRun struct {
	start, count int64
	refs         int64 // >= 2
}

func (r refRun) end() int64 { return r.start + r.count }

// refTree holds the shared blocks' reference counts, ordered by block. It
// is guarded by the allocator lock: freeing consults it.
type refTree struct {
	t *btree.BTreeG[refRun]
}

func newRefTree() refTree {
	return refTree{btree.NewG(16, func(x, y refRun) bool { return x.start < y.start })}
}

// splitAt makes b a run boundary.
func (rt refTree) splitAt(b int64) {
	var x refRun
	found := false
	rt.t.DescendLessOrEqual(refRun{start: b}, func(r refRun) bool {
		x, found = r, true
		return false
	})
	if !found || x.start == b || x.end() <= b {
		return
	}
	rt.t.ReplaceOrInsert(refRun{x.start, b - x.start, x.refs})
	rt.t.ReplaceOrInsert(refRun{b, x.end() - b, x.refs})
}

// within returns the runs inside [r.start, r.end()) after splitting at its
// edges.
func (rt refTree) within(r run) []refRun {
	rt.splitAt(r.start)
	rt.splitAt(r.end())
	var out []refRun
	rt.t.AscendRange(refRun{start: r.start}, refRun{start: r.end()}, func(x refRun) bool {
		out = append(out, x)
		return true
	})
	return out
}

// addRef adds one reference to every block of r (a clone shares them).
func (rt refTree) addRef(r run) {
	pos := r.start
	for _, x := range rt.within(r) {
		if x.start > pos {
			rt.t.ReplaceOrInsert(refRun{pos, x.start - pos, 2})
		}
		x.refs++
		rt.t.ReplaceOrInsert(x)
		pos = x.end()
	}
	if pos < r.end() {
		rt.t.ReplaceOrInsert(refRun{pos, r.end() - pos, 2})
	}
}

// dropRef removes one reference from every block of r and returns the
// blocks that had only that one: they are free now.
func (rt refTree) dropRef(r run) []run {
	if rt.t.Len() == 0 {
		return []run{r}
	}
	var free []run
	pos := r.start
	for _, x := range rt.within(r) {
		if x.start > pos {
			free = append(free, run{pos, x.start - pos})
		}
		if x.refs--; x.refs < 2 {
			rt.t.Delete(x)
		} else {
			rt.t.ReplaceOrInsert(x)
		}
		pos = x.end()
	}
	if pos < r.end() {
		free = append(free, run{pos, r.end() - pos})
	}
	return free
}

// shared returns the first shared run at or after block r.start inside r,
// or ok false if r has no shared block.
func (rt refTree) firstShared(r run) (s run, ok bool) {
	if rt.t.Len() == 0 {
		return run{}, false
	}
	rt.t.DescendLessOrEqual(refRun{start: r.start}, func(x refRun) bool {
		if x.end() > r.start {
			s, ok = run{r.start, min(x.end(), r.end()) - r.start}, true
		}
		return false
	})
	if ok {
		return s, true
	}
	rt.t.AscendRange(refRun{start: r.start}, refRun{start: r.end()}, func(x refRun) bool {
		s, ok = run{x.start, min(x.end(), r.end()) - x.start}, true
		return false
	})
	return s, ok
}

// containing returns the run holding block b.
func (rt refTree) containing(b int64) (refRun, bool) {
	var x refRun
	found := false
	rt.t.DescendLessOrEqual(refRun{start: b}, func(r refRun) bool {
		x, found = r, true
		return false
	})
	if !found || x.end() <= b {
		return refRun{}, false
	}
	return x, true
}
