package vfs

import (
	"io"
	"os"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// Direct I/O moves data between the caller's buffer and the device without
// the page cache. Offsets and lengths must be multiples of the block size
// (EINVAL otherwise, as on a 4 KiB-sector device). It holds the inode lock
// shared, so block-removing operations, which take it exclusive, wait for
// it to drain (Linux's inode_dio_wait); it writes back and drops cached
// pages of its range so the cache and the device agree.

func checkDirect(p []byte, off int64) error {
	if off%pageSize != 0 || len(p)%pageSize != 0 {
		return syscall.EINVAL
	}
	return nil
}

// readDirect reads whole blocks at off, short at EOF.
func (h *File) readDirect(p []byte, off int64) (int, error) {
	if err := checkDirect(p, off); err != nil {
		return 0, err
	}
	in := h.in
	in.lock.RLock()
	defer in.lock.RUnlock()
	m := in.mapping
	size := m.Size()
	if off >= size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	// Dirty cached data is newer than the device: write it back first.
	if err := m.Sync(off, end-off); err != nil {
		return 0, errno(err)
	}
	endPage := (end + pageSize - 1) / pageSize
	for page := off / pageSize; page < endPage; {
		e, err := in.blocks.Lookup(page, endPage-page)
		if err != nil {
			return 0, errno(err)
		}
		buf := p[(page*pageSize - off):(e.End()*pageSize - off)]
		if e.Kind == blockmap.Mapped {
			if err := in.device().ReadBlocks(buf, e.Block); err != nil {
				return int(page*pageSize - off), errno(err)
			}
		} else {
			clear(buf)
		}
		page = e.End()
	}
	n := int(end - off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeDirect writes whole blocks at off (at EOF with O_APPEND, which must
// then be block aligned) and returns the offset written at. Writes past EOF
// take the inode lock exclusive, since they change the size.
func (h *File) writeDirect(p []byte, off int64) (int, int64, error) {
	appending := h.flags&os.O_APPEND != 0
	if appending {
		off = 0 // checked below, at EOF
	}
	if err := checkDirect(p, off); err != nil {
		return 0, off, err
	}
	if len(p) == 0 {
		return 0, off, nil
	}
	in := h.in
	var extending bool
	if appending {
		in.lock.Lock()
		defer in.lock.Unlock()
		off, extending = in.mapping.Size(), true
		if off%pageSize != 0 {
			return 0, off, syscall.EINVAL
		}
	}
	end := off + int64(len(p))
	if end > MaxFileSize {
		return 0, off, syscall.EFBIG
	}
	if !appending {
		in.lock.RLock()
		extending = end > in.mapping.Size()
		if extending {
			in.lock.RUnlock()
			in.lock.Lock()
			defer in.lock.Unlock()
		} else {
			defer in.lock.RUnlock()
		}
	}
	n, err := h.writeDirectLocked(p, off, extending)
	return n, off, err
}

// writeDirectLocked is writeDirect with the inode lock held (exclusive
// when extending).
func (h *File) writeDirectLocked(p []byte, off int64, extending bool) (int, error) {
	in := h.in
	m := in.mapping
	if err := in.zoneWriteAt(off); err != nil {
		return 0, err
	}
	first, count := off/pageSize, int64(len(p))/pageSize
	if err := m.Sync(off, int64(len(p))); err != nil {
		return 0, errno(err)
	}
	m.ZapRange(first*pageSize, count*pageSize)
	m.InvalidateClean(first, first+count)
	if err := in.blocks.Allocate(first, count); err != nil {
		return 0, errno(err)
	}
	if _, ok := in.blocks.(blockmap.Remapper); ok {
		// Pages that survived the invalidation (pinned, mapped) may know
		// blocks this write is about to move: a later writeback must ask
		// the map instead of writing a block that is freed by then.
		m.ForgetBlocks(first, first+count)
	}
	for page := first; page < first+count; {
		n, err := in.writeBlocks(p[(page-first)*pageSize:], page, first+count-page)
		if err != nil {
			// A short write: the pages written are on the device, mapped
			// written and reported, so they must be inside the file as
			// after a short write on Linux, not written blocks past EOF.
			done := (page - first) * pageSize
			if done > 0 {
				in.directWritten(p[:done], off, extending)
			}
			return int(done), errno(err)
		}
		page += n
	}
	in.directWritten(p, off, extending)
	return len(p), nil
}

// directWritten finishes a direct write of p at off that reached the
// device: the cache, the size and the times learn of it.
func (in *Inode) directWritten(p []byte, off int64, extending bool) {
	m := in.mapping
	end := off + int64(len(p))
	// Pages a reader pinned through writeDirectLocked's invalidation, or
	// filled from the old blocks while it wrote, get the new bytes.
	m.UpdateClean(off, p)
	// The size may have grown between the shared and the exclusive lock:
	// a direct write never shrinks a file.
	if extending && end > m.Size() {
		// Zero the cached tail of the old EOF page only if the write did not
		// cover it: a covered page may already hold the new data, read back
		// by a concurrent buffered read since writeDirectLocked's
		// invalidation.
		if size := m.Size(); size < off {
			m.ZeroTail(size)
		}
		in.setSize(end)
	}
	in.touch()
}

// writeBlocks writes the first of the pages [page, page+max), whose blocks
// are allocated, straight to the device, asking the block map where they
// go when it writes out of place; it returns how many pages it wrote.
func (in *Inode) writeBlocks(p []byte, page, max int64) (int64, error) {
	var e blockmap.Extent
	var moved bool
	var err error
	if r, ok := in.blocks.(blockmap.Remapper); ok {
		e, moved, err = r.WriteTarget(page, max)
	} else {
		e, err = in.blocks.Lookup(page, max)
	}
	if err != nil {
		return 0, err
	}
	if e.Kind != blockmap.Mapped && e.Kind != blockmap.Unwritten {
		return 0, syscall.EIO
	}
	if err := in.device().WriteBlocks(p[:e.Count*pageSize], e.Block); err != nil {
		if moved {
			_ = in.blocks.(blockmap.Remapper).AbortWrite(page, e.Count)
		}
		return 0, err
	}
	switch {
	case moved:
		// The remap frees (or unshares) the old blocks: to fills that is a
		// block removal. A fill that looked one up finishes reading it
		// before the exclusive lock is granted, and the pages fills made
		// meanwhile forget the blocks they were read from.
		m := in.mapping
		inv := m.LockRemove(page*pageSize, (page+e.Count)*pageSize)
		err = in.blocks.(blockmap.Remapper).CommitWrite(page, e.Count)
		m.ForgetBlocks(page, page+e.Count)
		inv.Unlock()
	case e.Kind == blockmap.Unwritten:
		err = in.blocks.MarkWritten(page, e.Count)
	}
	return e.Count, err
}
