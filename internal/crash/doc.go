// Package crash checks that holefs images are crash consistent: it
// records a workload's device I/O and rebuilds, mounts and checks the
// states a crash could leave — the dm-log-writes method — and it injects
// device errors at every I/O of a workload.
//
// # Recording
//
// A workload (random, from a seed; or scripted in tests) runs on a fresh
// image opened with Options.WrapDevice = a blockdev.Recorder, which logs
// every block written (with its data) and every flush, and with
// Hooks.BeforeCommit and AfterCommit, which copy meta.db as it is before
// and after each commit's metadata transaction and mark those moments in
// the device log. Background commits are off (CommitInterval -1), so
// every commit runs inside an operation of the workload: an fsync's, a
// sync's, Close's, or one an allocation forces to release the
// quarantine. The hooks also snapshot the model's namespace and sizes
// then, before and after the operation in flight.
//
// # Crash states
//
// A crash after the first n entries of the log leaves:
//
//   - on the data device, every write a completed flush made durable
//     (one that completed before the flush started), and any subset of the
//     other writes logged so far: a disk's volatile cache may lose or keep
//     each, in any order (blockdev.Replay). A 4 KiB block is assumed to be
//     written atomically; no torn blocks.
//   - in meta.db, the state of the last commit whose transaction
//     completed before n; between a commit's BeforeCommit and AfterCommit
//     marks, that state or the new one. No other: bbolt fsyncs before
//     Commit returns, and its commit is atomic.
//
// Crash points are n = every flush entry (just before the flush
// completes: the writes since the previous flush all unflushed), every
// commit's AfterCommit mark (inside the transaction: both metadata
// states), and the end; between two such points nothing becomes durable,
// so a crash there leaves a state one of them does with some subset. At
// each point the subsets checked are none, all, and up to Config.Subsets
// more, distinct: random halves, in-order prefixes (a disk that does not
// reorder) and random sparse or dense picks. Every crash state is
// rebuilt into an image directory, checked with fsck (meta.Check) before
// mounting, mounted with holefs.Open (an image that does not open is a
// violation), read whole, closed, and checked with fsck again (no orphan
// may survive the mount).
//
// # Images with a write-ahead log
//
// Recorded images of the extentfs backend (with or without data
// checksums) have a
// write-ahead log (meta.IncompatWAL) of 16 blocks, in the data file past
// its data blocks and written through the recorded device, so its record
// writes and flushes are log entries like any other: a crash at every log
// write and flush boundary is enumerated with the rest. meta.db changes
// only at checkpoints (Hooks.BeforeCheckpoint and AfterCheckpoint copy it
// and mark the log; their AfterCheckpoint marks are crash points), and the
// commit hooks mark each commit's record write and the return of its
// flush. The metadata state of a crash is then the checkpoint's meta.db
// with whatever the crash left of the log: the checker reads the commit
// the image replays to (meta.Image.Seq, read-only, before mounting), which
// must lie between the last commit whose flush had returned (LOST below it)
// and the last whose record was written (UNKNOWN past it), and checks the
// image against the model's snapshot of that commit. The log is small
// enough that workloads fill its halves, so checkpoints and records written
// over checkpointed ones are among the states (TestCrashStatesLog).
//
// # What is checked
//
// Every block written carries a signature (torture.SignBlock): the file's
// id in the workload, the block's offset and the operation that wrote it.
// The model keeps every block's history — writes (buffered or O_DIRECT)
// and removals (punch, zero range, truncate) — and which fsync or sync
// covered each. A crash image must hold, for the metadata state it has:
//
//   - exactly the namespace and file sizes of that commit (or of either
//     side of the operation it ran in): every entry a directory fsync
//     committed, every file under exactly one of its names across a
//     rename, no file unlinked before the commit, and the FIFOs the
//     workload makes and removes (inodes with no data: a name and a type)
//     exactly where the commit has them;
//   - in every block of every file, the latest durable event's content or
//     a later write's (written back in place since). An event is durable
//     if the commit holds it with its data flushed first (a removal or an
//     O_DIRECT write finished before the commit, a buffered write that an
//     fsync or sync wrote back before or during it), or if an fsync or sync
//     covering it returned before the crash. Zeros only where that event is
//     a removal or there is none (holes and unwritten extents). Another
//     file's block is FOREIGN, data removed by a committed punch, zero or
//     truncate is STALE, data older than a durable write (or zeros instead
//     of it) is LOST, anything unsigned is CORRUPT.
//   - with Config.DataChecksums, images made with data checksums (every
//     block written out of place): a read that fails its checksum (EIO)
//     is a violation too.
//
// # Boundary
//
// The enumeration covers the ordering between data blocks and metadata
// commits, and the reordering and loss of unflushed data writes. It trusts
// bbolt for meta.db: its commit is taken as atomic and durable on return
// (etcd tests that), and torn or reordered writes inside meta.db are not
// enumerated. Faults cannot be injected into meta.db either: bbolt writes
// it through its own *os.File, not a blockdev.Device. The workload is one
// goroutine (the page cache's flusher still writes back on its own), all
// sizes and I/O are whole blocks, and it does not use mmap, collapse or
// insert range, hard links, symlinks, xattrs or background commits.
//
// # Zoned images
//
// With Config.Backend = holefs.BackendZonefs (holefs crash --backend
// zonefs) the images are zoned: no meta.db, only a zoned device's data
// and its zone state (the write pointers and conditions a drive reports),
// from which zonefs sizes its files at mount. The workload (one
// goroutine, zones of 8 blocks with a capacity of 6, two conventional)
// appends to seq/N with O_DIRECT at the write pointer, fsyncs, resets
// (truncate to 0) and finishes (truncate to the capacity) zones, writes
// cnv/N through the page cache, reopens files and remounts. The device is
// blockdev.NewZonedOn over a Recorder: the same zoned device as the
// file-backed one, with the data file and the zone state file as two
// regions of one recorded device, so that their writes and flushes are
// logged in one order (a reset's discard is logged as writes of zeros).
// Crash points are every flush, every fsync, reset and remount's return,
// and the end, each with the same subsets of the unflushed writes as
// above; each state is split into a data and a zone state file
// (blockdev.WriteZonedImage), its zone state decoded as holefs fsck does
// (blockdev.OpenZonedFile), mounted with holefs.Open, every file read,
// and decoded again after the unmount.
//
// What a zoned device guarantees, and the checker checks: the write
// pointer is the drive's own state, but a drive with a volatile cache can
// lose writes not yet flushed, and the write pointer it reports after a
// power loss must not stand over data it lost (zonefs trusts it as the
// file size). The file-backed device (blockdev.Zoned) implements exactly
// that: an append moves the write pointer in memory, and the zone state
// records it only at the next flush, after the data was flushed; a reset
// records its write pointer and flushes it before it discards; a finish
// discards and flushes before it records the zone full. So a crash
// state's zone, for every sequential file, must hold the first w blocks of
// some version of the file between the last durable one (as an fsync of
// it, a remount or a reset that returned left it) and the last one an op
// started, w at least the durable version's length unless a later reset
// started: every fsynced append is there with its signature, no zeros,
// foreign or pre-reset (STALE) data lie below the recovered write pointer
// (ZEROS, FOREIGN, STALE), no fsynced block is missing (LOST), and past
// the appended data only a finished zone's capacity of zeros. A file's
// size must equal its zone's write pointer (SIZE), and a conventional
// file's every block the last fsynced write or a later one. A zone state
// that does not decode is FSCK, an image that does not mount OPEN.
// TestZonedCrashDetectsBrokenOrdering runs the checker on a device that
// persists the write pointer before the data and on one whose zone state
// reaches the disk after the data (a reset's discard before its write
// pointer): both are caught.
//
// # Fault injection
//
// RunFaults runs a workload once per device operation i with a
// blockdev.Faulty failing operation i with EIO, and every later one too
// (a dead disk) or not (a transient error), and checks the errors the
// operations return, then that the image reopens fsck clean with
// everything an fsync or sync that succeeded made durable. As on Linux, a
// failed fsync or sync promises nothing about the writes it covered, nor
// a failed write about its range.
package crash
