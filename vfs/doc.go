// Package vfs is holefs's virtual filesystem: inodes, the directory tree,
// open file handles and every file operation, built on the generic page
// cache and a backend's block maps. It is where the locking protocol of
// DESIGN.md is carried out: each block-removing operation takes the inode
// lock and then the mapping's invalidate lock exclusive, truncates the page
// cache of the range, and only then changes the block map and frees blocks.
//
// Its locks — FS.nsMu (the namespace), Inode.lock (Linux's i_rwsem), then
// the mapping's invalidate lock and the page cache's and the backend's
// locks — and their order are described in LOCKING.md, the one copy.
//
// A Backend with a Backing keeps its files in a directory of another
// filesystem (passthrough, backing.go): namespace and attribute changes are
// forwarded there before they change anything in memory, and a file changed
// there from outside has its page cache dropped under the same locks as a
// block-removing operation, so the fill paths need nothing of their own.
//
// A Backend with a FixedNamespace (zonefs, zoned.go) lays its tree out
// itself with AddFixed and refuses every namespace change; its files'
// block maps are blockmap.Zone values, to which the file operations apply
// zonefs's rules, reset and finish being block-removing operations.
//
// Errors are syscall.Errno values; the root package wraps them in
// *fs.PathError. The namespace operations (namei.go, at.go) give the
// errno Linux gives on tmpfs for the same call, checking in the order
// Linux's namei and do_renameat2 do, so that a call breaking two rules
// fails as on Linux. Like tmpfs, and unlike ext4 (65000), there is no
// link-count limit and so no EMLINK: a count could only overflow with
// 2^31 names of one inode, more than the in-memory namespace holds.
package vfs
