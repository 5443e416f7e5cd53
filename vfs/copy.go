package vfs

import (
	"io"
	"os"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// lockTwo takes the inode locks of two files exclusive in inode-number
// order (one lock if they are the same file), as two-file operations must
// to stay deadlock-free against the same operation in the other direction.
func lockTwo(a, b *Inode) {
	if a == b {
		a.lock.Lock()
		return
	}
	if a.ino > b.ino {
		a, b = b, a
	}
	a.lock.Lock()
	b.lock.Lock()
}

// unlockTwo releases what lockTwo took.
func unlockTwo(a, b *Inode) {
	a.lock.Unlock()
	if a != b {
		b.lock.Unlock()
	}
}

const copyChunk = 1 << 20

// CopyRange copies n bytes from h at srcOff to dst at dstOff through the
// page cache (copy_file_range(2)), stopping at the source's EOF. It returns
// the bytes copied. Overlapping ranges of one file are EINVAL.
func (h *File) CopyRange(dst *File, srcOff, dstOff, n int64) (int64, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	if err := dst.check(); err != nil {
		return 0, err
	}
	if !h.readable() || !dst.writable() || dst.flags&os.O_APPEND != 0 {
		return 0, syscall.EBADF
	}
	if srcOff < 0 || dstOff < 0 || n < 0 {
		return 0, syscall.EINVAL
	}
	if srcOff+n < srcOff || dstOff+n < dstOff {
		return 0, syscall.EOVERFLOW
	}
	if z := dst.in.zone(); z != nil {
		// Linux copies into zonefs through a buffered write (splice).
		var err error
		if n, err = zoneCopy(z, dstOff, n); err != nil || n == 0 {
			return 0, err
		}
	}
	lockTwo(h.in, dst.in)
	done, err := h.copyLocked(dst, srcOff, dstOff, n)
	unlockTwo(h.in, dst.in)
	dst.in.mapping.Cache().BalanceDirty()
	if done > 0 {
		dst.changed(dstOff, done)
	}
	return done, err
}

// copyLocked is CopyRange with both inode locks held.
func (h *File) copyLocked(dst *File, srcOff, dstOff, n int64) (int64, error) {
	src, dsti := h.in, dst.in
	// Linux's generic_copy_file_checks: clip to the source's EOF, then to
	// the largest file size (EFBIG only at or past it), and only then
	// reject an overlap within one file.
	n = min(n, max(src.mapping.Size()-srcOff, 0))
	if dstOff >= MaxFileSize {
		return 0, syscall.EFBIG
	}
	n = min(n, MaxFileSize-dstOff)
	if src == dsti && srcOff < dstOff+n && dstOff < srcOff+n {
		return 0, syscall.EINVAL
	}
	if n == 0 {
		return 0, nil
	}
	if done, ok, err := h.copyByClone(dst, srcOff, dstOff, n); ok {
		return done, err
	}
	first := dstOff / pageSize
	if err := dsti.blocks.Allocate(first, (dstOff+n+pageSize-1)/pageSize-first); err != nil {
		return 0, errno(err)
	}
	buf := make([]byte, min(n, copyChunk))
	var done int64
	for done < n {
		chunk := buf[:min(int64(len(buf)), n-done)]
		r, err := src.mapping.ReadLocked(chunk, srcOff+done)
		if err != nil && err != io.EOF {
			return done, errno(err)
		}
		if r == 0 {
			break
		}
		w, err := dsti.mapping.Write(chunk[:r], dstOff+done)
		done += int64(w)
		if err != nil {
			return done, errno(err)
		}
	}
	dsti.touch()
	return done, nil
}

// copyByClone shares the blocks instead of copying them when the backend
// can and the range allows it (block-aligned, or ending at the source's
// EOF at or past the destination's), as Linux's copy_file_range tries a
// reflink first. ok false: copy instead. The caller holds both inode
// locks.
func (h *File) copyByClone(dst *File, srcOff, dstOff, n int64) (int64, bool, error) {
	c, ok := dst.in.blocks.(blockmap.Cloner)
	if !ok || !c.CanClone() || h.in.mapping.DAX() || dst.in.mapping.DAX() {
		return 0, false, nil
	}
	r, err := remapChecks(h.in, dst.in, srcOff, dstOff, n, false)
	if err != nil || r.count != n {
		return 0, false, nil
	}
	defer unlockTwoInvalidate(lockTwoInvalidate(h.in, srcOff, dst.in, dstOff, r.pages*pageSize))
	if err := remapLocked(c, h.in, dst.in, srcOff, dstOff, r, "clone"); err != nil {
		return 0, true, err
	}
	if end := dstOff + n; end > dst.in.mapping.Size() {
		dst.in.setSize(end)
	}
	dst.in.touch()
	return n, true, nil
}
