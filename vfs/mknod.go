package vfs

import (
	"math"
	"syscall"
)

// Special files — FIFOs, sockets, character and block devices — are a
// name, an owner, a mode and, for a device, its number: the engine keeps
// no data for them and never opens them for I/O. Through the FUSE mount
// the kernel does their I/O itself (a pipe, a bound socket, a driver); a
// library caller cannot open one (see Open).

// mknodMode checks a mknod(2) mode and device number as Linux's
// may_mknod and glibc's mknod do, before any lookup: type 0 means a
// regular file, a directory is EPERM, a symlink or an unknown type
// EINVAL, and a device number beyond 32 bits (what the system call
// carries) EINVAL. It returns the mode with its type set and the device
// number the inode keeps: only a device keeps one, as init_special_inode.
func (f *FS) mknodMode(mode uint32, rdev uint64) (uint32, uint64, error) {
	typ := mode & syscall.S_IFMT
	switch typ {
	case 0:
		typ = syscall.S_IFREG
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	case syscall.S_IFDIR:
		return 0, 0, syscall.EPERM
	default:
		return 0, 0, syscall.EINVAL
	}
	if rdev > math.MaxUint32 {
		return 0, 0, syscall.EINVAL
	}
	if typ != syscall.S_IFREG && f.backend.NoSpecialFiles {
		return 0, 0, syscall.EOPNOTSUPP
	}
	return typ | mode&0o7777, deviceNumber(typ, rdev), nil
}

// deviceNumber returns the device number an inode of mode keeps: rdev for
// a character or block device, 0 for anything else.
func deviceNumber(mode uint32, rdev uint64) uint64 {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFCHR, syscall.S_IFBLK:
		return rdev
	}
	return 0
}

// Mknod makes a regular file, FIFO, socket, or character or block device
// numbered rdev (unix.Mkdev) at path, as mknod(2): mode holds the type
// (S_IFREG or 0, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK) and the permission
// bits, set as given (the umask is the caller's business). An existing
// name is EEXIST; a path with a trailing slash names a directory, which
// mknod cannot make (ENOENT). The privilege to make a device
// (CAP_MKNOD) is not checked: the library acts for a process that has
// it.
func (f *FS) Mknod(path string, mode uint32, rdev uint64) error {
	mode, rdev, err := f.mknodMode(mode, rdev)
	if err != nil {
		return err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, err := f.lookupFree(path)
	if err != nil {
		return err
	}
	_, err = f.makeNodeLocked(dir, name, mode, rdev, "", nil)
	return err
}

// MknodAt makes the entry name in dir as Mknod does, owned by o (with the
// group of a set-group-ID directory, as CreateAt).
func (f *FS) MknodAt(dir *Inode, name string, mode uint32, rdev uint64, o Owner) (*Inode, error) {
	mode, rdev, err := f.mknodMode(mode, rdev)
	if err != nil {
		return nil, err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := dirFor(dir, name); err != nil {
		return nil, err
	}
	return f.makeNodeLocked(dir, name, mode, rdev, "", &o)
}

// openSpecial returns the error of opening a special file through the
// engine, which has no pipe, socket or driver behind it: a FIFO is
// EOPNOTSUPP (only the kernel's FIFOs, through the mount, carry data); a
// socket is ENXIO, as open(2) of a socket is on Linux; a device is ENXIO,
// as a device with no driver. Nil for other types.
func (in *Inode) openSpecial() error {
	switch in.typ {
	case syscall.S_IFIFO:
		return syscall.EOPNOTSUPP
	case syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		return syscall.ENXIO
	}
	return nil
}
