// Package pagecache is holefs's generic page cache: the Linux address_space
// (Mapping), its pages, the fill paths (read, readahead, fault), writeback,
// eviction, truncation and in-process mapped views. It knows nothing of
// extents: a backend's blockmap.File says which device blocks back a page.
//
// # The invalidate lock
//
// Every Mapping carries an invalidate lock (Linux's mapping->invalidate_lock).
// Fill paths that create pages and look up their blocks hold it shared;
// everything that truncates pages and then changes the block map holds it
// exclusive for the whole operation, so no page can be created, and no block
// looked up, between the truncation of the page cache and the freeing of the
// blocks. TruncateRange asserts the exclusive hold in every build.
//
// Unlike Linux's, the lock is held over page ranges (RangeLock, a design
// beyond Linux's per-mapping rw_semaphore): a fill holds shared the pages
// it creates, a remover exclusive the pages it removes (Mapping.LockRemove:
// its partial edge pages included, everything from the offset on for a
// truncate, collapse or insert), so a punch stalls the fills of its own
// range only. Ranges are granted in arrival order among those that
// conflict, which gives a waiting remover preference over later fills of
// its range, as RWMutex gives writers; with no remover about, a fill's
// shared range is one atomic add. Options.FileInvalidateLock widens every
// range to the whole file: Linux's lock, kept for comparison.
//
// The order of these locks and the others — the inode lock (Mapping.host)
// above the invalidate lock, then the view lock (Mapping.viewMu), the page
// lock, and this package's index, dirty-set and eviction-clock leaves, with
// a commit's and the backend's locks between — is described in LOCKING.md,
// the one copy.
//
// The cache-hit read path takes none of these: it finds the page in the
// lockless index, pins it with a reference, and copies under the page's
// content lock, a short reader/writer spin lock that only orders memory
// copies (a data race in Go's memory model otherwise) and never blocks I/O.
// The reference count and the content lock share one atomic word
// (pageref.go), so a hit costs one compare-and-swap to pin and lock and
// one add to unlock and unpin, and a frozen page (0 references, being
// freed) can be neither pinned nor copied from.
//
// # Page memory
//
// A page's bytes live in a frame outside the Go heap (frames.go): mmap'd
// chunks cut into 4 KiB frames, recycled through free lists when the
// page's last reference goes, so the cache's resident memory follows the
// pages it holds instead of the garbage collector's pacing. The reference
// count is what keeps a frame alive: whoever reads or writes a page's
// bytes holds a reference (or, while it fills a new page, the page lock:
// eviction skips a locked page and truncation waits for it, in every lock
// mode, including those where a fill takes no invalidate lock). With
// HOLEFS_MEMCHECK=1 a released frame is poisoned and made inaccessible for
// a while, so a touch after release faults instead of reading another
// page's data.
//
// # DAX
//
// A Mapping made with MappingOptions.DAX caches no pages (dax.go, after
// Linux's fs/dax.c): reads, writes and view entries address the blocks'
// memory on a blockdev.DAXDevice. Fill paths keep the invalidate lock;
// the page lock's job goes to the DAX entry lock of each page index.
package pagecache
