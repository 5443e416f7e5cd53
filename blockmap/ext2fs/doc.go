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
// (Linux keeps it in the buffer cache); a change writes the block through
// to the device under the file's map lock, children before their parents,
// so the tree on the device is always the tree in memory once a change
// returns. Walk reads it back from the device alone, and Restore rebuilds
// a store from the device and each file's i_block[15], refusing (EUCLEAN)
// a pointer past the device or a block reached twice: the base an image
// format and its fsck need. Check verifies a live store against the
// device and the bitmap.
//
// Images are not done yet: nothing commits i_block[15] to meta.db, and
// the write-through above is not crash-ordered (a pointer could reach the
// device before the data it points at is flushed). The design for them:
// between commits indirect blocks change only in memory; a commit flushes
// the data device, writes the dirty indirect blocks, flushes again, and
// only then commits the roots and sizes, with freed blocks quarantined
// until that commit is durable (package meta), so no indirect block on
// the device ever points at freed or unwritten data. Written in place, a
// commit's pointer changes can be partly on the device after a crash
// (ext2 has no journal either); writing each changed indirect block to a
// new block at commit (copy on write, the old one quarantined) would make
// the switch atomic with the roots in meta.db.
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
package ext2fs
