package holefs

import "github.com/holefs/holefs/vfs"

// VFS returns the filesystem's inode layer, for frontends that work on
// inodes rather than paths: the FUSE mount (package fuse) resolves every
// request from a node and an entry name, and installs the change hook
// through which it keeps the kernel's caches coherent with changes made
// through this FS.
func (f *FS) VFS() *vfs.FS { return f.v }

// Chown changes the numeric owner and group of the named file, following
// symlinks, like os.Chown: -1 leaves that id unchanged. Any chown, even
// with both ids -1, clears the set-user-ID bit of a non-directory, and its
// set-group-ID bit if group execution is allowed, and stamps the change
// time, as Linux does. The library does not
// check the caller's privilege: it acts for a process that has it.
func (f *FS) Chown(name string, uid, gid int) error {
	return f.chown("chown", name, true, uid, gid)
}

// Lchown is Chown without following a final symlink: it changes the link.
func (f *FS) Lchown(name string, uid, gid int) error {
	return f.chown("lchown", name, false, uid, gid)
}

func (f *FS) chown(op, name string, follow bool, uid, gid int) error {
	in, err := f.v.Lookup(clean(name), follow)
	if err != nil {
		return pathErr(op, name, err)
	}
	var a vfs.SetAttr
	if uid != -1 {
		a.Valid |= vfs.SetUid
		a.Uid = uint32(uid)
	}
	if gid != -1 {
		a.Valid |= vfs.SetGid
		a.Gid = uint32(gid)
	}
	if a.Valid == 0 {
		// chown(2) with both ids -1 is still a change of owner: Linux
		// clears the set-ID bits of a non-directory and stamps the
		// change time.
		a.Valid = vfs.SetOwner
	}
	return pathErr(op, name, in.Setattr(a))
}
