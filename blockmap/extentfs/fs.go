package extentfs

import (
	"sync"
	"sync/atomic"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/meta"
)

// FS is the block-map store of one extentfs filesystem: it creates the files'
// extent maps and owns the allocator of the device's blocks. It implements
// blockmap.Store and is safe for concurrent use.
type FS struct {
	alloc *allocator

	// filesMu guards files and nextID. It is a plain mutex outside the
	// lockcheck ranks because nothing else is ever taken under it except by
	// CheckInvariants, which takes it outermost; NewFile and Release take it
	// with no extent-map or allocator lock held.
	filesMu sync.Mutex
	files   map[uint64]*File // live (not released) files by id
	nextID  uint64

	journal *meta.Journal // durable stores only; immutable
	reflink bool          // a durable store whose format can share blocks; immutable

	// discard, if set (SetDiscard, before use), discards the blocks
	// Release frees; discardOff turns it off after EOPNOTSUPP.
	discard                 func(start, count int64) error
	discardOff              atomic.Bool
	discarded, discardFails atomic.Int64
}

var _ blockmap.Store = (*FS)(nil)

// New returns the store of a device of nblocks blocks, all free. A negative
// nblocks is treated as 0: every allocation then fails with ENOSPC.
func New(nblocks int64) *FS {
	return &FS{
		alloc: newAllocator(max(nblocks, 0)),
		files: make(map[uint64]*File),
	}
}

// NewFile returns an empty extent map (a *File) on this filesystem for
// inode ino; 0 picks an unused id (a store without an image).
func (fs *FS) NewFile(ino uint64) blockmap.File {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	if ino == 0 {
		fs.nextID++
		ino = fs.nextID
	}
	fs.nextID = max(fs.nextID, ino)
	f := newFile(fs, ino)
	fs.files[f.id] = f
	return f
}

// Statfs returns the device size and the number of free blocks.
func (fs *FS) Statfs() (total, free int64) {
	return fs.alloc.statfs()
}

func (fs *FS) forget(f *File) {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	delete(fs.files, f.id)
}
