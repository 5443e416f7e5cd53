package vfs

import "syscall"

// Change is a change of a regular file's data or attributes, as the change
// hook sees it.
type Change struct {
	Ino uint64
	// Off and Len give the byte range whose data may have changed. Len -1
	// means from Off to the end of the file, whatever its size now or
	// before; Len 0 means that only attributes changed (size, times,
	// mode, owner).
	Off, Len int64
	// Frontend is set when the change was made through a handle opened
	// with OpenFrontend or a SetAttr marked Frontend: the frontend that
	// installed the hook made it for its own client, whose caches already
	// follow (the FUSE kernel client updates its page cache around its own
	// requests).
	Frontend bool
}

// SetChangeHook installs fn, called after every change of a regular
// file's data or attributes made through this FS: writes (buffered,
// direct, and through mapped views), truncate, fallocate, copy_file_range
// destinations and Setattr. Namespace changes (create, unlink, rename) are
// not reported.
//
// fn runs on the goroutine that made the change, after the operation
// returned from the engine: no engine lock is held, and the engine's page
// cache already shows the new data, so fn may block (a FUSE frontend sends
// its kernel an invalidation there, whose handling may wait for requests
// that need those locks). It must not call back into the FS for the same
// file while the caller waits on it, or must not wait for its result.
//
// At most one hook is installed: EBUSY if another is; nil removes it.
func (f *FS) SetChangeHook(fn func(Change)) error {
	if fn == nil {
		f.changeHook.Store(nil)
		return nil
	}
	if !f.changeHook.CompareAndSwap(nil, &fn) {
		return syscall.EBUSY
	}
	return nil
}

// changed reports a change to the hook, if one is installed.
func (f *FS) changed(in *Inode, frontend bool, off, n int64) {
	if fn := f.changeHook.Load(); fn != nil {
		(*fn)(Change{Ino: in.ino, Off: off, Len: n, Frontend: frontend})
	}
}

// OpenFrontend is Open for the frontend that installed the change hook:
// changes made through the handle are reported with Change.Frontend set.
func (f *FS) OpenFrontend(in *Inode, flags int) (*File, error) {
	return f.open(in, flags, true)
}

// changed reports a change made through the handle.
func (h *File) changed(off, n int64) { h.in.fs.changed(h.in, h.frontend, off, n) }
