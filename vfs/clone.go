package vfs

import (
	"bytes"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/pagecache"
)

// lockTwoInvalidate takes two mappings' invalidate locks exclusive over
// the n bytes at aOff in a and at bOff in b, in inode-number order whatever
// the offsets (LOCKING.md). One file gets one range, the span of both: a
// goroutine holds at most one range of a mapping.
func lockTwoInvalidate(a *Inode, aOff int64, b *Inode, bOff, n int64) [2]pagecache.RangeHold {
	if a == b {
		return [2]pagecache.RangeHold{a.mapping.LockRemove(min(aOff, bOff), max(aOff, bOff)+n)}
	}
	if a.ino > b.ino {
		a, aOff, b, bOff = b, bOff, a, aOff
	}
	first := a.mapping.LockRemove(aOff, aOff+n)
	return [2]pagecache.RangeHold{first, b.mapping.LockRemove(bOff, bOff+n)}
}

// unlockTwoInvalidate releases what lockTwoInvalidate took.
func unlockTwoInvalidate(h [2]pagecache.RangeHold) {
	h[1].Unlock()
	h[0].Unlock()
}

// remapRange is what Clone and Dedupe agreed to share: the byte count and
// the page count that covers it (the last page may be the source's partial
// EOF page).
type remapRange struct {
	count int64 // bytes
	pages int64
}

// remapChecks validates a clone or dedupe request with the inode locks
// held, as Linux's generic_remap_checks: offsets block-aligned, the count
// clipped to the source's EOF (0 means "to EOF") and block-aligned unless
// it ends at that EOF, no overlap within one file, and for dedupe no
// range past the destination's EOF.
func remapChecks(src, dst *Inode, srcOff, dstOff, n int64, dedupe bool) (remapRange, error) {
	srcSize, dstSize := src.mapping.Size(), dst.mapping.Size()
	if srcOff%pageSize != 0 || dstOff%pageSize != 0 {
		return remapRange{}, syscall.EINVAL
	}
	if srcOff >= srcSize && !(srcOff == srcSize && n == 0) {
		return remapRange{}, syscall.EINVAL
	}
	if n == 0 {
		n = srcSize - srcOff
	}
	n = min(n, srcSize-srcOff)
	if dedupe {
		if dstOff >= dstSize {
			return remapRange{}, syscall.EINVAL
		}
		n = min(n, dstSize-dstOff)
	}
	if n <= 0 {
		return remapRange{}, nil
	}
	if dstOff+n > MaxFileSize {
		return remapRange{}, syscall.EFBIG
	}
	toEOF := srcOff+n == srcSize && (!dedupe || dstOff+n == dstSize)
	if n%pageSize != 0 && !toEOF {
		return remapRange{}, syscall.EINVAL
	}
	// A partial EOF page may only land at or past the destination's EOF:
	// cloned into the middle of a file, its tail would show the
	// source's bytes past EOF (zeros) over the destination's data.
	if n%pageSize != 0 && dstOff+n < dstSize {
		return remapRange{}, syscall.EINVAL
	}
	pages := (n + pageSize - 1) / pageSize
	if src == dst && srcOff < dstOff+pages*pageSize && dstOff < srcOff+pages*pageSize {
		return remapRange{}, syscall.EINVAL
	}
	return remapRange{count: n, pages: pages}, nil
}

// remapPrep checks the handles of a clone or dedupe.
func (h *File) remapPrep(dst *File) (blockmap.Cloner, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	if err := dst.check(); err != nil {
		return nil, err
	}
	if !h.readable() || !dst.writable() || dst.flags&syscall.O_APPEND != 0 {
		return nil, syscall.EBADF
	}
	if h.in.fs != dst.in.fs {
		return nil, syscall.EXDEV
	}
	if h.in.mapping.DAX() || dst.in.mapping.DAX() {
		// A DAX write goes to the block in place: a shared block would
		// change under the other file (Linux's xfs_reflink_remap_prep
		// refused DAX files with EINVAL).
		return nil, syscall.EINVAL
	}
	c, ok := dst.in.blocks.(blockmap.Cloner)
	if !ok || !c.CanClone() {
		return nil, syscall.EOPNOTSUPP
	}
	return c, nil
}

// Clone makes n bytes of dst at dstOff share the blocks of h at srcOff
// (FICLONERANGE; n 0 means to the source's EOF): afterwards they read the
// same, and a write to either copies the block first. Both files take the
// path of a block-removing operation: inode locks and invalidate locks
// exclusive, in inode order, so Clone(a→b) and Clone(b→a) cannot deadlock.
func (h *File) Clone(dst *File, srcOff, dstOff, n int64) error {
	c, err := h.remapPrep(dst)
	if err != nil {
		return err
	}
	if srcOff < 0 || dstOff < 0 || n < 0 || srcOff+n < srcOff || dstOff+n < dstOff {
		return syscall.EINVAL
	}
	src, di := h.in, dst.in
	lockTwo(src, di)
	r, err := remapChecks(src, di, srcOff, dstOff, n, false)
	if err == nil && r.count > 0 {
		inv := lockTwoInvalidate(src, srcOff, di, dstOff, r.pages*pageSize)
		err = remapLocked(c, src, di, srcOff, dstOff, r, "clone")
		if err == nil {
			if end := dstOff + r.count; end > di.mapping.Size() {
				di.setSize(end)
			}
			di.touch()
		}
		unlockTwoInvalidate(inv)
	}
	unlockTwo(src, di)
	if err == nil && r.count > 0 {
		dst.changed(dstOff, r.count)
	}
	return err
}

// remapLocked shares the pages with both inode and invalidate locks held:
// the source's dirty data reaches its blocks and its pages forget them (a
// page must not write a shared block in place), the destination's pages
// go, and the block maps change.
func remapLocked(c blockmap.Cloner, src, dst *Inode, srcOff, dstOff int64, r remapRange, op string) error {
	span := r.pages * pageSize
	if err := src.mapping.Sync(srcOff, span); err != nil {
		return errno(err)
	}
	src.mapping.ForgetBlocks(srcOff/pageSize, srcOff/pageSize+r.pages)
	if err := dst.mapping.TruncateRange(dstOff, dstOff+span); err != nil {
		return errno(err)
	}
	dst.fs.hookAfterTruncate(dst, op)
	return errno(c.CloneFrom(src.blocks, srcOff/pageSize, dstOff/pageSize, r.pages))
}

// Dedupe shares n bytes of dst at dstOff with h at srcOff if they are
// byte-for-byte equal (FIDEDUPERANGE). It returns the bytes deduplicated
// and whether the ranges were equal; unequal ranges change nothing and are
// not an error. The destination's times do not change: its content does
// not.
func (h *File) Dedupe(dst *File, srcOff, dstOff, n int64) (int64, bool, error) {
	c, err := h.remapPrep(dst)
	if err != nil {
		return 0, false, err
	}
	if srcOff < 0 || dstOff < 0 || n < 0 || srcOff+n < srcOff || dstOff+n < dstOff {
		return 0, false, syscall.EINVAL
	}
	src, di := h.in, dst.in
	lockTwo(src, di)
	defer unlockTwo(src, di)
	r, err := remapChecks(src, di, srcOff, dstOff, n, true)
	if err != nil || r.count == 0 {
		return 0, err == nil, err
	}
	defer unlockTwoInvalidate(lockTwoInvalidate(src, srcOff, di, dstOff, r.pages*pageSize))
	// With both ranges of the invalidate locks held no page of them can
	// be dirtied (a mapped write faults into page_mkwrite, which waits for
	// the range): after writeback the device holds what the files hold.
	for _, x := range []struct {
		in  *Inode
		off int64
	}{{src, srcOff}, {di, dstOff}} {
		if err := x.in.mapping.Sync(x.off, r.count); err != nil {
			return 0, false, errno(err)
		}
	}
	same, err := sameData(src, di, srcOff, dstOff, r.count)
	if err != nil || !same {
		return 0, false, err
	}
	if err := remapLocked(c, src, di, srcOff, dstOff, r, "dedupe"); err != nil {
		return 0, false, err
	}
	return r.count, true, nil
}

// sameData compares two written-back ranges as stored.
func sameData(a, b *Inode, aOff, bOff, n int64) (bool, error) {
	const chunk = 256 << 10
	abuf, bbuf := make([]byte, min(n, chunk)), make([]byte, min(n, chunk))
	for done := int64(0); done < n; {
		k := min(n-done, chunk)
		if err := a.readStored(abuf[:k], aOff+done); err != nil {
			return false, err
		}
		if err := b.readStored(bbuf[:k], bOff+done); err != nil {
			return false, err
		}
		if !bytes.Equal(abuf[:k], bbuf[:k]) {
			return false, nil
		}
		done += k
	}
	return true, nil
}

// readStored reads [off, off+len(p)) from the file's blocks, zeros for
// holes and unwritten extents.
func (in *Inode) readStored(p []byte, off int64) error {
	first := off / pageSize
	last := (off + int64(len(p)) + pageSize - 1) / pageSize
	buf := make([]byte, (last-first)*pageSize)
	for page := first; page < last; {
		e, err := in.blocks.Lookup(page, last-page)
		if err != nil {
			return errno(err)
		}
		b := buf[(page-first)*pageSize : (e.End()-first)*pageSize]
		if e.Kind == blockmap.Mapped {
			if err := in.fs.backend.Device.ReadBlocks(b, e.Block); err != nil {
				return errno(err)
			}
		} else {
			clear(b)
		}
		page = e.End()
	}
	copy(p, buf[off-first*pageSize:])
	return nil
}
