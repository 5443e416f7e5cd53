package vfs

import (
	"errors"
	"os"
	"syscall"

	"github.com/holefs/holefs/blockmap"
)

// zonefs's rules, for files whose block map is a blockmap.Zone. Each
// comes from Linux's fs/zonefs (file.c, super.c), from knowledge of it:
//   - the namespace is fixed (Backend.FixedNamespace): no inode op to
//     create, link, unlink or rename, so the VFS's fallbacks answer:
//     EACCES for a regular file (vfs_create), EPERM for the rest;
//   - a conventional file has a fixed size, its zone's capacity: writes
//     past it are EFBIG (clipped when they cross it), O_APPEND is EINVAL,
//     truncation is EPERM;
//   - a sequential file's size is its write pointer: only direct writes
//     (a buffered write is EIO: zonefs_file_buffered_write refuses it,
//     since page writeback would not keep the writes in order), only at
//     the write pointer (EINVAL), no writable shared mapping (EINVAL);
//     truncation only to 0 (zone reset) or to the capacity (zone
//     finish), EPERM otherwise;
//   - no fallocate (EOPNOTSUPP, EPERM once the file is immutable), no clone;
//   - a zone gone read-only or offline makes the file immutable (EPERM
//     on open for writing, write and truncate; reads of an offline zone
//     are EPERM too), and errors=remount-ro makes every write and setattr EROFS.

// zone returns the file's zone, nil if it is no zonefs file.
func (in *Inode) zone() blockmap.Zone {
	z, _ := in.blocks.(blockmap.Zone)
	return z
}

// AddFixed makes the entry name in dir for a new inode numbered ino with
// mode (type and permission bits) and, for a regular file, size: how a
// backend with a fixed namespace (zonefs) lays its tree out before use.
// A regular file's block map is the Store's NewFile(ino). A taken name or
// number is EEXIST.
func (f *FS) AddFixed(dir *Inode, name string, mode uint32, ino uint64, size int64) (*Inode, error) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if _, ok := dir.entries[name]; ok || f.inodes[ino] != nil {
		return nil, syscall.EEXIST
	}
	in := &Inode{fs: f, ino: ino, typ: mode & syscall.S_IFMT, perm: mode &^ syscall.S_IFMT, uid: procUID, gid: procGID}
	t := dir.mtime.Load()
	in.atime.Store(t)
	in.mtime.Store(t)
	in.ctime.Store(t)
	f.initInode(in, nil)
	if in.mapping != nil {
		in.mapping.SetSize(size)
	}
	f.nextIno = max(f.nextIno, ino+1)
	f.link(dir, name, in)
	return in, nil
}

// fixedErr is the error of a namespace change on a fixed namespace, mode
// the type of what it would make (0 when it makes nothing).
func (f *FS) fixedErr(mode uint32) error {
	if !f.backend.FixedNamespace {
		return nil
	}
	if mode&syscall.S_IFMT == syscall.S_IFREG {
		return syscall.EACCES // vfs_create without ->create
	}
	return syscall.EPERM
}

// zoneMayOpen refuses to open an immutable zone file, or one on a
// filesystem gone read-only, for writing (may_open, mnt_want_write).
func (in *Inode) zoneMayOpen(flags int) error {
	z := in.zone()
	if z == nil || flags&(os.O_WRONLY|os.O_RDWR) == 0 {
		return nil
	}
	return errno(z.CheckWrite())
}

// zoneOpenWrite accounts a handle of a zone file open for writing
// (explicit-open opens the zone, EBUSY past the device's limit).
func (h *File) zoneOpenWrite() error {
	if z := h.in.zone(); z != nil && h.writable() {
		return errno(z.OpenWrite())
	}
	return nil
}

// zoneCloseWrite is the close of a handle zoneOpenWrite accounted. A zone
// that fails to close is handled as an I/O error; close itself succeeds,
// as zonefs's release does.
func (h *File) zoneCloseWrite() {
	if z := h.in.zone(); z != nil && h.writable() {
		if err := z.CloseWrite(); err != nil {
			h.in.zoneIOError(z, false)
		}
	}
}

// zoneWrite applies zonefs's write rules before a write of p at off and
// returns p clipped to the zone's capacity.
func (h *File) zoneWrite(z blockmap.Zone, p []byte, off int64) ([]byte, error) {
	if err := z.CheckWrite(); err != nil {
		return nil, errno(err)
	}
	appending := h.flags&os.O_APPEND != 0
	switch {
	case appending && !z.Sequential():
		return nil, syscall.EINVAL
	case appending:
		off = h.in.mapping.Size()
	}
	if off >= z.Capacity() {
		return nil, syscall.EFBIG
	}
	if !h.direct() && z.Sequential() {
		return nil, syscall.EIO
	}
	if end := off + int64(len(p)); end > z.Capacity() {
		p = p[:z.Capacity()-off]
	}
	return p, nil
}

// zoneWriteAt checks, with the inode lock held, that a direct write to a
// sequential zone is at its write pointer, the file's end (EINVAL).
func (in *Inode) zoneWriteAt(off int64) error {
	if z := in.zone(); z != nil && z.Sequential() && off != in.mapping.Size() {
		return syscall.EINVAL
	}
	return nil
}

// truncateZone is truncate for a zone file; the caller holds the inode
// lock exclusive. A reset is a block-removing operation like any other:
// under the invalidate lock exclusive, the cached pages and mapped views
// go first, then the zone command, so no fill caches the zone's old data
// (the seed's race, with a reset as the remover). A finish removes no
// data but changes the size, and takes the same locks, as zonefs does.
func (in *Inode) truncateZone(z blockmap.Zone, size int64) error {
	if err := z.CheckWrite(); err != nil {
		return errno(err)
	}
	op := "finish"
	switch {
	case !z.Sequential():
		return syscall.EPERM
	case size == 0:
		op = "reset"
	case size != z.Capacity():
		return syscall.EPERM
	}
	m := in.mapping
	// The size cannot change under the inode lock: the pages from the
	// lower of the two sizes on are the ones truncated or exposed.
	defer m.LockRemove(min(size, m.Size()), maxOffset).Unlock()
	if size == m.Size() {
		return nil
	}
	if err := m.TruncateRange(size, maxOffset); err != nil {
		return errno(err)
	}
	in.fs.hookAfterTruncate(in, op)
	var err error
	if op == "reset" {
		err = z.Reset()
	} else {
		err = z.Finish()
	}
	if err != nil && !errors.Is(err, blockmap.ErrZoneReopen) {
		return errno(err)
	}
	// A reset that failed only to re-open the zone still emptied it:
	// the size follows the zone, the error is returned
	// (zonefs_file_truncate).
	in.setSize(size)
	in.touch()
	return errno(err)
}

// zoneIOError handles an I/O error of a zone file as zonefs's
// zonefs_io_error does: the zone is reported, and the file takes the size
// and access the report and the errors= policy give. A smaller size drops
// the pages past it, as any truncation, under the invalidate lock.
func (in *Inode) zoneIOError(z blockmap.Zone, write bool) {
	in.lock.Lock()
	m := in.mapping
	old := m.Size()
	size, clearBits := z.IOError(write, old)
	if size != old {
		inv := m.LockRemove(min(size, old), maxOffset)
		if size < old {
			// Pages past the new size were read from the device before
			// the error and may hold what the zone no longer has.
			_ = m.TruncateRange(size, maxOffset)
		}
		in.setSize(size)
		inv.Unlock()
	}
	in.lock.Unlock()
	if clearBits != 0 { // the namespace lock ranks above the inode lock
		in.fs.nsMu.Lock()
		in.perm &^= clearBits
		in.fs.nsMu.Unlock()
	}
}

// zoneErr passes err through, handling it first as a zone I/O error if
// it is one (EIO from a zone file's device).
func (in *Inode) zoneErr(err error, write bool) error {
	if err == syscall.EIO {
		if z := in.zone(); z != nil {
			in.zoneIOError(z, write)
		}
	}
	return err
}

// zoneCopy applies zonefs's rules to a copy of n bytes into a zone file at
// off, which Linux makes a buffered write: EIO into a sequential zone,
// EFBIG at or past a conventional zone's capacity, clipped to it.
func zoneCopy(z blockmap.Zone, off, n int64) (int64, error) {
	if err := z.CheckWrite(); err != nil {
		return 0, errno(err)
	}
	switch {
	case n == 0:
		return 0, nil
	case z.Sequential():
		return 0, syscall.EIO
	case off >= z.Capacity():
		return 0, syscall.EFBIG
	}
	return min(n, z.Capacity()-off), nil
}

// zoneSetattr refuses what zonefs_inode_setattr refuses: any change of an
// immutable (read-only or offline) zone file (EPERM), and write bits on a
// directory of a fixed namespace; and, once errors=remount-ro took
// effect, any change of a zone file (EROFS, mnt_want_write's answer on a
// read-only mount). The caller holds nsMu.
func (in *Inode) zoneSetattr(a SetAttr) error {
	if in.IsDir() && in.fs.backend.FixedNamespace && a.Valid&SetMode != 0 && a.Mode&0o222 != 0 {
		return syscall.EPERM
	}
	if z := in.zone(); z != nil {
		return errno(z.CheckWrite())
	}
	return nil
}

// SequentialZone reports whether the inode is a zonefs file of a
// sequential zone, which takes only direct writes: the FUSE mount sends
// its writes to the engine as they come, never through the kernel's page
// cache.
func (in *Inode) SequentialZone() bool {
	z := in.zone()
	return z != nil && z.Sequential()
}
