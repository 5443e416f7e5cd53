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
// map says is written (or the memory backend holds) plus cached pages whose
// data has not reached it yet: dirty, or under writeback. Unwritten extents
// are otherwise holes, as in ext4. An offset at or past EOF is ENXIO.
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
	last := (size + pageSize - 1) / pageSize
	for page := off / pageSize; page < last; {
		// Look at the cache before the block map: a page whose writeback
		// completes in between is then Mapped in the map, never missed.
		busy := in.mapping.NextUnwritten(page, last)
		e, err := in.blocks.Lookup(page, last-page)
		if err != nil {
			return 0, errno(err)
		}
		data := e.Kind == blockmap.Mapped || e.Kind == blockmap.Memory
		run := e.Count
		if !data && busy == page {
			data, run = true, 1
		} else if !data && busy >= 0 && busy < e.End() {
			run = busy - page
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
