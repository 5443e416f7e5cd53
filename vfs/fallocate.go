package vfs

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockmap"
)

const fallocModes = unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_ZERO_RANGE |
	unix.FALLOC_FL_COLLAPSE_RANGE | unix.FALLOC_FL_INSERT_RANGE | unix.FALLOC_FL_UNSHARE_RANGE

// Fallocate manipulates the file's space (fallocate(2)) with Linux's
// argument rules: mode 0 and KEEP_SIZE allocate; PUNCH_HOLE|KEEP_SIZE,
// ZERO_RANGE, COLLAPSE_RANGE and INSERT_RANGE remove or shift blocks and
// follow the invalidate-lock protocol. memfs, like tmpfs, supports only
// allocation and punching; a store without fallocate (ext2, see
// blockmap.NoFallocator) refuses every mode with EOPNOTSUPP after the
// argument checks, as Linux's vfs_fallocate does when f_op->fallocate is
// missing. UNSHARE_RANGE is EOPNOTSUPP on every backend,
// those with shared (reflinked) blocks included: there a write copies the
// blocks it touches instead, as copy-on-write does.
func (h *File) Fallocate(mode uint32, off, n int64) error {
	if err := h.fallocate(mode, off, n); err != nil {
		return err
	}
	switch {
	case mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0:
		h.changed(off, -1) // everything from off moved
	case mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0:
		h.changed(off, n)
	case mode&unix.FALLOC_FL_KEEP_SIZE == 0:
		h.changed(off, 0) // the size may have grown; no data changed
	}
	return nil
}

// fallocate is Fallocate without the change report, which must wait until
// the inode lock is dropped.
func (h *File) fallocate(mode uint32, off, n int64) error {
	if err := h.check(); err != nil {
		if err != syscall.EISDIR {
			return err
		}
		// A directory handle is read-only, so this returns Linux's
		// argument error or, after them, EBADF, as fallocate(2) on a
		// directory fd does.
		return h.checkFallocate(mode, off, n)
	}
	if err := h.checkFallocate(mode, off, n); err != nil {
		return err
	}
	if h.in.zone() != nil {
		return syscall.EOPNOTSUPP // zonefs has no ->fallocate
	}
	in := h.in
	in.lock.Lock()
	defer in.lock.Unlock()
	size := in.mapping.Size()
	switch {
	case mode&unix.FALLOC_FL_PUNCH_HOLE != 0:
		return in.punch(off, n)
	case mode&unix.FALLOC_FL_ZERO_RANGE != 0:
		return in.zeroRange(off, n, mode&unix.FALLOC_FL_KEEP_SIZE != 0)
	case mode&unix.FALLOC_FL_COLLAPSE_RANGE != 0:
		if off+n >= size {
			return syscall.EINVAL
		}
		return in.collapse(off, n)
	case mode&unix.FALLOC_FL_INSERT_RANGE != 0:
		if off >= size {
			return syscall.EINVAL
		}
		if size+n > MaxFileSize {
			return syscall.EFBIG
		}
		return in.insert(off, n)
	}
	return in.allocate(off, n, mode&unix.FALLOC_FL_KEEP_SIZE != 0)
}

// checkFallocate applies the rules of Linux's vfs_fallocate and the
// backends' own alignment rules, in Linux's order.
func (h *File) checkFallocate(mode uint32, off, n int64) error {
	if off < 0 || n <= 0 {
		return syscall.EINVAL
	}
	if mode&^fallocModes != 0 {
		return syscall.EOPNOTSUPP
	}
	punch := mode&unix.FALLOC_FL_PUNCH_HOLE != 0
	zero := mode&unix.FALLOC_FL_ZERO_RANGE != 0
	collapse := mode&unix.FALLOC_FL_COLLAPSE_RANGE != 0
	insert := mode&unix.FALLOC_FL_INSERT_RANGE != 0
	switch {
	case punch && zero:
		return syscall.EOPNOTSUPP
	case punch && mode&unix.FALLOC_FL_KEEP_SIZE == 0:
		return syscall.EOPNOTSUPP
	case collapse && mode&^unix.FALLOC_FL_COLLAPSE_RANGE != 0:
		return syscall.EINVAL
	case insert && mode&^unix.FALLOC_FL_INSERT_RANGE != 0:
		return syscall.EINVAL
	case mode&unix.FALLOC_FL_UNSHARE_RANGE != 0 && mode&^(unix.FALLOC_FL_UNSHARE_RANGE|unix.FALLOC_FL_KEEP_SIZE) != 0:
		return syscall.EINVAL
	}
	if !h.writable() {
		return syscall.EBADF
	}
	// vfs_fallocate (fs/open.c, from memory of Linux) checks FMODE_WRITE
	// (EBADF), then IS_IMMUTABLE (EPERM), before EFBIG and a missing
	// ->fallocate (EOPNOTSUPP): a zone gone read-only or offline is an
	// immutable file (zonefs_inode_update_mode), so its fallocate is
	// EPERM, not zonefs's EOPNOTSUPP.
	if z := h.in.zone(); z != nil && errors.Is(z.CheckWrite(), syscall.EPERM) {
		return syscall.EPERM
	}
	if off+n > MaxFileSize || off+n < 0 {
		return syscall.EFBIG
	}
	if h.in.fs.noFallocate() {
		return syscall.EOPNOTSUPP
	}
	if h.in.fs.backend.Memory && (zero || collapse || insert) {
		return syscall.EOPNOTSUPP
	}
	if mode&h.in.fs.unsupported() != 0 {
		return syscall.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_UNSHARE_RANGE != 0 {
		return syscall.EOPNOTSUPP
	}
	if (collapse || insert) && (off%pageSize != 0 || n%pageSize != 0) {
		return syscall.EINVAL
	}
	return nil
}

// noFallocate reports whether the store has no fallocate at all.
func (f *FS) noFallocate() bool {
	nf, ok := f.backend.Store.(blockmap.NoFallocator)
	return ok && nf.NoFallocate()
}

// allocate backs [off, off+n) with unwritten blocks (mode 0, KEEP_SIZE).
// It removes nothing, so it needs no invalidate lock.
func (in *Inode) allocate(off, n int64, keepSize bool) error {
	first := off / pageSize
	if err := in.blocks.Allocate(first, (off+n+pageSize-1)/pageSize-first); err != nil {
		return errno(err)
	}
	if m := in.mapping; !keepSize && off+n > m.Size() {
		if err := in.fwdResize(off + n); err != nil {
			return err
		}
		m.ZeroTail(m.Size())
		in.setSize(off + n)
	}
	in.touch()
	return nil
}

// removing runs a block-removing operation on the byte range [off, end)
// (end == maxOffset: to EOF and beyond) in the protocol's order: with the
// inode lock held by the caller (so direct I/O, which holds it shared, has
// drained), take the invalidate lock exclusive over the pages of the range
// (its partial edge pages included; fills elsewhere go on), optionally
// write back the range, truncate its page cache (which unmaps views and
// waits for writeback), run change on the block map, and only then let
// fills in.
func (in *Inode) removing(op string, off, end int64, writeback bool, change func() error) error {
	m := in.mapping
	defer m.LockRemove(off, end).Unlock()
	if writeback {
		if err := m.Sync(off, 0); err != nil {
			return errno(err)
		}
	}
	if err := m.TruncateRange(off, end); err != nil {
		return errno(err)
	}
	in.fs.hookAfterTruncate(in, op)
	if err := change(); err != nil {
		return errno(err)
	}
	in.touch()
	return nil
}

// innerPages returns the whole pages inside [off, off+n).
func innerPages(off, n int64) (first, count int64) {
	first = (off + pageSize - 1) / pageSize
	last := (off + n) / pageSize
	return first, max(last-first, 0)
}

// punch frees the blocks wholly inside the range and zeroes the partial
// pages at its edges (PUNCH_HOLE|KEEP_SIZE). The size never changes.
func (in *Inode) punch(off, n int64) error {
	first, count := innerPages(off, n)
	return in.removing("punch", off, off+n, false, func() error {
		if count == 0 {
			return nil
		}
		return in.blocks.Punch(first, count)
	})
}

// zeroRange makes the range read as zeros with its blocks kept allocated
// (whole pages become unwritten), extending the file unless keepSize.
func (in *Inode) zeroRange(off, n int64, keepSize bool) error {
	// Allocate the holes first: ENOSPC then fails the call before anything
	// changed, and ZeroRange below only converts blocks.
	edge := off / pageSize
	if err := in.blocks.Allocate(edge, (off+n+pageSize-1)/pageSize-edge); err != nil {
		return errno(err)
	}
	first, count := innerPages(off, n)
	err := in.removing("zero", off, off+n, false, func() error {
		if count == 0 {
			return nil
		}
		return in.blocks.ZeroRange(first, count)
	})
	if err != nil {
		return err
	}
	if m := in.mapping; !keepSize && off+n > m.Size() {
		if err := in.fwdResize(off + n); err != nil {
			return err
		}
		m.ZeroTail(m.Size())
		in.setSize(off + n)
	}
	return nil
}

// collapse removes [off, off+n) and shifts the rest of the file down. The
// data after off moves to other file offsets, so it is written back first
// and its pages dropped.
func (in *Inode) collapse(off, n int64) error {
	m := in.mapping
	return in.removing("collapse", off, maxOffset, true, func() error {
		if err := in.blocks.Collapse(off/pageSize, n/pageSize); err != nil {
			return err
		}
		in.setSize(m.Size() - n)
		return nil
	})
}

// insert shifts the data from off up by n, leaving a hole.
func (in *Inode) insert(off, n int64) error {
	m := in.mapping
	return in.removing("insert", off, maxOffset, true, func() error {
		if err := in.blocks.Insert(off/pageSize, n/pageSize); err != nil {
			return err
		}
		in.setSize(m.Size() + n)
		return nil
	})
}
