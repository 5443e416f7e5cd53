package vfs

import (
	"strings"
	"syscall"
)

// The *At operations are the namespace operations relative to a directory
// inode instead of a path from the root, for frontends that hold inodes:
// the FUSE kernel client names every object by its node and an entry
// name, and a path rebuilt from them could lead elsewhere after a
// concurrent rename. They share the path-based operations' entry
// bookkeeping (link, unlinkEntry, move, exchange) and errors. A directory
// that was removed takes no new entries (ENOENT), as in Linux.

// dirFor checks that dir can take a new entry name. The caller holds nsMu.
func dirFor(dir *Inode, name string) error {
	if !dir.IsDir() {
		return syscall.ENOTDIR
	}
	if dir.nlink == 0 {
		return syscall.ENOENT
	}
	return checkName(name)
}

// Parent returns a directory's parent (the root's is the root).
func (f *FS) Parent(dir *Inode) *Inode {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	return dir.parent
}

// LookupAt returns the entry name of the directory dir, without following
// a symlink.
func (f *FS) LookupAt(dir *Inode, name string) (*Inode, error) {
	if !dir.IsDir() {
		return nil, syscall.ENOTDIR
	}
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	switch name {
	case ".":
		return dir, nil
	case "..":
		return dir.parent, nil
	}
	in, ok := dir.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return in, nil
}

// CreateAt returns the regular file name in dir, creating it with perm
// and owner o if it does not exist; with excl an existing entry is EEXIST
// (O_CREAT|O_EXCL). An existing symlink is followed, as open(2) does. It
// reports whether it created the file.
func (f *FS) CreateAt(dir *Inode, name string, perm uint32, excl bool, o Owner) (*Inode, bool, error) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := dirFor(dir, name); err != nil {
		return nil, false, err
	}
	flags, depth := 0, 0
	if excl {
		flags = syscall.O_EXCL
	}
	return f.createLocked(dir, name, perm, flags, &o, &depth)
}

// MkdirAt creates the directory name in dir.
func (f *FS) MkdirAt(dir *Inode, name string, perm uint32, o Owner) (*Inode, error) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := dirFor(dir, name); err != nil {
		return nil, err
	}
	return f.makeLocked(dir, name, syscall.S_IFDIR|perm&0o7777, "", &o)
}

// SymlinkAt creates the symbolic link name in dir, pointing to target.
func (f *FS) SymlinkAt(dir *Inode, name, target string, o Owner) (*Inode, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := dirFor(dir, name); err != nil {
		return nil, err
	}
	return f.makeLocked(dir, name, syscall.S_IFLNK|0o777, target, &o)
}

func checkTarget(target string) error {
	switch {
	case target == "" || strings.ContainsRune(target, 0):
		return syscall.ENOENT
	case len(target) > 4095:
		return syscall.ENAMETOOLONG
	}
	return nil
}

// LinkAt makes name in dir another name of the non-directory in. A file
// whose last name is gone cannot get a new one (ENOENT), as linkat(2) of
// an unlinked file through /proc/self/fd.
func (f *FS) LinkAt(in, dir *Inode, name string) error {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := dirFor(dir, name); err != nil {
		return err
	}
	if dir.entries[name] != nil {
		return syscall.EEXIST
	}
	return f.linkLocked(in, dir, name)
}

// UnlinkAt removes the non-directory entry name of dir. An open file lives
// on until its last handle closes.
func (f *FS) UnlinkAt(dir *Inode, name string) error {
	f.nsMu.Lock()
	err := entryFor(dir, name)
	var dead *Inode
	if err == nil {
		if dir.entries[name].IsDir() {
			err = syscall.EISDIR
		} else if err = f.fwdRemove(dir, name); err == nil {
			dead = f.unlinkEntry(dir, name)
		}
	}
	f.nsMu.Unlock()
	if dead != nil {
		return dead.evict()
	}
	return err
}

// entryFor checks that dir is a directory with an entry name. The caller
// holds nsMu.
func entryFor(dir *Inode, name string) error {
	if !dir.IsDir() {
		return syscall.ENOTDIR
	}
	if err := checkName(name); err != nil {
		return err
	}
	if _, ok := dir.entries[name]; !ok {
		return syscall.ENOENT
	}
	return nil
}

// RmdirAt removes the empty directory name of dir.
func (f *FS) RmdirAt(dir *Inode, name string) error {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if err := entryFor(dir, name); err != nil {
		return err
	}
	in := dir.entries[name]
	switch {
	case !in.IsDir():
		return syscall.ENOTDIR
	case len(in.entries) > 0:
		return syscall.ENOTEMPTY
	}
	if err := f.fwdRemove(dir, name); err != nil {
		return err
	}
	f.unlinkEntry(dir, name)
	return nil
}

// RenameAt renames oname in odir to nname in ndir with renameat2 flags;
// o owns the whiteout RenameWhiteout leaves.
func (f *FS) RenameAt(odir *Inode, oname string, ndir *Inode, nname string, flags uint32, o Owner) error {
	if err := checkRenameFlags(flags); err != nil {
		return err
	}
	f.nsMu.Lock()
	if err := entryFor(odir, oname); err != nil {
		f.nsMu.Unlock()
		return err
	}
	if err := dirFor(ndir, nname); err != nil {
		f.nsMu.Unlock()
		return err
	}
	return f.finishRename(odir, oname, ndir, nname, odir.entries[oname], flags, false, false, &o)
}
