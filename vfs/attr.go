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
	// SetOwner is a change of owner that names no new owner: chown(2)
	// with -1 for both ids, which still takes the set-ID bits and stamps
	// the change time. Setattr applies it under the namespace lock, so a
	// concurrent chown is not undone by writing back an owner read before.
	SetOwner
)

// SetAttr is a change of an inode's attributes. The size is not one of
// them: it changes through a handle (File.Truncate), since shrinking a
// file is a block-removing operation with its own locking.
type SetAttr struct {
	Valid        uint32 // Set* bits
	Mode         uint32 // permission bits, 07777
	Uid, Gid     uint32
	Atime, Mtime time.Time
	// NotInGroup says the caller is neither in the inode's group nor
	// holds CAP_FSETID: changing the owner or group then takes the
	// set-group-ID bit even from a file without group execution (Linux's
	// setattr_should_drop_sgid).
	NotInGroup bool
	// Frontend marks a change the frontend that installed the change
	// hook makes for its own client (see Change.Frontend).
	Frontend bool
}

// Setattr changes the attributes a says, and the change time. Changing the
// owner or group of a non-directory, even to what they are (chown(2) with
// -1, -1), clears its set-user-ID bit, and its set-group-ID bit if group
// execution is allowed or a.NotInGroup (Linux's ATTR_KILL_SUID and
// ATTR_KILL_SGID), unless the same call sets the mode, and removes its
// security.capability attribute (ATTR_KILL_PRIV). Permission
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
	if a.Valid&(SetUid|SetGid|SetOwner) != 0 && !in.IsDir() {
		if a.Valid&SetMode == 0 {
			in.perm = killSetID(in.perm, a.NotInGroup)
		}
		delete(in.xattrs, xattrCaps)
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

// killSetID returns perm without the set-user-ID bit and, if the file is
// group-executable or the caller is not in its group (notInGroup), the
// set-group-ID bit: a set-group-ID file without group execution is
// marked for mandatory locking, which a member of the group may keep.
func killSetID(perm uint32, notInGroup bool) uint32 {
	perm &^= syscall.S_ISUID
	if perm&syscall.S_IXGRP != 0 || notInGroup {
		perm &^= syscall.S_ISGID
	}
	return perm
}

// KillPriv removes from a regular file what writing to or truncating it
// takes away, as Linux's file_remove_privs: the security.capability
// attribute always, and if suidgid (the writer lacks CAP_FSETID) the
// set-user-ID bit, and the set-group-ID bit of a group-executable file or
// of any file if notInGroup (the writer is not in the file's group). A
// file with none of them, the common case, costs a shared hold of the
// namespace lock. frontend marks the change as Setattr's Frontend does.
func (in *Inode) KillPriv(suidgid, notInGroup, frontend bool) error {
	if in.typ != syscall.S_IFREG {
		return nil
	}
	f := in.fs
	// kill returns the mode the file keeps, whether it changes and
	// whether it has capabilities. The caller holds nsMu.
	kill := func() (mode uint32, change, caps bool) {
		_, caps = in.xattrs[xattrCaps]
		mode = in.perm
		if suidgid {
			mode = killSetID(mode, notInGroup)
		}
		return mode, mode != in.perm || caps, caps
	}
	f.nsMu.RLock()
	_, change, _ := kill()
	f.nsMu.RUnlock()
	if !change {
		return nil
	}
	f.nsMu.Lock()
	mode, _, caps := kill()
	in.perm = mode
	if caps {
		delete(in.xattrs, xattrCaps)
	}
	in.ctime.Store(time.Now().UnixNano())
	f.logInode(in)
	f.nsMu.Unlock()
	f.changed(in, frontend, 0, 0)
	return nil
}

// Inode returns the inode numbered ino, nil if there is none: for a
// frontend whose client names inodes by number (FUSE node IDs).
func (f *FS) Inode(ino uint64) *Inode {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	return f.inodes[ino]
}
