package vfs

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/pagecache"
)

const pageSize = blockmap.PageSize

// File is an open file handle.
type File struct {
	in       *Inode
	flags    int
	frontend bool // opened with OpenFrontend; immutable
	ra       pagecache.ReadaheadState

	mu       sync.Mutex  // leaf lock: errSince
	errSince uint64      // writeback errors before this were reported; +checklocks:mu
	closed   atomic.Bool // read by every call: a load, no lock, no write to the handle's cache line
}

// Open returns a handle on the inode with os.OpenFile flags (O_RDONLY,
// O_WRONLY, O_RDWR, O_APPEND, O_TRUNC, O_DIRECT). Directories open
// read-only; symlinks cannot be opened, nor can special files, which have
// no data here (see openSpecial).
func (f *FS) Open(in *Inode, flags int) (*File, error) { return f.open(in, flags, false) }

// open is Open and OpenFrontend.
func (f *FS) open(in *Inode, flags int, frontend bool) (*File, error) {
	if err := in.openSpecial(); err != nil {
		return nil, err
	}
	acc := flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	switch {
	case in.IsDir() && (acc != os.O_RDONLY || flags&os.O_TRUNC != 0):
		return nil, syscall.EISDIR // O_TRUNC asks to write, as in Linux's build_open_flags
	case in.typ == syscall.S_IFLNK:
		return nil, syscall.ELOOP
	case flags&syscall.O_DIRECT != 0 && (f.backend.Memory || in.IsDir()):
		return nil, syscall.EINVAL
	}
	if err := in.zoneMayOpen(flags); err != nil {
		return nil, err
	}
	f.nsMu.Lock()
	if in.nlink == 0 && in.opens == 0 {
		f.nsMu.Unlock()
		return nil, syscall.ENOENT
	}
	in.opens++
	f.nsMu.Unlock()
	if err := in.revalidate(); err != nil {
		_ = in.release()
		return nil, err
	}
	h := &File{in: in, flags: flags, frontend: frontend}
	if in.mapping != nil {
		h.errSince = in.mapping.ErrSample()
		// ->open before O_TRUNC, as Linux's do_open runs vfs_open before
		// handle_truncate: an open explicit-open refuses resets nothing.
		if err := h.zoneOpenWrite(); err != nil {
			_ = in.release()
			return nil, err
		}
		// Linux truncates with O_TRUNC whatever the access mode (POSIX
		// leaves O_RDONLY|O_TRUNC unspecified); the caller has checked
		// write permission, as may_open does.
		if flags&os.O_TRUNC != 0 {
			if err := h.resize(0); err != nil {
				h.zoneCloseWrite()
				_ = in.release()
				return nil, err
			}
		}
	}
	return h, nil
}

// Stat returns the open file's attributes; EBADF once the handle is closed.
func (h *File) Stat() (Attr, error) {
	if h.closed.Load() {
		return Attr{}, syscall.EBADF
	}
	return h.in.Stat(), nil
}

// Inode returns the handle's inode.
func (h *File) Inode() *Inode { return h.in }

func (h *File) readable() bool { return h.flags&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY }
func (h *File) writable() bool { return h.flags&(os.O_WRONLY|os.O_RDWR) != os.O_RDONLY }

// direct reports whether I/O bypasses the page cache through the direct
// I/O path. A DAX file has no cache to bypass: its reads and writes are
// direct already and take the DAX path whatever the flags (as Linux's
// ext2 and ext4 do), unaligned ones included.
func (h *File) direct() bool {
	return h.flags&syscall.O_DIRECT != 0 && !h.in.mapping.DAX()
}

// check returns EBADF for a closed handle and EISDIR for a directory.
func (h *File) check() error {
	if h.closed.Load() {
		return syscall.EBADF
	}
	if h.in.mapping == nil {
		return syscall.EISDIR
	}
	return nil
}

// ReadAt reads at off. Like io.ReaderAt it returns io.EOF with a short count
// at the end of file.
func (h *File) ReadAt(p []byte, off int64) (int, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	if !h.readable() {
		return 0, syscall.EBADF
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if z := h.in.zone(); z != nil {
		if err := z.CheckRead(); err != nil {
			return 0, errno(err)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.direct() {
		n, err := h.readDirect(p, off)
		return n, h.in.zoneErr(err, false)
	}
	n, err := h.in.mapping.Read(p, off, &h.ra)
	if err != nil && err != io.EOF {
		err = h.in.zoneErr(errno(err), false)
	}
	return n, err
}

// WriteAt writes at off (at the end of file with O_APPEND, returning the
// offset written at).
func (h *File) WriteAt(p []byte, off int64) (int, int64, error) {
	if err := h.check(); err != nil {
		return 0, off, err
	}
	if !h.writable() {
		return 0, off, syscall.EBADF
	}
	if off < 0 {
		return 0, off, syscall.EINVAL
	}
	if z := h.in.zone(); z != nil && len(p) > 0 {
		var err error
		if p, err = h.zoneWrite(z, p, off); err != nil {
			return 0, off, err
		}
	}
	var n int
	var err error
	if h.direct() {
		n, off, err = h.writeDirect(p, off)
	} else {
		n, off, err = h.writeBuffered(p, off)
		// Throttling may write back for as long as the device takes: never
		// under the inode lock, which removers (and rwsem-mode readers) need.
		h.in.mapping.Cache().BalanceDirty()
	}
	err = h.in.zoneErr(err, true)
	if n > 0 {
		h.changed(off, int64(n))
	}
	return n, off, err
}

// writeBuffered copies p into the page cache at off under the inode lock.
func (h *File) writeBuffered(p []byte, off int64) (int, int64, error) {
	in := h.in
	in.lock.Lock()
	defer in.lock.Unlock()
	m := in.mapping
	if h.flags&os.O_APPEND != 0 {
		off = m.Size()
	}
	if len(p) == 0 {
		return 0, off, nil
	}
	end := off + int64(len(p))
	if end > MaxFileSize || end < off {
		return 0, off, syscall.EFBIG
	}
	// Allocate before copying, so a full device fails the write with
	// ENOSPC instead of failing writeback later with data already lost.
	first := off / pageSize
	if err := in.blocks.Allocate(first, (end+pageSize-1)/pageSize-first); err != nil {
		return 0, off, errno(err)
	}
	n, err := m.Write(p, off)
	if n > 0 {
		in.touch()
	}
	return n, off, errno(err)
}

// Truncate sets the file size. Shrinking is a block-removing operation:
// inode lock, invalidate lock, truncate the page cache past the new size,
// then free the blocks.
func (h *File) Truncate(size int64) error {
	if err := h.check(); err != nil {
		if err == syscall.EISDIR {
			return syscall.EINVAL // ftruncate(2) of a directory
		}
		return err
	}
	if !h.writable() {
		return syscall.EINVAL
	}
	if size < 0 {
		return syscall.EINVAL
	}
	if size > MaxFileSize {
		return syscall.EFBIG
	}
	return h.resize(size)
}

// resize is Truncate once the arguments are checked.
func (h *File) resize(size int64) error {
	in := h.in
	in.lock.Lock()
	old := in.mapping.Size()
	err := in.truncate(size)
	in.lock.Unlock()
	if err == nil {
		h.changed(min(old, size), -1)
	}
	return err
}

// truncate changes the size; the caller holds the inode lock exclusive.
func (in *Inode) truncate(size int64) error {
	if z := in.zone(); z != nil {
		return in.truncateZone(z, size)
	}
	m := in.mapping
	old := m.Size()
	if err := in.fwdResize(size); err != nil {
		return err
	}
	in.touch()
	if size >= old {
		m.ZeroTail(old)
		in.setSize(size)
		return nil
	}
	// Only the pages from the one holding the new EOF on: fills below it
	// go on (pagecache.RangeLock).
	defer m.LockRemove(size, maxOffset).Unlock()
	in.setSize(size)
	if err := m.TruncateRange(size, maxOffset); err != nil {
		return errno(err)
	}
	in.fs.hookAfterTruncate(in, "truncate")
	return errno(in.blocks.Truncate((size + pageSize - 1) / pageSize))
}

// Sync writes back the file's dirty pages, commits the image's metadata
// (or flushes the device of a filesystem without an image, or the file's
// own device: its backing file), and reports a
// writeback error that happened since this handle last checked (once per
// handle, like Linux's fsync). For a directory it commits its entries.
func (h *File) Sync() error {
	if err := h.check(); err == syscall.EISDIR {
		return errno(h.in.fs.commit())
	} else if err != nil {
		return err
	}
	m := h.in.mapping
	// This call's own writeback errors are recorded in the mapping's error
	// sequence like everyone else's; ErrCheck reports them once per handle.
	_ = m.Sync(0, 0)
	ferr := h.in.commit()
	h.mu.Lock()
	serr := m.ErrCheck(&h.errSince)
	h.mu.Unlock()
	if serr != nil {
		// A conventional zone's writeback error is a zone I/O error too.
		return h.in.zoneErr(errno(serr), true)
	}
	return errno(ferr)
}

// Close releases the handle. Closing an unlinked file's last handle frees
// its blocks.
func (h *File) Close() error {
	if !h.closed.CompareAndSwap(false, true) {
		return syscall.EBADF
	}
	h.zoneCloseWrite()
	return h.in.release()
}

// Readahead reads [off, off+n) into the cache (readahead(2)).
func (h *File) Readahead(off, n int64) error {
	if err := h.check(); err != nil {
		return err
	}
	if !h.readable() {
		return syscall.EBADF
	}
	if n == 0 {
		return nil // readahead(2) of no bytes reads nothing (fadvise's 0 means to EOF)
	}
	return errno(h.in.mapping.Readahead(off, n))
}

// Fadvise applies posix_fadvise advice (unix.FADV_*) to [off, off+n).
func (h *File) Fadvise(off, n int64, advice int) error {
	if err := h.check(); err != nil {
		if err == syscall.EISDIR {
			return nil // Linux accepts advice on directories and ignores it
		}
		return err
	}
	return errno(h.in.mapping.Fadvise(&h.ra, off, n, advice))
}

// Mmap maps [off, off+n) of the file; writable needs a read-write handle.
// The view keeps the file alive until Unmap, like a real mapping.
func (h *File) Mmap(off, n int64, writable bool) (*View, error) {
	if err := h.check(); err != nil {
		if err == syscall.EISDIR {
			return nil, syscall.ENODEV
		}
		return nil, err
	}
	if !h.readable() || (writable && !h.writable()) {
		return nil, syscall.EACCES
	}
	if z := h.in.zone(); z != nil && writable && z.Sequential() {
		return nil, syscall.EINVAL // zonefs_file_mmap: writeback would not write in order
	}
	// Take the view's hold on the file first: a Close of this handle
	// racing the Mmap could otherwise evict the file under the new view.
	f := h.in.fs
	f.nsMu.Lock()
	if h.in.opens == 0 {
		f.nsMu.Unlock()
		return nil, syscall.EBADF
	}
	h.in.opens++
	f.nsMu.Unlock()
	v, err := h.in.mapping.Mmap(off, n, writable)
	if err != nil {
		_ = h.in.release()
		return nil, errno(err)
	}
	return &View{MappedView: v, in: h.in, off: off}, nil
}

// View is a mapped view of a file that holds the file open.
type View struct {
	*pagecache.MappedView
	in   *Inode
	off  int64 // file offset of the view's first byte
	once sync.Once
}

// WriteAt writes to the view at byte offset off, as stores to a shared
// mapping do, and reports the change to the change hook.
func (v *View) WriteAt(p []byte, off int64) (int, error) {
	n, err := v.MappedView.WriteAt(p, off)
	if n > 0 {
		v.in.fs.changed(v.in, false, v.off+off, int64(n))
	}
	return n, err
}

// Unmap removes the view and drops its hold on the file.
func (v *View) Unmap() error {
	var err error // a second Unmap does nothing, as munmap(2)
	v.once.Do(func() {
		if err = v.MappedView.Unmap(); err == nil {
			err = v.in.release()
		}
	})
	return err
}
