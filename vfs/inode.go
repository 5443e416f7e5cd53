package vfs

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/pagecache"
)

// Inode is a file, directory, symlink or special file (FIFO, character or
// block device, socket: a name and attributes, with no data of its own).
type Inode struct {
	fs  *FS
	ino uint64

	// lock is the inode lock (Linux's i_rwsem): exclusive for writes,
	// size changes and block-removing operations; shared for direct I/O
	// and, in rwsem mode, for buffered reads.
	lock lockcheck.RWMutex

	typ     uint32 // file type bits (S_IFMT); immutable, so IsDir needs no lock
	perm    uint32 // permission bits; +checklocks:fs.nsMu
	nlink   int32  // +checklocks:fs.nsMu
	opens   int32  // open handles and views; +checklocks:fs.nsMu
	uid     uint32 // owner; +checklocks:fs.nsMu
	gid     uint32 // group; +checklocks:fs.nsMu
	atime   atomic.Int64
	mtime   atomic.Int64
	ctime   atomic.Int64
	xattrs  map[string][]byte // extended attributes, nil when none; +checklocks:fs.nsMu
	parent  *Inode            // directories; +checklocks:fs.nsMu
	target  string            // symlinks; immutable
	rdev    uint64            // character and block devices: the device number; immutable
	entries map[string]*Inode // directories; +checklocks:fs.nsMu

	blocks  blockmap.File      // regular files; immutable
	mapping *pagecache.Mapping // regular files; immutable
	evicted bool               // blocks released; +checklocks:lock
	dropped bool               // its drop is logged: nothing more may be; +checklocks:fs.nsMu
	entry   *meta.Entry        // journal entry; nil without an image; immutable
}

// Ino returns the inode number.
func (in *Inode) Ino() uint64 { return in.ino }

// Mapping returns a regular file's page cache, nil for other types.
func (in *Inode) Mapping() *pagecache.Mapping { return in.mapping }

// Lock returns the inode lock.
func (in *Inode) Lock() *lockcheck.RWMutex { return &in.lock }

// IsDir reports whether the inode is a directory.
func (in *Inode) IsDir() bool { return in.typ == syscall.S_IFDIR }

func (in *Inode) touch() {
	now := time.Now().UnixNano()
	in.mtime.Store(now)
	in.ctime.Store(now)
	in.entry.Dirty()
}

// setSize records a new file size; the caller holds the inode lock.
func (in *Inode) setSize(n int64) {
	in.mapping.SetSize(n)
	in.entry.Dirty()
}

// Attr is what stat returns.
type Attr struct {
	Ino    uint64
	Mode   uint32 // type and permission bits, as in syscall.Stat_t
	Nlink  uint32
	Size   int64
	Blocks int64 // 512-byte units, as st_blocks
	Uid    uint32
	Gid    uint32
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	Rdev   uint64 // device number of a character or block device, as unix.Mkdev makes it
	// DAX: the file's reads, writes and mapped views address the device's
	// memory, with no page cache (statx's STATX_ATTR_DAX).
	DAX bool
}

// Stat returns the inode's attributes.
func (in *Inode) Stat() Attr {
	in.fs.nsMu.RLock()
	a := Attr{Ino: in.ino, Mode: in.typ | in.perm, Nlink: uint32(in.nlink), Uid: in.uid, Gid: in.gid,
		Atime: time.Unix(0, in.atime.Load()),
		Mtime: time.Unix(0, in.mtime.Load()), Ctime: time.Unix(0, in.ctime.Load()), Rdev: in.rdev}
	in.fs.nsMu.RUnlock()
	switch {
	case in.mapping != nil:
		a.Size = in.mapping.Size()
		a.Blocks = in.blocks.Blocks() * (blockmap.PageSize / 512)
		a.DAX = in.mapping.DAX()
	case in.IsDir():
		a.Size = blockmap.PageSize
	default:
		a.Size = int64(len(in.target))
	}
	return a
}

// Readlink returns a symlink's target.
func (in *Inode) Readlink() (string, error) {
	if in.typ != syscall.S_IFLNK {
		return "", syscall.EINVAL
	}
	return in.target, nil
}

// release drops an open reference; the last one of an unlinked inode
// frees its blocks.
func (in *Inode) release() error {
	f := in.fs
	f.nsMu.Lock()
	in.opens--
	dead := in.opens == 0 && in.nlink == 0 && !in.dropped // Close frees what is left open
	if dead {
		delete(f.inodes, in.ino)
		f.logDrop(in)
	}
	f.nsMu.Unlock()
	if dead {
		return in.evict()
	}
	return nil
}

// evict frees an unlinked, closed file's pages and blocks. Dropping its
// pages is a truncation like any other: it holds the invalidate lock.
func (in *Inode) evict() error {
	if in.mapping == nil {
		return nil
	}
	in.lock.Lock()
	defer in.lock.Unlock()
	if in.evicted {
		return nil
	}
	defer in.mapping.LockRemove(0, maxOffset).Unlock()
	if err := in.mapping.TruncateRange(0, maxOffset); err != nil {
		return errno(err)
	}
	in.evicted = true
	in.fs.hookAfterTruncate(in, "evict")
	in.mapping.Release()
	return errno(in.blocks.Release())
}

func (f *FS) hookAfterTruncate(in *Inode, op string) {
	if f.hooks != nil && f.hooks.AfterTruncatePages != nil {
		f.hooks.AfterTruncatePages(in.ino, op)
	}
}

func toErrno(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
