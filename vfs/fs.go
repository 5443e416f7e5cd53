package vfs

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/pagecache"
)

// MaxFileSize is the largest file size (Linux's s_maxbytes): 4 TiB.
const MaxFileSize = int64(1) << 42

// Backend is the storage of a filesystem.
type Backend struct {
	// Store creates the files' block maps and accounts space.
	Store blockmap.Store
	// Device holds file data; nil when Memory is set.
	Device blockdev.Device
	// Memory says the page cache is the storage (memfs, like tmpfs): no
	// device I/O, no direct I/O, and the fallocate modes tmpfs has.
	Memory bool
	// DAX, if set, is Device seen as memory: every regular file is in DAX
	// mode (see package pagecache), with no page cache. Its store must
	// write in place (no log, no shared blocks: clone and dedupe are
	// refused, as Linux refused reflink on DAX files).
	DAX blockdev.DAXDevice
	// Journal commits the namespace and block maps to an image; nil for a
	// filesystem that lives in memory only. Close closes it.
	Journal *meta.Journal
	// Backing mirrors the namespace in a directory of another filesystem
	// (passthrough; see Load); nil otherwise. Close closes it.
	Backing Backing
	// NoSpecialFiles refuses to make FIFOs, sockets and devices
	// (EOPNOTSUPP): an image made before its format could hold them.
	NoSpecialFiles bool
	// FixedNamespace says the backend lays out every name itself (zonefs,
	// with AddFixed): no entry may be made, linked, removed or renamed,
	// and its directories' write bits cannot be set. See zoned.go.
	FixedNamespace bool
}

// Hooks let tests stop an operation at a chosen point.
type Hooks struct {
	// AfterTruncatePages runs in every block-removing operation after the
	// page cache of the range is truncated and before the block map
	// changes: the window of the race the invalidate lock closes.
	AfterTruncatePages func(ino uint64, op string)
}

// FS is a mounted filesystem.
type FS struct {
	cache   *pagecache.Cache
	backend Backend
	hooks   *Hooks

	nsMu    lockcheck.RWMutex // the namespace: every directory's entries, nlink, inode table
	inodes  map[uint64]*Inode // +checklocks:nsMu
	nextIno uint64            // +checklocks:nsMu
	root    *Inode
	closed  atomic.Bool

	changeHook atomic.Pointer[func(Change)] // see SetChangeHook

	reval *revalidator // periodic revalidation of a Backing's files; nil if none; immutable

	syncMu  sync.Mutex // leaf: orders FS.Sync's error cursor
	syncErr uint64     // writeback-error cursor of FS.Sync; +checklocks:syncMu

	// cleanStop stops the background cleaner of a log-structured store
	// (clean.go); nil without one. cleanDone closes when it has stopped.
	cleanStop, cleanDone chan struct{}
}

// New returns a filesystem with an empty root directory on backend.
func New(backend Backend, cacheOpts pagecache.Options, hooks *Hooks) *FS {
	f := &FS{cache: pagecache.NewCache(cacheOpts), backend: backend, hooks: hooks,
		inodes: map[uint64]*Inode{}, nextIno: 1}
	f.nsMu.Init(lockcheck.RankNamespace, 0)
	f.nsMu.Lock()
	f.root = f.newInode(syscall.S_IFDIR | 0o755)
	f.root.parent = f.root
	f.root.nlink = 2
	f.nsMu.Unlock()
	if _, ok := backend.Store.(blockmap.Cleaner); ok {
		f.cleanStop, f.cleanDone = make(chan struct{}), make(chan struct{})
		go f.cleaner(f.cleanStop, f.cleanDone)
	}
	return f
}

// Cache returns the filesystem's page cache.
func (f *FS) Cache() *pagecache.Cache { return f.cache }

// Root returns the root directory.
func (f *FS) Root() *Inode { return f.root }

// newInode makes an inode with the given mode (type and permission bits).
// The caller holds nsMu and links it, which logs it to the journal.
func (f *FS) newInode(mode uint32) *Inode {
	ino := f.nextIno
	f.nextIno++
	in := &Inode{fs: f, ino: ino, typ: mode & syscall.S_IFMT, perm: mode &^ syscall.S_IFMT, uid: procUID, gid: procGID}
	t := now()
	in.atime.Store(t)
	in.mtime.Store(t)
	in.ctime.Store(t)
	f.initInode(in, nil)
	return in
}

// Statfs returns the block size, total and free blocks.
func (f *FS) Statfs() (bsize, total, free int64) {
	total, free = f.backend.Store.Statfs()
	return blockmap.PageSize, total, free
}

// Sync writes back every dirty page and flushes the device.
func (f *FS) Sync() error {
	f.nsMu.RLock()
	var files []*Inode
	for _, in := range f.inodes {
		if in.mapping != nil {
			files = append(files, in)
		}
	}
	f.nsMu.RUnlock()
	var first error
	for _, in := range files {
		if err := in.mapping.Sync(0, 0); err != nil && first == nil {
			first = err
		}
	}
	if err := f.commit(); err != nil && first == nil {
		first = err
	}
	// Like syncfs since Linux 5.8: a writeback error anywhere since the
	// last Sync is reported once, even if this call's own writeback went
	// well (the background flusher may have lost the data).
	f.syncMu.Lock()
	if err := f.cache.ErrCheck(&f.syncErr); err != nil && first == nil {
		first = err
	}
	f.syncMu.Unlock()
	return errno(first)
}

func (f *FS) flushDevice() error {
	if b := f.backend.Backing; b != nil {
		return b.Sync()
	}
	if f.backend.Device == nil {
		return nil
	}
	return f.backend.Device.Flush()
}

// Close writes back everything, stops the cache and closes the device.
func (f *FS) Close() error {
	if f.closed.Swap(true) {
		return syscall.EINVAL
	}
	f.reval.close()
	if f.cleanStop != nil {
		close(f.cleanStop)
		<-f.cleanDone
	}
	first := f.freeOrphans()
	if err := f.cache.Close(); err != nil && first == nil {
		first = err
	}
	if j := f.backend.Journal; j != nil {
		if err := j.Close(); err != nil && first == nil {
			first = err
		}
	} else if err := f.flushDevice(); err != nil && first == nil {
		first = err
	}
	if f.backend.Device != nil {
		if err := f.backend.Device.Close(); err != nil && first == nil {
			first = err
		}
	}
	if b := f.backend.Backing; b != nil {
		if err := b.Close(); err != nil && first == nil {
			first = err
		}
	}
	return errno(first)
}

// freeOrphans frees, as Close starts, the files unlinked while open that
// are still open: no handle outlives the filesystem, and the image must
// not keep them for the next Open to free. Through a mount they are the
// files whose last RELEASE the kernel dropped when it tore the connection
// down at unmount, with the release still queued.
func (f *FS) freeOrphans() error {
	f.nsMu.Lock()
	var dead []*Inode
	for _, in := range f.inodes {
		if in.nlink == 0 && !in.dropped {
			delete(f.inodes, in.ino)
			f.logDrop(in)
			dead = append(dead, in)
		}
	}
	f.nsMu.Unlock()
	var first error
	for _, in := range dead {
		if err := in.evict(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// errno converts an error from the layers below to a syscall.Errno, EIO
// when it carries none.
func errno(err error) error {
	if err == nil {
		return nil
	}
	return toErrno(err)
}
