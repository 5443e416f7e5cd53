// Package vfs is holefs's virtual filesystem: inodes, the directory tree,
// open file handles and every file operation, built on the generic page
// cache and a backend's block maps. It is where the locking protocol of
// DESIGN.md is carried out: each block-removing operation takes the inode
// lock and then the mapping's invalidate lock exclusive, truncates the page
// cache of the range, and only then changes the block map and frees blocks.
//
// Lock order, outermost first (LOCKING.md is the authoritative copy):
//
//	FS.nsMu (namespace)
//	  Inode.lock (inode lock, Linux i_rwsem; two inodes by inode number)
//	    Mapping invalidate lock (two mappings by inode number)
//	      pagecache locks (view, page, index, dirty, LRU)
//	        backend extent-map lock, then allocator lock
//
// Errors are syscall.Errno values; the root package wraps them in
// *fs.PathError.
package vfs
