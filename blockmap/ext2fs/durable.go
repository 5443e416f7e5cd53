package ext2fs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/meta"
)

// maxCommitReserve bounds the free blocks kept for commits' copies of
// indirect blocks (1/32 of the device below it): enough for the few a
// truncate or a write changes per file between commits.
const maxCommitReserve = 64

var (
	_ meta.Quarantine = (*FS)(nil)
	_ meta.Preparer   = (*FS)(nil)
)

// changed records, on an image, that the file's map changed: the nodes
// in dirty must be written out by the next commit, which the file's
// journal entry queues. The caller holds the map lock exclusive.
func (f *File) changed(dirty map[*node]bool) {
	for n := range dirty {
		f.dirty[n] = struct{}{}
	}
	f.fs.pendMu.Lock()
	f.fs.pending[f] = struct{}{}
	f.fs.pendMu.Unlock()
	f.entry.Dirty()
}

// PrepareCommit writes out the changed indirect blocks of every file
// changed since the last commit (meta.Preparer): a block a commit may
// point at is never overwritten, its new content goes to a new block
// (copy on write) and the old one is quarantined; a block no commit has
// pointed at yet is written in place. Children go before parents, whose
// pointers a copy changes. The commit's data flush then makes them
// durable before the meta.db transaction records the new i_block roots,
// so after a crash the committed roots reach either the old tree, intact,
// or the new one, complete. A failure (ENOSPC for a copy, EIO) fails the
// commit, and the files stay queued for the next one.
func (fs *FS) PrepareCommit() error {
	fs.pendMu.Lock()
	files := make([]*File, 0, len(fs.pending))
	for f := range fs.pending {
		files = append(files, f)
	}
	clear(fs.pending)
	fs.pendMu.Unlock()
	slices.SortFunc(files, func(a, b *File) int { return cmp.Compare(a.id, b.id) })
	buf := make([]byte, blockmap.PageSize)
	for i, f := range files {
		f.mu.Lock()
		err := f.writeOut(buf)
		f.mu.Unlock()
		if err != nil {
			fs.pendMu.Lock()
			for _, g := range files[i:] {
				fs.pending[g] = struct{}{}
			}
			fs.pendMu.Unlock()
			return fmt.Errorf("ext2fs: inode %d: write out indirect blocks: %w", f.id, err)
		}
	}
	return nil
}

// writeOut writes the file's changed indirect blocks, deepest first, and
// records the roots they make as durRoots. The caller holds the map lock
// exclusive.
func (f *File) writeOut(buf []byte) error {
	if f.released {
		clear(f.dirty)
		return nil
	}
	for d := 1; d <= 3; d++ {
		var ns []*node
		for n := range f.dirty {
			if n.depth == d {
				ns = append(ns, n)
			}
		}
		slices.SortFunc(ns, func(a, b *node) int { return cmp.Compare(a.block, b.block) })
		for _, n := range ns {
			if !f.inTree(n) {
				delete(f.dirty, n) // truncated away since it changed
				continue
			}
			if err := f.writeNode(n, buf); err != nil {
				return err
			}
			delete(f.dirty, n)
		}
	}
	copy(f.durRoots[:], f.direct[:])
	for t, n := range f.top {
		f.durRoots[NDirect+t] = 0
		if n != nil {
			f.durRoots[NDirect+t] = uint32(n.block)
		}
	}
	return nil
}

// writeNode writes one changed indirect block: to a new block if a commit
// may point at its old one, which is then freed (into the quarantine), and
// its parent, now pointing at the new block, changed in turn.
func (f *File) writeNode(n *node, buf []byte) error {
	encodeIndirect(&n.ptr, buf)
	if !n.written {
		if err := f.fs.dev.WriteBlocks(buf, n.block); err != nil {
			return fmt.Errorf("write indirect block %d: %w", n.block, err)
		}
		n.written = true
		return nil
	}
	blks, err := f.fs.alloc.alloc(1, n.block+1, true)
	if err != nil {
		return fmt.Errorf("copy indirect block %d: %w", n.block, err)
	}
	if err := f.fs.dev.WriteBlocks(buf, blks[0]); err != nil {
		// Never pointed at: it can go at once (into the quarantine).
		return errors.Join(fmt.Errorf("copy indirect block %d to %d: %w", n.block, blks[0], err), f.fs.alloc.free(blks))
	}
	old := n.block
	n.block = blks[0]
	if p := n.parent; p != nil {
		p.ptr[n.slot] = uint32(n.block)
		f.dirty[p] = struct{}{}
	}
	return f.fs.alloc.free([]int64{old})
}

// inTree reports whether n is still linked in the file's tree.
func (f *File) inTree(n *node) bool {
	for n.parent != nil {
		if n.parent.kids[n.slot] != n {
			return false
		}
		n = n.parent
	}
	for _, t := range f.top {
		if t == n {
			return true
		}
	}
	return false
}

// DurableRoots returns i_block as the last commit's write-out left it on
// the device, for a commit to record; ok is false once the file is
// released. Without an image it is Roots.
func (f *File) DurableRoots() (roots [NRoots]uint32, ok bool) {
	if f.entry == nil {
		return f.Roots(), true
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.durRoots, !f.released
}

// Seal closes the current quarantine generation (meta.Quarantine).
func (fs *FS) Seal() uint64 { return fs.alloc.seal() }

// Release frees the quarantined blocks of generations <= gen
// (meta.Quarantine): the commit that stopped pointing at them is durable.
func (fs *FS) Release(gen uint64) { fs.alloc.unquarantine(gen) }

// reclaim commits the journal when an allocation found only quarantined
// space, and reports whether that freed anything to retry with; a failed
// commit's error replaces ENOSPC (the space exists, the device keeps it).
// The caller holds no map lock: the commit takes them.
func (fs *FS) reclaim() (bool, error) {
	if fs.journal == nil || fs.alloc.quarantined() == 0 {
		return false, nil
	}
	if err := fs.journal.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// isENOSPC reports whether err is ENOSPC.
func isENOSPC(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// i_block has the same shape in meta's inode records.
var (
	_ [NRoots - meta.NRoots]struct{}
	_ [meta.NRoots - NRoots]struct{}
)
