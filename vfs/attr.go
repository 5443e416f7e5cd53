package vfs

import (
	"os"
	"syscall"
	"time"
)

// The owner of inodes created without one (the path-based API used as a
// library): the process's effective user and group, as a local
// filesystem would record them.
var (
	procUID = uint32(os.Geteuid())
	procGID = uint32(os.Getegid())
)

// Owner is the user and group a new inode belongs to: a FUSE request's
// caller (its fsuid and fsgid).
type Owner struct {
	Uid, Gid uint32
}

// Setattr bits: which fields of a SetAttr apply (Linux's ATTR_* of struct
// iattr). A time not set is left alone (UTIME_OMIT); the caller resolves
// UTIME_NOW to a time.
const (
	SetMode = 1 << iota
	SetUid
	SetGid
	SetAtime
	SetMtime
)

// SetAttr is a change of an inode's attributes. The size is not one of
// them: it changes through a handle (File.Truncate), since shrinking a
// file is a block-removing operation with its own locking.
type SetAttr struct {
	Valid        uint32 // Set* bits
	Mode         uint32 // permission bits, 07777
	Uid, Gid     uint32
	Atime, Mtime time.Time
	// Frontend marks a change the frontend that installed the change
	// hook makes for its own client (see Change.Frontend).
	Frontend bool
}

// Setattr changes the attributes a says, and the change time. Changing the
// owner or group of a non-directory clears its set-user-ID bit, and its
// set-group-ID bit if group execution is allowed (Linux's ATTR_KILL_SUID
// and ATTR_KILL_SGID), unless the same call sets the mode. Permission
// checks are the caller's: the kernel's (default_permissions) for the FUSE
// mount; the library trusts its caller, like a process holding
// CAP_FOWNER and CAP_CHOWN.
func (in *Inode) Setattr(a SetAttr) error {
	f := in.fs
	if err := in.syncForTimes(a); err != nil {
		return err
	}
	f.nsMu.Lock()
	if err := f.fwdSetattr(in, a); err != nil {
		f.nsMu.Unlock()
		return err
	}
	if a.Valid&SetMode != 0 {
		in.perm = a.Mode & 0o7777
	}
	if a.Valid&SetUid != 0 {
		in.uid = a.Uid
	}
	if a.Valid&SetGid != 0 {
		in.gid = a.Gid
	}
	if a.Valid&(SetUid|SetGid) != 0 && a.Valid&SetMode == 0 && !in.IsDir() {
		in.perm &^= syscall.S_ISUID
		if in.perm&syscall.S_IXGRP != 0 {
			in.perm &^= syscall.S_ISGID
		}
	}
	if a.Valid&SetAtime != 0 {
		in.atime.Store(a.Atime.UnixNano())
	}
	if a.Valid&SetMtime != 0 {
		in.mtime.Store(a.Mtime.UnixNano())
	}
	in.ctime.Store(time.Now().UnixNano())
	f.logInode(in)
	f.nsMu.Unlock()
	f.changed(in, a.Frontend, 0, 0)
	return nil
}

// initOwner gives a new inode its owner, as Linux's inode_init_owner: the
// group of a set-group-ID directory instead of the caller's, and a new
// directory in it inherits the bit. The caller holds nsMu.
func (in *Inode) initOwner(dir *Inode, o Owner) {
	in.uid, in.gid = o.Uid, o.Gid
	if dir.perm&syscall.S_ISGID != 0 {
		in.gid = dir.gid
		if in.IsDir() {
			in.perm |= syscall.S_ISGID
		}
	}
}

// Inodes returns the number of inodes in use, for statfs's file counts.
func (f *FS) Inodes() int64 {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	return int64(len(f.inodes))
}
