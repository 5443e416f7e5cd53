package vfs

import (
	"syscall"
	"time"

	"github.com/holefs/holefs/blockmap"
)

// Clean runs one pass of a log-structured store's cleaner: the live pages
// of its emptiest segment are rewritten at the log head, which frees the
// segment. It returns the pages moved; EOPNOTSUPP for other stores.
//
// Moving a page's data frees its old block, so to the page cache it is a
// block-removing operation: each file's range is moved under its inode
// lock and invalidate lock held exclusive, after writing back its dirty
// pages, so that no fill can look up a block that is about to be freed and
// read it after another file got it. The cached pages stay: their data
// does not change, and in a log they never remember a block.
func (f *FS) Clean() (int64, error) {
	c, ok := f.backend.Store.(blockmap.Cleaner)
	if !ok {
		return 0, syscall.EOPNOTSUPP
	}
	var moved int64
	for _, o := range c.CleanVictim() {
		f.nsMu.RLock()
		in := f.inodes[o.Ino]
		f.nsMu.RUnlock()
		if in == nil || in.mapping == nil {
			continue // gone since: its blocks went with it
		}
		n, err := in.relocate(o.Page, o.Count)
		moved += n
		if err != nil {
			return moved, errno(err)
		}
	}
	return moved, nil
}

// relocate rewrites the Mapped pages of [page, page+count) out of place.
func (in *Inode) relocate(page, count int64) (int64, error) {
	r, ok := in.blocks.(blockmap.Remapper)
	if !ok {
		return 0, syscall.EOPNOTSUPP
	}
	in.lock.Lock()
	defer in.lock.Unlock()
	if in.evicted {
		return 0, nil
	}
	m := in.mapping
	defer m.LockRemove(page*pageSize, (page+count)*pageSize).Unlock()
	if err := m.Sync(page*pageSize, count*pageSize); err != nil {
		return 0, err
	}
	in.fs.hookAfterTruncate(in, "relocate")
	var moved int64
	buf := make([]byte, 0, 64*pageSize)
	for p, end := page, page+count; p < end; {
		e, err := in.blocks.Lookup(p, min(end-p, 64))
		if err != nil {
			return moved, err
		}
		if e.Kind != blockmap.Mapped {
			p = e.End()
			continue
		}
		buf = buf[:e.Count*pageSize]
		if err := in.fs.backend.Device.ReadBlocks(buf, e.Block); err != nil {
			return moved, err
		}
		for q := p; q < e.End(); {
			t, movedOut, err := r.WriteTarget(q, e.End()-q)
			if err != nil {
				return moved, err
			}
			if !movedOut {
				// The map writes this page in place after all (a store
				// that is not a log): nothing to move.
				q = t.End()
				continue
			}
			if err := in.fs.backend.Device.WriteBlocks(buf[(q-p)*pageSize:(t.End()-p)*pageSize], t.Block); err != nil {
				_ = r.AbortWrite(q, t.Count)
				return moved, err
			}
			if err := r.CommitWrite(q, t.Count); err != nil {
				return moved, err
			}
			moved += t.Count
			q = t.End()
		}
		p = e.End()
	}
	return moved, nil
}

// cleanerInterval is how often the background cleaner looks at the free
// space of a log-structured store.
const cleanerInterval = 50 * time.Millisecond

// cleaner cleans a log-structured store in the background while less than
// a quarter of it is free, until stop is closed.
func (f *FS) cleaner(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(cleanerInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for {
			total, free := f.backend.Store.Statfs()
			if free*4 >= total {
				break
			}
			if n, err := f.Clean(); err != nil || n == 0 {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}
