// Package blockmap defines what a holefs backend provides to the generic
// page cache and VFS: the block map of one file. It knows file pages and
// device blocks (both 4 KiB), never page-cache pages.
//
// Backends live in subpackages: extentfs (ext4-like extents on a block
// device), ext2fs (ext2-like direct and indirect block pointers on a block
// device), memfs (tmpfs-like: the page cache is the storage),
// passthrough (each file is a file of a directory of another filesystem)
// and zonefs (each file is a zone of a zoned device; see Zone).
//
// Locking: a File's methods take the backend's extent-map lock and, when
// they allocate or free, the allocator lock below it (LOCKING.md). Callers
// that change the map (Punch, Collapse, ...) must hold the file's inode and
// invalidate locks exclusive; Lookup, Allocate and MarkWritten are also
// called from fill paths and writeback, which hold neither.
package blockmap

import (
	"fmt"

	"github.com/holefs/holefs/blockdev"
)

// PageSize is the size of a file page and of a device block.
const PageSize = 4096

// Kind says what backs a range of a file.
type Kind uint8

const (
	// Hole: no storage; reads return zeros.
	Hole Kind = iota
	// Unwritten: blocks are allocated but hold no data yet; reads return
	// zeros and never the device's old content.
	Unwritten
	// Mapped: blocks hold the file's data.
	Mapped
	// Memory: the page cache page itself is the storage (memfs). A page
	// that is not cached is a hole.
	Memory
)

func (k Kind) String() string {
	switch k {
	case Hole:
		return "hole"
	case Unwritten:
		return "unwritten"
	case Mapped:
		return "mapped"
	case Memory:
		return "memory"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Extent is a run of file pages with one kind of backing.
type Extent struct {
	Page  int64 // first file page index
	Count int64 // number of pages, > 0
	Kind  Kind
	Block int64 // device block of Page for Unwritten and Mapped; -1 for holes
	// Shared: the Mapped blocks are also mapped by another file or range
	// (a clone). A page read from them must not remember its block: a
	// write goes out of place (Remapper).
	Shared bool
}

// End returns the page index just past the extent.
func (e Extent) End() int64 { return e.Page + e.Count }

// File is the block map of one file. All indexes and counts are in pages.
// Errors wrap syscall.Errno values: ENOSPC, EINVAL for bad arguments, EFBIG
// past the backend's largest file, EUCLEAN for corrupt metadata, EIO after
// Release. Ranges are not checked against the file size: that is the VFS's
// business.
type File interface {
	// Lookup returns the extent containing page index, clipped to
	// [index, index+max). A hole extends to the next mapped page (clipped).
	// max must be > 0.
	Lookup(index, max int64) (Extent, error)
	// Allocate backs every hole in [index, index+n) with newly allocated
	// Unwritten blocks, preferring the block after the preceding extent.
	// On ENOSPC nothing is allocated.
	Allocate(index, n int64) error
	// MarkWritten converts Unwritten blocks in [index, index+n) to Mapped,
	// after their data reached the device. Holes in the range stay holes.
	MarkWritten(index, n int64) error
	// Punch removes [index, index+n) from the map and frees its blocks.
	Punch(index, n int64) error
	// ZeroRange makes [index, index+n) read as zeros with storage kept
	// allocated: Mapped blocks become Unwritten and holes are allocated
	// Unwritten. On ENOSPC nothing is changed.
	ZeroRange(index, n int64) error
	// Collapse removes [index, index+n) and shifts every later extent n
	// pages down.
	Collapse(index, n int64) error
	// Insert shifts every extent at or after index n pages up, leaving a
	// hole of n pages at index.
	Insert(index, n int64) error
	// Truncate removes every page at or after index and frees its blocks.
	Truncate(index int64) error
	// NextData returns the first page >= index backed by Mapped blocks, or
	// -1 if there is none.
	NextData(index int64) (int64, error)
	// Blocks returns the number of blocks the file owns (Mapped and
	// Unwritten).
	Blocks() int64
	// Release frees every block of the file; the File is unusable after.
	Release() error
}

// Store creates the block maps of a filesystem and accounts its space.
type Store interface {
	// NewFile returns an empty block map for inode ino, which names it in
	// the store's durable metadata; 0 lets a store without an image pick
	// an id.
	NewFile(ino uint64) File
	// Statfs returns the total and free block counts.
	Statfs() (total, free int64)
}

// Remapper is a File that writes some pages out of place: blocks shared
// with another file by a clone are copied on write, and a log-structured
// map writes every page to a new block. Writeback and direct I/O ask it
// where to write instead of writing where Lookup points.
type Remapper interface {
	File
	// WriteTarget returns where to write the pages from index on (at
	// most max): in place (Kind Mapped or Unwritten, as Lookup says; an
	// Unwritten run still needs MarkWritten after the write), out of
	// place (outOfPlace true: a new block, then CommitWrite or
	// AbortWrite), or a Hole.
	WriteTarget(index, max int64) (e Extent, outOfPlace bool, err error)
	// CommitWrite remaps [index, index+n) to the blocks WriteTarget gave
	// out of place, once their data is on the device, and releases the
	// blocks they replace.
	CommitWrite(index, n int64) error
	// AbortWrite releases out-of-place blocks of [index, index+n) whose
	// write failed.
	AbortWrite(index, n int64) error
	// WritesInPlace reports whether a page, once written, may be written
	// again at the same block without asking (false for a log).
	WritesInPlace() bool
}

// Cloner is a File that can share another file's blocks (reflink).
type Cloner interface {
	File
	// CloneFrom makes pages [dstIdx, dstIdx+n) share the blocks of pages
	// [srcIdx, srcIdx+n) of src, dropping what they mapped; holes and
	// unwritten extents of src become holes. src is a File of the same
	// store (EXDEV otherwise) and may be this one, with ranges that do
	// not overlap. The caller holds both files' inode and invalidate
	// locks exclusive, has written back the source range and truncated
	// the destination's pages.
	CloneFrom(src File, srcIdx, dstIdx, n int64) error
	// CanClone reports whether CloneFrom can work at all on this store
	// (an image made without the reflink feature cannot share blocks), so
	// callers can refuse before they touch the page cache.
	CanClone() bool
}

// DeviceFile is a File whose blocks are on a device of its own instead of
// the filesystem's: block i of that device is page i of the file, and
// Lookup's Block is the page index. passthrough's files are such maps, the
// device being the backing file. The VFS checks for it when it sets up a
// file's page cache and direct I/O.
type DeviceFile interface {
	File
	// Device returns the device direct I/O reads and writes: its writes
	// go where they are asked, growing the storage when they reach past
	// its end, as a direct write past EOF must.
	Device() blockdev.Device
	// WritebackDevice returns the device the page cache reads and writes
	// back through. Writeback writes whole pages, with the bytes past EOF
	// of the last one zeroed; this device never writes past size(), the
	// file size in bytes, so that the storage of the last page does not
	// grow past the end of the file, whose size is visible to others.
	WritebackDevice(size func() int64) blockdev.Device
}

// Owner is a run of pages of one file.
type Owner struct {
	Ino         uint64
	Page, Count int64
}

// Cleaner is a log-structured Store whose free space the VFS compacts.
type Cleaner interface {
	Store
	// CleanVictim returns the pages whose blocks the cleaner should move
	// now (the live data of the emptiest segment), or nothing. The VFS
	// relocates them by rewriting them out of place under the inode and
	// invalidate locks.
	CleanVictim() []Owner
}

// NoFallocator is a Store whose filesystem has no fallocate at all (ext2):
// when NoFallocate returns true the VFS refuses every fallocate mode with
// EOPNOTSUPP, allocation (mode 0, KEEP_SIZE) included, as Linux's
// vfs_fallocate does for a filesystem without f_op->fallocate. Its Files
// return EOPNOTSUPP from Punch, ZeroRange, Collapse and Insert.
type NoFallocator interface {
	Store
	NoFallocate() bool
}
