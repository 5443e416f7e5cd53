// Package meta is holefs's durable metadata: the on-disk format of an image
// and the journal that commits the in-memory filesystem state to it in
// batches, in an order that keeps every crash state consistent.
//
// # Image
//
// An image is a directory holding two files:
//
//	data     the block device: a sparse file of 4 KiB blocks. Block 0 is the
//	         superblock; file data lives in blocks 1 and up.
//	meta.db  a bbolt database: inodes, directory entries and extent maps.
//
// The superblock (block 0 and a copy in meta.db) carries a magic number, a
// format version, feature flags and a CRC-32C; the two copies must agree, so a
// data file paired with another image's database is refused. meta.db is
// locked (flock) while an image is open: a second open fails with EBUSY, and
// so does Create replacing it (Force), which takes the same lock.
//
// Block 0 also holds, in its second sector, the commit record (images with
// CompatCommitSeq): the sequence number of the latest commit, written by
// each commit ahead of the data flush that precedes its meta.db
// transaction. In every crash state the record is thus at most one commit
// ahead of meta.db; Open reports a meta.db further behind, or one behind
// with a damaged meta page, as a Rollback — bbolt falling back to its
// older meta page loses the last commit silently otherwise.
//
// Before bbolt maps meta.db, Open and Precheck check its raw page
// structure (store.go): bbolt trusts its pages, and a damaged one makes it
// crash or panic, sometimes in a goroutine of its own.
//
// Buckets of meta.db and their records (big-endian keys; every value ends in
// a CRC-32C of the key and the value, so fsck can tell a damaged record from
// a valid one and name it):
//
//	super    "sb"                   superblock copy
//	         "state"                commit sequence number, blocks owned
//	inodes   ino                    mode, uid, gid, nlink, size, times, symlink target
//	                                (version 2: and a device's number;
//	                                version 3: and a regular file's i_block[15], ext2 images)
//	dirents  dir ino + name         child ino
//	extents  ino + first page       page count, first block, unwritten flag
//	xattrs   ino + name             value
//
// An inode is a directory, regular file or symlink, and on images with
// IncompatSpecialFiles (every image mkfs makes now) a FIFO, socket or
// character or block device: size 0, no extents, and for a device its
// number (unix.Mkdev), in a version 2 record. Records of the other types
// stay version 1. On images with IncompatExt2 (holefs mkfs --backend ext2)
// regular files have no extent records: a file with a block pointer has a
// version 3 record carrying its i_block[15] (12 direct pointers and the
// single-, double- and triple-indirect blocks, whose trees are on the data
// device), written from Dynamic.IBlock at each commit. A Preparer (the
// ext2 store) writes the changed indirect blocks out, copy on write, before
// the commit's data flush. Load refuses pointers on other images and
// extents on ext2 ones; where the pointers lead is checked by fsck's
// CheckOptions.BlockMaps, which meta does not implement (it reads no data
// blocks): package ext2fs does.
//
// Allocator state is not stored: the free blocks of an image are exactly the
// blocks no extent owns (block 0 excepted), rebuilt when the image is opened,
// and the state record's block count lets fsck check that sum.
//
// # Journal order
//
// The running filesystem keeps its state in memory (the VFS namespace and the
// backend's extent trees). A Journal records what changed since the last
// commit: namespace changes as an ordered log (appended under the namespace
// lock, so any prefix of it is a state the namespace passed through: rename
// is atomic), and the inodes whose size, times or extents changed as a dirty
// set read at commit time. A commit:
//
//  1. seals the backend's quarantine: blocks freed so far are not reusable
//     until step 5;
//  2. takes the namespace log and the dirty set;
//  3. reads each dirty inode's size, times and extent map;
//  4. writes its sequence number to the commit record of block 0, flushes
//     the data device (ordered data: every extent marked written in step 3
//     had its data written before, so it is durable now, and so is the
//     record), then applies everything in one bbolt transaction, which is
//     durable when Commit returns;
//  5. releases the sealed quarantine to the allocator.
//
// Step 1 comes before step 2 because a block-freeing change marks its inode
// dirty before it frees: a block in the sealed quarantine therefore belongs
// to an inode whose new map this commit writes. Without the quarantine a
// block freed by a punch could be given to another file, written, and after
// a crash be read again through the punched file's old, durable map — the
// on-disk face of the race the invalidate lock closes in memory.
package meta
