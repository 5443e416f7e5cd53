// Package meta is holefs's durable metadata: the on-disk format of an image
// and the journal that commits the in-memory filesystem state to it in
// batches, in an order that keeps every crash state consistent.
//
// # Image
//
// An image is a directory holding two files:
//
//	data     the block device: a sparse file of 4 KiB blocks. Block 0 is the
//	         superblock; file data lives in blocks 1 and up; images with a
//	         write-ahead log have it past the last data block.
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
//	         "wal"                  the log's size in blocks (IncompatWAL)
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
// # Write-ahead log
//
// Images with IncompatWAL (every extentfs image mkfs makes; --no-log
// leaves it out) commit to a log instead of meta.db. The
// log is a region of the data file past its last data block (SB.Blocks),
// WALBlocks long (meta.db's super bucket "wal" holds the size; mkfs writes
// the region with zeros, so that overwriting it changes no metadata of the
// host filesystem), written through the same device as the data: one flush
// makes a commit's data and its log record durable together. A record is
// block-aligned: magic, commit sequence, payload length and a CRC-32C of
// the image's UUID, the header and the payload (the namespace changes,
// dirty-inode snapshots and data checksums the meta.db transaction would
// apply). Step 4 above becomes, on these images:
//
//  4. if the commit maps a block anew (a written page whose block its
//     inode's last commit did not map written there), or grows a file,
//     flush the data device first (ordered data); then write the record
//     at the log's head, and flush once. A
//     commit that maps nothing anew — an overwrite in place, a namespace
//     change, a punch — skips the first flush: whichever of its writes a
//     crash keeps, every block its durable map points at holds that file's
//     own data, old or new. So an overwrite+fsync costs one flush, like a
//     plain file's fdatasync; an append or a create costs two.
//
// The one-flush design that skips the ordered flush also for new mappings
// — the record carrying a CRC-32C of each block it maps, and replay
// calling a record whose blocks do not match torn — was considered and
// not taken: a block the last record mapped may be overwritten in place
// after that record is durable (the next writeback), and then no longer
// matches, so the replay would drop a commit an fsync returned for.
//
// The log has two halves. Records go one after the other into the half in
// use, each with the next sequence number; when one does not fit, the
// writer moves to the start of the other half, which it may reuse only
// once meta.db holds every record there (it checkpoints first if not). A
// checkpoint applies the records committed since the last one to meta.db
// in one transaction that sets meta.db's sequence to the last of them; the
// committer runs one when a record takes a half past its middle (once a
// half, off the fsync path: commits go on meanwhile) and after each timed
// commit, a commit runs one when it
// needs the other half, and Close runs one, so a cleanly closed image has
// nothing to replay. A record larger than a half is committed to meta.db
// directly, after a checkpoint; the record after it opens the other half,
// as it would not continue the sequence of the run in the half in use.
//
// Open reads the whole log and, in each half, the run of records from its
// start with consecutive sequence numbers (stale records of the half's
// previous use are older, and a torn record fails its checksum: the run
// ends there). The records to replay are those of both runs newer than
// meta.db, which must follow its sequence without a gap; Open applies them
// in one transaction (read-only, into a private copy of meta.db, so fsck
// checks what the next mount will see). Replay is idempotent: a crash
// before its transaction commits replays the same records again, and after
// it skips them. A valid record newer than the replayed ones elsewhere in
// the log means that commits between them were durable once and a record
// is damaged: Open reports it as a Rollback naming the log block, and
// accepting it (fsck --repair --accept-rollback) replays what is intact and
// zeroes the log. Block 0's commit record names the last checkpoint: a
// checkpoint writes it after its transaction, with no flush of its own (the
// next commit's carries it), so meta.db is never older than the record (one
// older at most while fsck's or an accepted rollback's transaction, written
// after the record, is in flight); a record past what meta.db and the log
// hold is a rollback as before. A damaged newest meta page of meta.db
// loses nothing while the log still holds the commits since the older one.
//
// The freed-block quarantine is released when the commit's record is
// durable, not its checkpoint: replay applies the record before anything
// can allocate. Concurrent commits are grouped: a caller of Commit whose
// changes a commit in flight did not take waits for commitMu; if, by then,
// another caller's commit took them, it returns when that one is durable,
// so N concurrent fsyncs cost about two commits, not N.
//
// Data checksums a record carries are kept in memory (Image.Checksum finds
// them) until the checkpoint puts them in meta.db.
//
// Images without the feature (made before it, or with --no-log or the ext2
// backend) keep committing to meta.db as above; there is no conversion in
// place (make a new image and copy the files). The log's records carry no
// ext2 indirect blocks, so ext2 images have no log.
//
// Step 1 comes before step 2 because a block-freeing change marks its inode
// dirty before it frees: a block in the sealed quarantine therefore belongs
// to an inode whose new map this commit writes. Without the quarantine a
// block freed by a punch could be given to another file, written, and after
// a crash be read again through the punched file's old, durable map — the
// on-disk face of the race the invalidate lock closes in memory.
package meta
