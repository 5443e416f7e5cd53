// Package fuse serves a holefs filesystem to the Linux kernel through FUSE
// (go-fuse v2's fs package): Mount makes a *holefs.FS a POSIX filesystem any
// program can use, and keeps the kernel's caches coherent with changes made
// to the same FS through the library while it is mounted.
//
// # Structure
//
// Every FUSE node is one engine inode (vfs.Inode), and its FUSE node ID is
// its inode number (go-fuse's ExternalNodeID): holefs never reuses an inode
// number within a mount, and the change hook, which names inodes by number,
// names the kernel's nodes too. Requests resolve names relative to a
// directory inode (vfs.FS.LookupAt, CreateAt, RenameAt, ...), never through
// a path rebuilt from the kernel's tree, which a concurrent rename could
// make lead elsewhere. Each open is an engine handle (vfs.File), so the
// engine's per-handle state (readahead, the fsync error cursor, O_APPEND)
// follows the kernel's open file. Directory handles list a snapshot taken at
// opendir and at rewinddir; the offsets they give the kernel are positions
// in it, stable however the directory changes. Special files are nodes
// like any other: mknod makes FIFOs, sockets and devices (vfs.FS.MknodAt),
// whose I/O the kernel does itself (it never sends OPEN for them), so pipes
// and unix sockets work through the mount as on any filesystem.
//
// # Users and permissions
//
// The mount uses default_permissions: the kernel checks access against the
// mode, uid and gid the engine keeps (search permission on every path
// component, the owner-only changes of chmod, chown and explicit times,
// the sticky directory's rule on unlink and rename), and the server creates
// inodes owned by the caller's fsuid and fsgid (the group of a
// set-group-ID directory, whose subdirectories inherit the bit). Options.
// AllowOther (holefs mount --allow-other) lets users other than the
// mounter in. Killing privileges on write, truncate and chown is the
// server's (FUSE_HANDLE_KILLPRIV_V2, see killpriv.go), which spares a
// GETXATTR of security.capability before every write: the set-group-ID
// bit of a file without group execution goes too when the writer is not
// in its group, which the server learns from /proc (a request carries the
// fsgid but not the supplementary groups). The conformance test runs one
// table of these rules against a tmpfs and the mount, as root and as other
// users.
//
// The engine's handle for an open with write access can read when the
// writeback cache is on, as libfuse's passthrough opens its files O_RDWR
// then: the kernel fills a page it only partly overwrites by reading
// through the writer's handle, write-only or not. A user cannot read
// through it: the kernel refuses read(2) on a descriptor without read
// access before asking the server. In that mode the engine also ignores
// O_APPEND, as the kernel appends at the size it owns and writes pages back
// at their offsets through any handle open for writing. In the other modes
// an O_APPEND handle appends at the engine's end of file, but the pages of
// a shared writable mapping that the kernel writes back through it
// (WRITE_CACHE) go where they belong, through a handle opened for them.
//
// # Kernel caching
//
// Three modes (CacheMode):
//
//   - CacheWriteback (the default): FOPEN_KEEP_CACHE on every open and the
//     FUSE writeback cache. Reads that hit the kernel's page cache and
//     buffered writes never reach the server; the kernel writes dirty pages
//     back in WRITE requests of up to 1 MiB. The kernel then owns a cached
//     file's size and modification time.
//   - CacheWritethrough: KEEP_CACHE without the writeback cache: reads are
//     cached, every write is a request.
//   - CacheDirect: FOPEN_DIRECT_IO: every read and write is a request,
//     served from the engine's page cache; shared mmap still works through
//     the kernel's page cache (FUSE_DIRECT_IO_ALLOW_MMAP).
//
// The default was chosen on the numbers of internal/fusebench (fio, 4 KiB
// random I/O against go-fuse's loopback; see the README): writeback serves
// warm reads at kernel page cache speed, like writethrough, and is the only
// mode whose buffered random writes and read/write mix beat a synchronous
// round trip per write by the factors asked for; direct mode pays a round
// trip for every read. holefs mount also raises the mount's share of the
// kernel's dirty page limit from the 1% the kernel gives FUSE
// (Options.MaxDirtyRatio), without which writers wait for writeback long
// before the cache is full.
//
// O_DIRECT through the mount bypasses the kernel's page cache (the kernel
// sends every read and write), and the server serves it from the engine's
// page cache, like an NFS server: no alignment is required. The engine's
// own direct I/O is the library's.
//
// # Coherence with changes made elsewhere
//
// The kernel caches data, attributes and names. Whenever a regular file's
// data or attributes change other than through this mount — through the
// same *holefs.FS used as a library in this process (a write, truncate,
// punch, zero range, collapse, insert, copy_file_range, a write through a
// MappedView, Chmod, Chown, Chtimes), and later a peer node or fsck repair —
// the engine calls its change hook (vfs.FS.SetChangeHook) with the inode
// and the byte range, and the mount sends the kernel
// FUSE_NOTIFY_INVAL_INODE for exactly that range (attributes only, for
// attribute changes). The kernel drops those pages, mapped ones included,
// so a punched range is never served from the kernel's cache again.
// Changes the kernel made itself through the mount are marked (handles
// opened with vfs.FS.OpenFrontend) and not notified: the kernel already
// truncates its page cache around its own FALLOCATE, COPY_FILE_RANGE and
// SETATTR of the size.
//
// The notification is sent on the goroutine that made the change, after
// the engine dropped every lock, and the library call returns once the
// kernel has dropped the pages, so a read through the mount after the call
// sees the new data. It is never sent while holding an engine lock nor from
// a request handler about that handler's inode — the deadlock other FUSE
// filesystems hit: the kernel, to drop a page, waits for a READ in flight
// on it, whose handler may wait for the lock the notifier holds. The one
// notification a handler causes, the attribute refresh after FSYNC and
// FLUSH in writeback mode (so st_blocks catches up with the blocks the
// kernel's writeback allocated), goes through a queue to its own goroutine.
//
// Names and attributes changed through the library are not notified (the
// hook carries data and attribute changes of files, not directory
// entries): the kernel sees new, removed and renamed names after the entry
// timeout, and a chmod of a directory after the attribute timeout
// (Options.Timeout, 1 s).
//
// # Transports
//
// Requests reach the server one of two ways (Options.Transport). The
// dev transport is go-fuse's server: a read(2) of /dev/fuse per request
// and a write(2) per reply. The uring transport (uring.go, on the raw
// io_uring system calls in iouring.go) is FUSE over io_uring, after
// Linux's fs/fuse/dev_uring.c (6.14 and later, behind the fuse module's
// enable_uring parameter): the server answers INIT by read(2) asking for
// FUSE_OVER_IO_URING, then registers ring entries (a header buffer and a
// payload buffer each) on one io_uring per possible CPU, and the kernel
// puts each request in an entry of the queue of the CPU its caller runs
// on. The reply goes back with the command that re-arms the entry, one
// io_uring_enter per request. Each queue is served by one OS thread of its
// own, which submits all its commands: the kernel completes an entry as
// task work of the task that submitted it. FORGET and INTERRUPT still come
// by read(2), and notifications are written to /dev/fuse, as the kernel
// takes them only there. Requests are dispatched to the same RawFileSystem
// through go-fuse's ProtocolServer. Auto picks uring where enable_uring is
// Y and the process is root (the transport calls mount(2) itself), dev
// otherwise; an explicit uring that is unavailable is an error. Like
// go-fuse's server, the transport makes the kernel learn at mount time
// that POLL is unimplemented: the Go runtime's epoll registration of a
// file on the mount would otherwise send a POLL that holds a scheduler
// slot while it waits for this process.
//
// # Deviations from a local Linux filesystem
//
//   - fallocate COLLAPSE_RANGE and INSERT_RANGE are refused by the kernel's
//     FUSE client (EOPNOTSUPP) before they reach the server: they are
//     library-only. Mode 0, KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE are served.
//   - Stores through a shared mapping that race fallocate(PUNCH_HOLE or
//     ZERO_RANGE) on the same range can be lost while an older store
//     survives: the kernel's fuse_file_fallocate writes the range back,
//     sends FALLOCATE and only then truncates its page cache, without
//     holding mapping->invalidate_lock (it does for DAX only), so a store in
//     between can reach the server after the punch through writeback and a
//     later one be dropped with the page. holefs torture --target finds it
//     within a minute when its mapped-write worker runs beside the
//     removers; the engine, through the library, has no such window.
//   - With the writeback cache, the kernel owns the size and modification
//     time of a file it caches: a size change made through the library
//     (truncate, an extending write) drops the kernel's pages past the new
//     end but the mount keeps showing the old size until the file leaves
//     the kernel's inode cache (past-end bytes read as zeros). The other
//     modes show the new size at once. The kernel also stamps writes with
//     its coarse clock, a tick behind the engine's, so a file written just
//     after its creation can show an mtime before its ctime.
//     For the same reason a truncate(2) to the file's current size leaves
//     its times alone in that mode (the kernel stamps only a size change).
//   - In the writethrough and direct modes, chown(2) of a set-user-ID
//     file with -1 for both IDs keeps the bit when root calls it: the
//     kernel sends the same empty SETATTR when it removes a root writer's
//     file capabilities, which must keep it. For other callers, and for
//     root with the writeback cache, it clears the set-ID bits as on a
//     local filesystem.
//   - The access time is what creation or utimensat last set (noatime).
//   - O_TMPFILE is not supported (EOPNOTSUPP); nor are POSIX ACLs
//     (system.posix_acl_* is EOPNOTSUPP).
//   - Devices made by mknod keep their numbers, but the mount is nodev
//     (go-fuse's default), so opening one is EACCES.
//   - statfs reports a nominal 2^32 inodes: holefs has no inode table.
package fuse
