package ext2fs

import (
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/meta"
)

// Restore returns the store of dev holding the given files, each named by
// its inode number and its i_block[15], with their indirect blocks read
// from dev: what opening an image, or fsck, needs. Every block a tree
// reaches is marked in use; the rest of the device but block 0 is free.
// A pointer past the device, or a block reached twice (by two files, or
// twice in one), is corruption: EUCLEAN naming the block and its owners.
// An indirect block with no pointer in it (left by a change that
// allocated it but linked nothing before a crash) is dropped, its parent
// rewritten on dev, and the block left free.
func Restore(dev blockdev.Device, roots map[uint64][NRoots]uint32) (*FS, error) {
	return restore(dev, roots, nil)
}

// RestoreImage is Restore for an image, whose changes commit through j
// (see durable.go): indirect blocks change on the device only when a
// commit writes them out, and freed blocks are quarantined until the
// commit that freed them is durable (FS implements meta.Quarantine and
// meta.Preparer). An empty indirect block is dropped by the next commit.
func RestoreImage(dev blockdev.Device, roots map[uint64][NRoots]uint32, j *meta.Journal) (*FS, error) {
	if j == nil {
		return nil, fmt.Errorf("ext2fs: restore image: no journal: %w", syscall.EINVAL)
	}
	return restore(dev, roots, j)
}

func restore(dev blockdev.Device, roots map[uint64][NRoots]uint32, j *meta.Journal) (*FS, error) {
	fs, err := New(dev)
	if err != nil {
		return nil, err
	}
	if j != nil {
		fs.journal, fs.pending = j, make(map[*File]struct{})
		fs.alloc.quarantine, fs.alloc.inHeld = true, make(map[int64]bool)
		// A commit copies the committed indirect blocks it changes
		// before it can release anything from the quarantine: on a
		// full device it needs blocks nothing else may take.
		fs.alloc.reserve = min(maxCommitReserve, fs.alloc.total/32)
	}
	bm := fs.alloc
	type owner struct {
		ino  uint64
		what string
	}
	owners := make(map[uint32]owner)
	claim := func(ino uint64, b uint32, what string) error {
		if o, dup := owners[b]; dup {
			return fmt.Errorf("ext2fs: restore: block %d is inode %d's %s and inode %d's %s: %w", b, o.ino, o.what, ino, what, syscall.EUCLEAN)
		}
		owners[b] = owner{ino, what}
		bm.words[b/64] |= 1 << (b % 64)
		bm.nfree--
		return nil
	}
	for ino, r := range roots {
		if ino == 0 {
			return nil, fmt.Errorf("ext2fs: restore: inode number 0: %w", syscall.EINVAL)
		}
		f := newFile(fs, ino)
		copy(f.direct[:], r[:NDirect])
		nodes := make(map[uint32]*node)
		err := walkTree(dev, r,
			func(p int64, b uint32) error {
				f.blocks++
				return claim(ino, b, fmt.Sprintf("page %d", p))
			},
			func(b uint32, d int, base int64, ptr *[PtrsPerBlock]uint32) error {
				f.blocks++
				if err := claim(ino, b, fmt.Sprintf("indirect block (depth %d) at page %d", d, base)); err != nil {
					return err
				}
				n := newNode(int64(b), d)
				n.ptr, n.written = *ptr, true
				nodes[b] = n
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("ext2fs: restore: inode %d: %w", ino, err)
		}
		// Link each node to its children: the walk claimed every block
		// once, so a pointer names exactly one node.
		for _, n := range nodes {
			for i, p := range n.ptr {
				if p == 0 {
					continue
				}
				n.used++
				if n.depth > 1 {
					k := nodes[p]
					n.kids[i], k.parent, k.slot = k, n, i
				}
			}
		}
		for t := range f.top {
			f.top[t] = nodes[r[NDirect+t]]
		}
		f.durRoots = r
		if err := f.prune(); err != nil {
			return nil, fmt.Errorf("ext2fs: restore: inode %d: %w", ino, err)
		}
		fs.files[ino] = f
		fs.nextID = max(fs.nextID, ino)
	}
	return fs, nil
}

// prune drops the indirect blocks with nothing linked below them,
// rewriting the parents that pointed at them, and frees their blocks.
func (f *File) prune() error {
	var freed []int64
	dirty := make(map[*node]bool)
	var empty func(n *node) bool
	empty = func(n *node) bool {
		if n.depth > 1 {
			for i, k := range n.kids {
				if k != nil && empty(k) {
					freed = append(freed, k.block)
					n.kids[i], n.ptr[i] = nil, 0
					n.used--
					dirty[n] = true
				}
			}
		}
		return n.used == 0
	}
	for t, n := range f.top {
		if n != nil && empty(n) {
			freed = append(freed, n.block)
			f.top[t] = nil
			delete(dirty, n)
		}
	}
	for n := range dirty {
		if n.used == 0 {
			delete(dirty, n)
		}
	}
	if err := f.flush(dirty); err != nil {
		return err
	}
	f.blocks -= int64(len(freed))
	return f.fs.alloc.free(freed)
}
