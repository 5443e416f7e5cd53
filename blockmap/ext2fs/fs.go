package ext2fs

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/meta"
)

// FS is the block-map store of one ext2fs filesystem: it creates the
// files' block maps and owns the bitmap of the device's blocks, on which
// it also writes the files' indirect blocks. It implements blockmap.Store
// and blockmap.NoFallocator, and is safe for concurrent use.
type FS struct {
	dev     blockdev.Device // holds data and indirect blocks; immutable
	alloc   *bitmap
	journal *meta.Journal // images only (RestoreImage); immutable

	// pendMu guards pending, the files with changes a commit must write
	// out. It is a leaf, taken under map locks.
	pendMu  sync.Mutex
	pending map[*File]struct{} // +checklocks:pendMu

	// filesMu guards files and nextID. Nothing is taken under it but by
	// Check, which takes it outermost and then every map lock in id
	// order; NewFile and Release take it with no other lock held.
	filesMu sync.Mutex
	files   map[uint64]*File // +checklocks:filesMu
	nextID  uint64           // +checklocks:filesMu
}

var (
	_ blockmap.Store        = (*FS)(nil)
	_ blockmap.NoFallocator = (*FS)(nil)
)

// New returns the store of dev with every block free but block 0, which a
// pointer of 0 could not tell from a hole. A device of more than
// MaxBlocks blocks is EFBIG: 32-bit pointers cannot address it.
func New(dev blockdev.Device) (*FS, error) {
	n := dev.NumBlocks()
	if n > MaxBlocks {
		return nil, fmt.Errorf("ext2fs: device of %d blocks: 32-bit block pointers address at most %d: %w", n, MaxBlocks, syscall.EFBIG)
	}
	return &FS{dev: dev, alloc: newBitmap(n), files: make(map[uint64]*File)}, nil
}

// NewFile returns an empty block map (a *File) for inode ino; 0 picks an
// unused id.
func (fs *FS) NewFile(ino uint64) blockmap.File {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	if ino == 0 {
		fs.nextID++
		ino = fs.nextID
	}
	fs.nextID = max(fs.nextID, ino)
	f := newFile(fs, ino)
	fs.files[ino] = f
	return f
}

// Statfs returns the device size less block 0, and the free blocks.
func (fs *FS) Statfs() (total, free int64) { return fs.alloc.statfs() }

// NoFallocate reports that ext2 has no fallocate: the VFS refuses every
// mode with EOPNOTSUPP, as Linux does for a filesystem without
// f_op->fallocate.
func (fs *FS) NoFallocate() bool { return true }

func (fs *FS) forget(f *File) {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	delete(fs.files, f.id)
}

// File returns the block map of inode ino, restored or created.
func (fs *FS) File(ino uint64) (*File, bool) {
	fs.filesMu.Lock()
	defer fs.filesMu.Unlock()
	f, ok := fs.files[ino]
	return f, ok
}
