// Package blockmap defines what a holefs backend provides to the generic
// page cache and VFS: the block map of one file. It knows file pages and
// device blocks (both 4 KiB), never page-cache pages.
//
// Backends live in subpackages: extentfs (ext4-like extents on a block
// device) and memfs (tmpfs-like: the page cache is the storage).
//
// Locking: a File's methods take the backend's extent-map lock and, when
// they allocate or free, the allocator lock below it (LOCKING.md). Callers
// that change the map (Punch, Collapse, ...) must hold the file's inode and
// invalidate locks exclusive; Lookup, Allocate and MarkWritten are also
// called from fill paths and writeback, which hold neither.
package blockmap

import "fmt"

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
