package ext2fs

import (
	"fmt"
	"slices"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/meta"
)

// File is the block map of one ext2fs file: i_block[15] and the tree of
// indirect blocks below it. It implements blockmap.File and is safe for
// concurrent use: every method takes the map lock, exclusive for changes
// and shared for Lookup, NextData, Blocks and Roots.
type File struct {
	fs *FS
	id uint64 // orders map locks of different files (Check)

	mu       lockcheck.RWMutex // RankExtentMap, key id
	direct   [NDirect]uint32   // +checklocks:mu; i_block[0..11]
	dresv    [NDirect]uint32   // +checklocks:mu; reservations of the direct pages (memory only)
	top      [3]*node          // +checklocks:mu; the single-, double- and triple-indirect trees
	blocks   int64             // +checklocks:mu; data blocks, reserved ones and indirect blocks
	released bool              // +checklocks:mu

	// Images only (durable.go).
	entry    *meta.Entry        // the inode's journal entry; immutable
	dirty    map[*node]struct{} // +checklocks:mu; nodes changed since the last commit wrote them out
	durRoots [NRoots]uint32     // +checklocks:mu; i_block as of the last write-out: what a commit records
}

var _ blockmap.File = (*File)(nil)

func newFile(fs *FS, id uint64) *File {
	f := &File{fs: fs, id: id}
	if fs.journal != nil {
		f.entry, f.dirty = fs.journal.Entry(id), make(map[*node]struct{})
	}
	f.mu.Init(lockcheck.RankExtentMap, uintptr(id))
	return f
}

// slot returns the pointer and the reservation of page p: in the inode
// for a direct page (n nil), else in slot i of leaf node n; n is nil and
// i -1 when an indirect block on the way is missing.
func (f *File) slot(p int64) (n *node, i int) {
	if p < NDirect {
		return nil, int(p)
	}
	t := tree(p)
	n = f.top[t]
	off := p - treeBase[t]
	for n != nil && n.depth > 1 {
		s := span(n.depth)
		n = n.kids[off/s]
		off %= s
	}
	if n == nil {
		return nil, -1
	}
	return n, int(off)
}

// get returns page p's pointer and reservation.
func (f *File) get(p int64) (ptr, resv uint32) {
	n, i := f.slot(p)
	switch {
	case i < 0:
		return 0, 0
	case n == nil:
		return f.direct[i], f.dresv[i]
	}
	return n.ptr[i], n.resv[i]
}

// scan calls fn, in page order, for every page in [lo, hi) with a
// pointer or a reservation, skipping missing indirect blocks whole, until
// fn returns false.
func (f *File) scan(lo, hi int64, fn func(p int64, ptr, resv uint32) bool) {
	for p := lo; p < min(hi, NDirect); p++ {
		if f.direct[p]|f.dresv[p] != 0 && !fn(p, f.direct[p], f.dresv[p]) {
			return
		}
	}
	for t, n := range f.top {
		base := treeBase[t]
		if n == nil || hi <= base || lo >= base+span(n.depth+1) {
			continue
		}
		if !scanNode(n, base, lo, hi, fn) {
			return
		}
	}
}

func scanNode(n *node, base, lo, hi int64, fn func(p int64, ptr, resv uint32) bool) bool {
	s := span(n.depth)
	for i := max(lo-base, 0) / s; i < PtrsPerBlock; i++ {
		pb := base + i*s
		if pb >= hi {
			return true
		}
		if n.depth == 1 {
			if n.ptr[i]|n.resv[i] != 0 && !fn(pb, n.ptr[i], n.resv[i]) {
				return false
			}
		} else if k := n.kids[i]; k != nil && !scanNode(k, pb, lo, hi, fn) {
			return false
		}
	}
	return true
}

// Lookup returns the extent containing page index, clipped to
// [index, index+max): a run of pages on consecutive blocks that are all
// linked (Mapped) or all reserved (Unwritten), or a hole up to the next
// page with a block. Lookups past MaxPages are holes.
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
	e := blockmap.Extent{Page: index, Count: max, Kind: blockmap.Hole, Block: -1}
	if index >= MaxPages {
		return e, nil
	}
	f.scan(index, min(end, MaxPages), func(p int64, ptr, resv uint32) bool {
		kind, blk := blockmap.Mapped, int64(ptr)
		if ptr == 0 {
			kind, blk = blockmap.Unwritten, int64(resv)
		}
		switch {
		case e.Kind == blockmap.Hole && p > index:
			e.Count = p - index // the hole ends here
			return false
		case e.Kind == blockmap.Hole:
			e.Kind, e.Block, e.Count = kind, blk, 1
			return true
		case p == e.End() && kind == e.Kind && blk == e.Block+e.Count:
			e.Count++
			return true
		}
		return false
	})
	return e, nil
}

// nodeKey names an indirect block by its depth and the first page under
// it, before it exists.
type nodeKey struct {
	depth int
	first int64
}

// Allocate reserves a block for every hole in [index, index+n) and
// allocates, zeroes and links the indirect blocks they need, all or none
// (ENOSPC). The reserved pages read as Unwritten until MarkWritten. On an
// image the new indirect blocks reach the device at the next commit, and
// finding only quarantined space commits the journal (which frees it) and
// tries once more.
func (f *File) Allocate(index, n int64) error {
	if err := checkRange("allocate", index, n); err != nil {
		return err
	}
	for retried := false; ; retried = true {
		f.mu.Lock()
		err := f.allocate(index, n)
		f.mu.Unlock()
		if retried || !isENOSPC(err) {
			return err
		}
		if ok, cerr := f.fs.reclaim(); cerr != nil {
			return fmt.Errorf("ext2fs: allocate(index=%d, n=%d): commit to release freed blocks: %w", index, n, cerr)
		} else if !ok {
			return err
		}
	}
}

func (f *File) allocate(index, n int64) error {
	if f.released {
		return errReleased("allocate")
	}
	var holes []int64
	missing := make(map[nodeKey]bool)
	for p := index; p < index+n; p++ {
		if ptr, resv := f.get(p); ptr|resv != 0 {
			continue
		}
		holes = append(holes, p)
		f.missingOnPath(p, missing)
	}
	if len(holes) == 0 {
		return nil
	}
	goal := int64(-1)
	if index > 0 {
		if ptr, resv := f.get(index - 1); ptr|resv != 0 {
			goal = int64(ptr|resv) + 1
		}
	}
	blks, err := f.fs.alloc.alloc(int64(len(holes)+len(missing)), goal, false)
	if err != nil {
		return fmt.Errorf("ext2fs: allocate(index=%d, n=%d): %w", index, n, err)
	}
	f.blocks += int64(len(blks))
	dirty := make(map[*node]bool)
	next := func() int64 { b := blks[0]; blks = blks[1:]; return b }
	for _, p := range holes {
		if p < NDirect {
			f.dresv[p] = uint32(next())
			continue
		}
		leaf, i := f.makePath(p, next, dirty)
		leaf.resv[i] = uint32(next())
		leaf.used++
	}
	return f.wrap("allocate", index, n, f.flush(dirty))
}

// missingOnPath adds to missing the indirect blocks page p needs that do
// not exist.
func (f *File) missingOnPath(p int64, missing map[nodeKey]bool) {
	if p < NDirect {
		return
	}
	t := tree(p)
	base := treeBase[t]
	n := f.top[t]
	for d := t + 1; d >= 1; d-- {
		s := span(d + 1)
		first := base + (p-base)/s*s
		if n == nil {
			missing[nodeKey{d, first}] = true
			continue
		}
		if d > 1 {
			n = n.kids[(p-first)/span(d)]
		}
	}
}

// makePath returns the leaf node and slot of page p, creating the missing
// indirect blocks on the way with blocks from next; created nodes and the
// nodes they were linked into go in dirty.
func (f *File) makePath(p int64, next func() int64, dirty map[*node]bool) (*node, int) {
	t := tree(p)
	if f.top[t] == nil {
		f.top[t] = newNode(next(), t+1)
		dirty[f.top[t]] = true
	}
	n, off := f.top[t], p-treeBase[t]
	for n.depth > 1 {
		s := span(n.depth)
		i := off / s
		if n.kids[i] == nil {
			k := newNode(next(), n.depth-1)
			k.parent, k.slot = n, int(i)
			n.kids[i], n.ptr[i] = k, uint32(k.block)
			n.used++
			dirty[k], dirty[n] = true, true
		}
		n, off = n.kids[i], off%s
	}
	return n, int(off)
}

// flush writes the dirty indirect blocks to the device, deepest first, so
// that no block on the device points at a child not written yet. On an
// image it writes nothing: the change waits in memory for the next commit
// (durable.go), which it queues.
func (f *File) flush(dirty map[*node]bool) error {
	if f.entry != nil {
		f.changed(dirty)
		return nil
	}
	ns := make([]*node, 0, len(dirty))
	for n := range dirty {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *node) int { return a.depth - b.depth })
	buf := make([]byte, blockmap.PageSize)
	for _, n := range ns {
		encodeIndirect(&n.ptr, buf)
		if err := f.fs.dev.WriteBlocks(buf, n.block); err != nil {
			return fmt.Errorf("write indirect block %d: %w", n.block, err)
		}
	}
	return nil
}

func (f *File) wrap(op string, index, n int64, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("ext2fs: %s(index=%d, n=%d): %w", op, index, n, err)
}

// MarkWritten links the reserved blocks of [index, index+n) into the
// tree, their data being on the device: the pointers are written to the
// indirect blocks (or the inode) now, never before. Holes stay holes.
func (f *File) MarkWritten(index, n int64) error {
	if err := checkRange("mark written", index, n); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return errReleased("mark written")
	}
	var reserved []int64
	f.scan(index, index+n, func(p int64, ptr, resv uint32) bool {
		if ptr == 0 {
			reserved = append(reserved, p)
		}
		return true
	})
	dirty := make(map[*node]bool)
	for _, p := range reserved {
		leaf, i := f.slot(p)
		if leaf == nil {
			f.direct[i], f.dresv[i] = f.dresv[i], 0
			continue
		}
		leaf.ptr[i], leaf.resv[i] = leaf.resv[i], 0
		dirty[leaf] = true
	}
	return f.wrap("mark written", index, n, f.flush(dirty))
}

// Punch is EOPNOTSUPP: ext2 has no fallocate.
func (f *File) Punch(index, n int64) error { return errNoFallocate("punch") }

// ZeroRange is EOPNOTSUPP: ext2 has no fallocate.
func (f *File) ZeroRange(index, n int64) error { return errNoFallocate("zero range") }

// Collapse is EOPNOTSUPP: ext2 has no fallocate.
func (f *File) Collapse(index, n int64) error { return errNoFallocate("collapse") }

// Insert is EOPNOTSUPP: ext2 has no fallocate.
func (f *File) Insert(index, n int64) error { return errNoFallocate("insert") }

// Truncate removes every page at or after index: it clears their pointers
// and reservations, writes the indirect blocks that keep some pointer,
// and then frees the data blocks and the indirect blocks left empty
// (Linux's ext2_truncate_blocks: pointers are cleared before the blocks
// they pointed at are freed). A failed write of an indirect block leaves
// the file as it was: the map is restored, and the indirect blocks
// written before the failure are written back, so nothing is freed that
// the map or the device still points at, and nothing is lost that
// neither does.
func (f *File) Truncate(index int64) error {
	if index < 0 {
		return fmt.Errorf("ext2fs: truncate(index=%d): negative index: %w", index, syscall.EINVAL)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return errReleased("truncate")
	}
	var freed []int64
	add := func(b uint32) {
		if b != 0 {
			freed = append(freed, int64(b))
		}
	}
	direct, dresv, top := f.direct, f.dresv, f.top
	saved := make(map[*node]node)
	save := func(n *node) {
		if _, ok := saved[n]; !ok {
			c := *n
			c.resv, c.kids = slices.Clone(n.resv), slices.Clone(n.kids)
			saved[n] = c
		}
	}
	for p := index; p < NDirect; p++ {
		add(f.direct[p])
		add(f.dresv[p])
		f.direct[p], f.dresv[p] = 0, 0
	}
	dirty := make(map[*node]bool)
	for t, n := range f.top {
		if n == nil || index >= treeBase[t]+span(n.depth+1) {
			continue
		}
		if truncNode(n, treeBase[t], index, add, save, dirty) {
			add(uint32(n.block))
			f.top[t] = nil
		}
	}
	if err := f.flush(dirty); err != nil {
		// Undo: the blocks stay allocated and linked. Every changed node
		// gets its old pointers back in memory and on the device (a
		// failed write changed nothing there; rewriting it is harmless).
		f.direct, f.dresv, f.top = direct, dresv, top
		for n, c := range saved {
			*n = c
		}
		if rerr := f.flush(dirty); rerr != nil {
			err = fmt.Errorf("%w; restoring the indirect blocks: %w", err, rerr)
		}
		return fmt.Errorf("ext2fs: truncate(index=%d): %w", index, err)
	}
	f.blocks -= int64(len(freed))
	if err := f.fs.alloc.free(freed); err != nil {
		return fmt.Errorf("ext2fs: truncate(index=%d): %w", index, err)
	}
	return nil
}

// truncNode clears the slots of n (whose first page is base) at and past
// page lo, passing the blocks to free to add, and reports whether n is
// left empty (its own block is then the caller's to free); a node kept
// with changed pointers goes in dirty. save is called with every node
// before it changes, for the caller to undo a failed truncate.
func truncNode(n *node, base, lo int64, add func(uint32), save func(*node), dirty map[*node]bool) bool {
	save(n)
	s := span(n.depth)
	changed := false
	for i := max(lo-base, 0) / s; i < PtrsPerBlock; i++ {
		pb := base + i*s
		if n.depth == 1 {
			if n.ptr[i]|n.resv[i] == 0 {
				continue
			}
			changed = changed || n.ptr[i] != 0
			add(n.ptr[i])
			add(n.resv[i])
			n.ptr[i], n.resv[i] = 0, 0
			n.used--
			continue
		}
		if k := n.kids[i]; k != nil && truncNode(k, pb, lo, add, save, dirty) {
			add(uint32(k.block))
			n.kids[i], n.ptr[i] = nil, 0
			n.used--
			changed = true
		}
	}
	if n.used == 0 {
		delete(dirty, n)
		return true
	}
	if changed {
		dirty[n] = true
	}
	return false
}

// NextData returns the first page >= index with a linked block, or -1.
func (f *File) NextData(index int64) (int64, error) {
	if index < 0 {
		return 0, fmt.Errorf("ext2fs: next data(index=%d): negative index: %w", index, syscall.EINVAL)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.released {
		return 0, errReleased("next data")
	}
	found := int64(-1)
	f.scan(index, MaxPages, func(p int64, ptr, _ uint32) bool {
		if ptr != 0 {
			found = p
			return false
		}
		return true
	})
	return found, nil
}

// Blocks returns the blocks the file owns: data blocks, linked or
// reserved, and its indirect blocks, as ext2's i_blocks counts them.
func (f *File) Blocks() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.blocks
}

// Release frees every block of the file; the File is unusable after.
func (f *File) Release() error {
	f.mu.Lock()
	if f.released {
		f.mu.Unlock()
		return errReleased("release")
	}
	f.released = true
	var freed []int64
	f.collect(func(b uint32) { freed = append(freed, int64(b)) })
	f.direct, f.dresv, f.top, f.blocks = [NDirect]uint32{}, [NDirect]uint32{}, [3]*node{}, 0
	f.mu.Unlock()
	f.fs.forget(f)
	if err := f.fs.alloc.free(freed); err != nil {
		return fmt.Errorf("ext2fs: release: %w", err)
	}
	return nil
}

// collect passes every block the file owns to add.
func (f *File) collect(add func(uint32)) {
	for i := range f.direct {
		if b := f.direct[i] | f.dresv[i]; b != 0 {
			add(b)
		}
	}
	var walk func(n *node)
	walk = func(n *node) {
		add(uint32(n.block))
		for i := range PtrsPerBlock {
			switch {
			case n.depth == 1 && n.ptr[i]|n.resv[i] != 0:
				add(n.ptr[i] | n.resv[i])
			case n.depth > 1 && n.kids[i] != nil:
				walk(n.kids[i])
			}
		}
	}
	for _, n := range f.top {
		if n != nil {
			walk(n)
		}
	}
}

// Roots returns i_block[15]: the direct pointers and the blocks of the
// single-, double- and triple-indirect roots (0: none). Reservations are
// not in it: they are not data yet.
func (f *File) Roots() [NRoots]uint32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var r [NRoots]uint32
	copy(r[:], f.direct[:])
	for t, n := range f.top {
		if n != nil {
			r[NDirect+t] = uint32(n.block)
		}
	}
	return r
}
