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
// # DAX
//
// A Mapping made with MappingOptions.DAX caches no pages (dax.go, after
// Linux's fs/dax.c): reads, writes and view entries address the blocks'
// memory on a blockdev.DAXDevice. Fill paths keep the invalidate lock;
// the page lock's job goes to the DAX entry lock of each page index.
package pagecache
