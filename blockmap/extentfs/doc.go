// Package extentfs holds the block maps of holefs's ext4-like backend: one
// B-tree of extents per file and one allocator of device blocks per
// filesystem. Data I/O is not done here; the page cache reads and writes the
// device at the blocks this package hands out.
//
// # Allocation policy
//
// Each hole is filled starting at its goal block, the block right after the
// file's preceding extent, so that a file written front to back stays
// contiguous on the device (what ext4's goal-based allocation is for). When
// the goal block is not free, or the hole has no preceding extent (a fresh
// file), or the free run at the goal is used up, the rest comes from the
// LOWEST free blocks. Goal contiguity wins over the lowest block whenever the
// goal block is free.
//
// Lowest-first is deliberate and is not what a production allocator would
// do. A block freed by a punch in one file is handed out by the very next
// allocation anywhere, predictably. A page cache that kept a stale mapping of
// the punched block would then read or write another file's data, so
// coherence bugs (the ones Linux's invalidate_lock prevents) surface in tests
// immediately instead of depending on allocator luck.
//
// Allocation is all-or-nothing: an operation that needs more blocks than are
// free fails with ENOSPC and changes nothing. Freeing a block that is already
// free is reported as EUCLEAN, never inserted twice.
//
// # Locking
//
// Each File has an extent-map lock (lockcheck.RankExtentMap) and the FS has
// one allocator lock (lockcheck.RankAllocator), always taken in that order:
// the extent-map lock first, the allocator lock inside it. Extent-map locks
// of different files are ordered by file id, which FS.CheckInvariants relies
// on to hold all of them at once.
package extentfs
