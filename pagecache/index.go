package pagecache

import (
	"sync/atomic"
	"unsafe"
)

// pageIndex maps page offsets to pages: a radix tree of 64-way nodes, like
// Linux's xarray. Lookups are lockless (atomic loads down the tree); inserts
// and deletes are serialized by the owning Mapping's index lock. Empty
// subtrees are absent, so a range walk over a sparse file visits only the
// cached pages (a 1 TiB punch over an empty cache touches no node).
type pageIndex struct {
	root atomic.Pointer[indexRoot]
}

const (
	indexBits  = 6
	indexFan   = 1 << indexBits
	indexMask  = indexFan - 1
	maxPageIdx = int64(1)<<42 - 1 // 16 PiB files
)

type indexRoot struct {
	node   *indexNode
	height int // levels; height h covers pages [0, 64^h)
}

// indexNode slots hold *indexNode in inner nodes and *Page in leaves.
type indexNode struct {
	slots [indexFan]unsafe.Pointer // atomic
	count int                      // non-nil slots; +checklocks:Mapping.indexMu
}

func (r *indexRoot) span() int64 { return int64(1) << (indexBits * r.height) }

// lookup returns the page at index, or nil. It takes no lock and no
// reference: the caller pins the page with tryGet and rechecks.
func (x *pageIndex) lookup(index int64) *Page {
	r := x.root.Load()
	if r == nil || index >= r.span() {
		return nil
	}
	n := r.node
	for level := r.height - 1; ; level-- {
		slot := (index >> (indexBits * level)) & indexMask
		ptr := atomic.LoadPointer(&n.slots[slot])
		if ptr == nil {
			return nil
		}
		if level == 0 {
			return (*Page)(ptr)
		}
		n = (*indexNode)(ptr)
	}
}

// insert stores p at p.index. It reports false if a page is already there.
// The caller holds the index lock.
func (x *pageIndex) insert(p *Page) bool {
	r := x.root.Load()
	if r == nil {
		r = &indexRoot{node: new(indexNode), height: 1}
		x.root.Store(r)
	}
	for p.index >= r.span() {
		top := new(indexNode)
		// An empty old root (a fresh index growing for a high page) is not
		// kept: remove prunes only the nodes it empties, so an empty node
		// linked here would never be freed and the root never go nil.
		if r.node.count > 0 {
			top.slots[0] = unsafe.Pointer(r.node)
			top.count = 1
		}
		r = &indexRoot{node: top, height: r.height + 1}
		x.root.Store(r)
	}
	n := r.node
	for level := r.height - 1; level > 0; level-- {
		slot := (p.index >> (indexBits * level)) & indexMask
		child := (*indexNode)(atomic.LoadPointer(&n.slots[slot]))
		if child == nil {
			child = new(indexNode)
			atomic.StorePointer(&n.slots[slot], unsafe.Pointer(child))
			n.count++
		}
		n = child
	}
	slot := p.index & indexMask
	if atomic.LoadPointer(&n.slots[slot]) != nil {
		return false
	}
	atomic.StorePointer(&n.slots[slot], unsafe.Pointer(p))
	n.count++
	return true
}

// remove deletes p from the index if it is there, pruning empty nodes.
// The caller holds the index lock.
func (x *pageIndex) remove(p *Page) bool {
	r := x.root.Load()
	if r == nil || p.index >= r.span() {
		return false
	}
	var path [16]*indexNode
	n := r.node
	for level := r.height - 1; level > 0; level-- {
		path[level] = n
		slot := (p.index >> (indexBits * level)) & indexMask
		n = (*indexNode)(atomic.LoadPointer(&n.slots[slot]))
		if n == nil {
			return false
		}
	}
	slot := p.index & indexMask
	if atomic.LoadPointer(&n.slots[slot]) != unsafe.Pointer(p) {
		return false
	}
	atomic.StorePointer(&n.slots[slot], nil)
	n.count--
	// Unlink empty nodes bottom-up. A lockless reader still inside an
	// unlinked node sees only nil slots, which reads as a miss.
	for level := 1; level < r.height && n.count == 0; level++ {
		parent := path[level]
		pslot := (p.index >> (indexBits * level)) & indexMask
		atomic.StorePointer(&parent.slots[pslot], nil)
		parent.count--
		n = parent
	}
	if r.node.count == 0 {
		x.root.Store(nil)
	}
	return true
}

// pinRange takes a reference on up to cap(batch) pages with index in
// [start, end), in index order, and returns them in batch (reused). Frozen
// pages, being freed, are skipped.
func (m *Mapping) pinRange(start, end int64, batch []*Page) []*Page {
	batch = batch[:0]
	m.index.walk(start, end, func(p *Page) bool {
		if p.tryGet() {
			batch = append(batch, p)
		}
		return len(batch) < cap(batch)
	})
	return batch
}

// walk calls fn for each page with index in [start, end) in ascending
// order, until fn returns false. It is lockless: pages inserted or removed
// during the walk may or may not be seen.
func (x *pageIndex) walk(start, end int64, fn func(*Page) bool) {
	r := x.root.Load()
	if r == nil || start >= end {
		return
	}
	if end > r.span() {
		end = r.span()
	}
	walkNode(r.node, r.height-1, 0, start, end, fn)
}

func walkNode(n *indexNode, level int, base, start, end int64, fn func(*Page) bool) bool {
	shift := indexBits * level
	first := int64(0)
	if start > base {
		first = (start - base) >> shift
	}
	for slot := first; slot < indexFan; slot++ {
		lo := base + slot<<shift
		if lo >= end {
			return true
		}
		ptr := atomic.LoadPointer(&n.slots[slot])
		if ptr == nil {
			continue
		}
		if level == 0 {
			if !fn((*Page)(ptr)) {
				return false
			}
			continue
		}
		if !walkNode((*indexNode)(ptr), level-1, lo, start, end, fn) {
			return false
		}
	}
	return true
}
