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
// Lock order, outermost first (LOCKING.md is the authoritative copy):
//
//	inode lock (vfs, Mapping.host)
//	  invalidate lock (Mapping.invalidate)
//	    view lock (Mapping.viewMu)
//	      page lock (Page Locked bit)
//	        extent-map lock (backend)
//	          allocator lock (backend)
//	            index, dirty-set and eviction-clock locks (leaf locks of this package)
//
// The cache-hit read path takes none of these: it finds the page in the
// lockless index, pins it with a reference, and copies under the page's
// content lock, a short reader/writer spin lock that only orders memory
// copies (a data race in Go's memory model otherwise) and never blocks I/O.
package pagecache
