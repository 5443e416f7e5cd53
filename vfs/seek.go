package vfs

import (
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// Whence values of lseek(2) beyond io.Seek*.
const (
	SeekData = 3 // SEEK_DATA: the next offset at or after off holding data
	SeekHole = 4 // SEEK_HOLE: the next offset at or after off in a hole (EOF counts)
)

// SeekDataHole implements SEEK_DATA and SEEK_HOLE. Data is what the block
// map says is written (or the memory backend holds) plus dirty cached
// pages not yet written back; unwritten extents are holes, as in ext4.
// An offset at or past EOF is ENXIO.
func (h *File) SeekDataHole(off int64, whence int) (int64, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	in := h.in
	in.lock.RLock()
	defer in.lock.RUnlock()
	size := in.mapping.Size()
	if off < 0 || off >= size {
		return 0, syscall.ENXIO
	}
	for page := off / pageSize; page*pageSize < size; {
		e, err := in.blocks.Lookup(page, (size+pageSize-1)/pageSize-page)
		if err != nil {
			return 0, errno(err)
		}
		data := e.Kind == blockmap.Mapped || e.Kind == blockmap.Memory
		run := e.Count
		if !data {
			// Dirty pages over a hole or unwritten blocks are data too.
			if d := in.mapping.NextDirty(page, e.End()); d == page {
				data, run = true, 1
			} else if d >= 0 {
				run = d - page
			}
		}
		if data == (whence == SeekData) {
			return max(page*pageSize, off), nil
		}
		page += run
	}
	if whence == SeekHole {
		return size, nil
	}
	return 0, syscall.ENXIO
}
