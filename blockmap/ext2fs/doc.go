// Package ext2fs holds the block maps of holefs's ext2-like backend: per
// file, the twelve direct block pointers and the single-, double- and
// triple-indirect blocks of ext2's i_block[15], with the indirect blocks
// stored on the data device, and a bitmap allocator of the device's blocks
// shared by data and indirect blocks.
//
// # Format
//
// An indirect block is one 4 KiB device block of 1024 little-endian uint32
// block numbers, as ext2's with 4 KiB blocks; 0 is a hole (block 0 is
// never allocated: it is the superblock of an image). Pointers are 32 bits
// as in ext2, so a device may have at most 2^32 blocks (16 TiB), and the
// tree reaches 12 + 1024 + 1024^2 + 1024^3 pages (MaxPages, 4 TiB + 4 GiB +
// 4 MiB + 48 KiB); a range past it is EFBIG. The VFS's own limit of 4 TiB
// (vfs.MaxFileSize) is below it, so through the VFS EFBIG starts there.
//
// Every indirect block lives in memory too, as its node of the file's tree
// (Linux keeps it in the buffer cache). Without an image (New) a change
// writes the block through to the device under the file's map lock,
// children before their parents, so the tree on the device is always the
// tree in memory once a change returns. Walk reads it back from the
// device alone, and Restore rebuilds a store from the device and each
// file's i_block[15], refusing (EUCLEAN) a pointer past the device or a
// block reached twice. Check verifies a live store against the device and
// the bitmap.
//
// # Images
//
// An ext2 image (holefs mkfs --backend ext2; meta.IncompatExt2) keeps each
// regular file's i_block[15] in its inode record in meta.db and the
// indirect blocks on the data device; RestoreImage opens it. The rule is
// the one extentfs images keep: after a crash, the committed metadata
// never points at freed or unwritten data. Three mechanisms give it:
//
//   - Between commits indirect blocks change in memory only (the nodes
//     and File.dirty); nothing on the device that a commit reaches is
//     touched.
//   - A commit (meta.Journal.Commit, through PrepareCommit) writes out
//     each changed node, deepest first, copy on write: a block a commit
//     may point at gets its new content in a new block and the old one is
//     freed; a block no commit has reached yet is written in place. The
//     parent then points at the copy and is written out in turn, up to
//     the roots. The commit's data flush follows, then the meta.db
//     transaction that switches the roots and sizes atomically: a crash
//     before it leaves the old roots and the old tree intact (none of its
//     blocks was overwritten), after it the new tree, complete and
//     flushed. A pointer is linked only by MarkWritten, after its data
//     reached the device, so the flush covers the data too.
//   - A freed block (truncate, release, the old copy of a node) stays
//     allocated in a quarantine until the commit that stopped pointing at
//     it is durable (meta.Quarantine), so no write can reach a block the
//     committed tree still reaches.
//
// Writing changed blocks in place instead (option b of the design) would
// need no copies, but a crash in the middle of a commit's write-out would
// leave the old roots over a tree partly new: pages linked past the
// committed size (which a later truncate up would expose) or missing
// under it. internal/crash's enumeration finds exactly that when the copy
// is turned off. The cost of copying is one allocation per changed
// committed indirect block per commit, and a commit must copy before it
// can release the quarantine: so an image keeps min(64, 1/32) of the
// device free for those copies, which data allocations cannot take
// (ENOSPC comes that much earlier, like ext2's reserved blocks). A commit
// that changed more committed indirect blocks than a full device has left
// fails with ENOSPC (fsync returns it) and keeps everything queued.
//
// The allocation state is not stored: RestoreImage rebuilds the bitmap
// from the blocks the committed roots reach, so blocks leaked by a crash
// (allocated after the last commit) are free again at the next mount. A
// commit that came between Allocate and writeback leaves an indirect
// block with no pointer (its pages were only reserved): the mount drops
// it, and pages linked past a file's committed size, which a commit can
// record when a truncate follows its write-out, are dropped as well.
// Fsck (meta.CheckOptions.BlockMaps) checks the trees from the same roots.
//
// # No unwritten extents
//
// ext2 has no unwritten state: a pointer on the device means data. The
// blockmap contract still asks that a block Allocate reserves for a dirty
// page reads as zeros (Unwritten) until MarkWritten, after its data
// reached the device. So Allocate keeps the block as a reservation in the
// leaf slot's in-memory twin, never in the block on the device, and
// MarkWritten links it: Linux's ext2 gets the same order from the page
// cache, which maps a block (ext2_get_block) only when it writes a page.
// Allocate also allocates, zeroes and links every indirect block the
// reserved pages will need, so MarkWritten, which runs in writeback, never
// allocates and never fails with ENOSPC. An indirect block with no pointer
// and no reservation below it is freed by the Truncate that empties it.
//
// # Removal
//
// ext2 has no fallocate at all: Punch, ZeroRange, Collapse and Insert
// return EOPNOTSUPP, the FS says so to the VFS (NoFallocate), and
// Truncate is the one remover. It frees the data blocks at and past its
// index and then the indirect blocks that became empty, as Linux's
// ext2_truncate_blocks does.
//
// # Allocation policy
//
// A page's block is the block after its preceding page's when that is
// free (contiguous files), else the lowest free block: like extentfs, a
// freed block is reused at once, so a stale mapping in the page cache
// shows up in tests as another file's data.
//
// # Locking
//
// Each File has a map lock (lockcheck.RankExtentMap, Linux's ext2
// truncate_mutex and i_data_sem in one) and the FS one allocator lock
// (lockcheck.RankAllocator) taken inside it. Indirect blocks are written
// to the device under the map lock; the device's own locks are leaves.
// On an image the FS's pending lock (the files a commit must write out)
// is a leaf taken under a map lock, and a commit (lockcheck.RankCommit,
// above the map locks) takes each changed file's map lock in turn to
// write it out; an Allocate that finds only quarantined space commits
// with no map lock held.
package ext2fs
