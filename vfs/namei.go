package vfs

import (
	"math"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	maxOffset   = math.MaxInt64
	maxSymlinks = 40 // Linux's MAXSYMLINKS
	maxNameLen  = 255
	pathMax     = 4096 // Linux's PATH_MAX, counting the terminating NUL
)

// Rename flags, as renameat2(2).
const (
	RenameNoReplace = 1 << 0 // RENAME_NOREPLACE: fail with EEXIST if the target exists
	RenameExchange  = 1 << 1 // RENAME_EXCHANGE: atomically swap the two names
	RenameWhiteout  = 1 << 2 // RENAME_WHITEOUT: leave a whiteout (character device 0:0) at the old name
)

// split breaks a slash-separated path into its components, ignoring empty
// ones. "." stays: it must name a directory ("file/." is ENOTDIR), and as
// a last component it is not a name (see notName).
func split(path string) []string {
	var out []string
	for _, c := range strings.Split(path, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return syscall.EINVAL
	case len(name) > maxNameLen:
		return syscall.ENAMETOOLONG
	case strings.ContainsRune(name, 0):
		return syscall.EINVAL
	}
	return nil
}

// checkPath refuses a path Linux's getname would: one of PATH_MAX bytes
// or more (with its NUL) is ENAMETOOLONG before any lookup.
func checkPath(path string) error {
	if len(path) >= pathMax {
		return syscall.ENAMETOOLONG
	}
	return nil
}

// walk resolves path from dir, following symlinks in every component and,
// if follow, in the last. The caller holds nsMu.
func (f *FS) walk(dir *Inode, path string, follow bool, depth *int) (*Inode, error) {
	if strings.HasPrefix(path, "/") {
		dir = f.root
	}
	cur := dir
	comps := split(path)
	// A trailing slash asks for a directory, and follows a final symlink.
	slash := len(comps) > 0 && strings.HasSuffix(path, "/")
	follow = follow || slash
	for i, name := range comps {
		if !cur.IsDir() {
			return nil, syscall.ENOTDIR
		}
		if len(name) > maxNameLen {
			return nil, syscall.ENAMETOOLONG
		}
		if name == "." {
			continue
		}
		if name == ".." {
			cur = cur.parent
			continue
		}
		next, ok := cur.entries[name]
		if !ok {
			return nil, syscall.ENOENT
		}
		if next.typ == syscall.S_IFLNK && (follow || i < len(comps)-1) {
			if *depth++; *depth > maxSymlinks {
				return nil, syscall.ELOOP
			}
			var err error
			if next, err = f.walk(cur, next.target, true, depth); err != nil {
				return nil, err
			}
		}
		cur = next
	}
	if slash && !cur.IsDir() {
		return nil, syscall.ENOTDIR
	}
	return cur, nil
}

// notName holds an operation's errors for a path whose last component is
// not a name it can create or remove: the root itself, "." or ".." (Linux's
// LAST_ROOT, LAST_DOT and LAST_DOTDOT; each syscall has its own errnos).
type notName struct{ root, dot, dotdot syscall.Errno }

var (
	nnCreate = notName{syscall.EISDIR, syscall.EISDIR, syscall.EISDIR} // open(O_CREAT), unlink
	nnMake   = notName{syscall.EEXIST, syscall.EEXIST, syscall.EEXIST} // mkdir, symlink, link
	nnRmdir  = notName{syscall.EBUSY, syscall.EINVAL, syscall.ENOTEMPTY}
	nnRename = notName{syscall.EBUSY, syscall.EBUSY, syscall.EBUSY}
)

// resolveParent resolves all but the last component of path from dir (the
// root if path is absolute), following symlinks and counting them in
// depth, and returns that component unchecked ("" for the root itself).
// slash says the path ends in "/": the operation wants a directory (each
// has its own errno when it is not one). The caller holds nsMu.
func (f *FS) resolveParent(dir *Inode, path string, depth *int) (parent *Inode, last string, slash bool, err error) {
	if err := checkPath(path); err != nil {
		return nil, "", false, err
	}
	comps := split(path)
	if len(comps) == 0 {
		return f.root, "", false, nil
	}
	if strings.HasPrefix(path, "/") {
		dir = f.root
	}
	if dir, err = f.walk(dir, strings.Join(comps[:len(comps)-1], "/"), true, depth); err != nil {
		return nil, "", false, err
	}
	if !dir.IsDir() {
		return nil, "", false, syscall.ENOTDIR
	}
	return dir, comps[len(comps)-1], strings.HasSuffix(path, "/"), nil
}

// check returns the operation's error if last, as resolveParent returns
// it, is not a name: the root, "." or "..".
func (nn notName) check(last string) error {
	switch last {
	case "":
		return nn.root
	case ".":
		return nn.dot
	case "..":
		return nn.dotdot
	}
	return nil
}

// lookupParent is resolveParent with the last component checked: nn gives
// the errors when it is not a name. The caller holds nsMu.
func (f *FS) lookupParent(dir *Inode, path string, nn notName, depth *int) (parent *Inode, name string, slash bool, err error) {
	if dir, name, slash, err = f.resolveParent(dir, path, depth); err != nil {
		return nil, "", false, err
	}
	if err := nn.check(name); err != nil {
		return nil, "", false, err
	}
	if err := checkName(name); err != nil {
		return nil, "", false, err
	}
	return dir, name, slash, nil
}

// lookupParentRoot is lookupParent from the root, with a fresh symlink
// count, for the path-based operations.
func (f *FS) lookupParentRoot(path string, nn notName) (*Inode, string, bool, error) {
	depth := 0
	return f.lookupParent(f.root, path, nn, &depth)
}

// Lookup resolves path; follow says whether a final symlink is followed
// (stat) or returned (lstat).
func (f *FS) Lookup(path string, follow bool) (*Inode, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	depth := 0
	return f.walk(f.root, path, follow, &depth)
}

// Create returns the regular file at path, creating it with perm if it
// does not exist; with excl an existing file is EEXIST (O_CREAT|O_EXCL).
// It reports whether it created the file.
func (f *FS) Create(path string, perm uint32, excl bool) (*Inode, bool, error) {
	flags := syscall.O_CREAT
	if excl {
		flags |= syscall.O_EXCL
	}
	return f.OpenPath(path, flags, perm)
}

// OpenPath resolves path as open(2) does for flags, before the file is
// opened: O_CREAT makes a regular file with perm at a free name (O_EXCL:
// an existing name, even a dangling symlink, is EEXIST); a final symlink
// is followed, with O_CREAT to create its missing target, unless
// O_NOFOLLOW says ELOOP; O_DIRECTORY wants a directory (ENOTDIR), and
// cannot be combined with O_CREAT (EINVAL). Other flags are the opener's.
// It reports whether it created the file.
func (f *FS) OpenPath(path string, flags int, perm uint32) (*Inode, bool, error) {
	if err := checkPath(path); err != nil {
		return nil, false, err
	}
	depth := 0
	if flags&syscall.O_CREAT == 0 {
		f.nsMu.RLock()
		defer f.nsMu.RUnlock()
		in, err := f.walk(f.root, path, flags&syscall.O_NOFOLLOW == 0, &depth)
		switch {
		case err != nil:
			return nil, false, err
		case flags&syscall.O_DIRECTORY != 0 && !in.IsDir():
			return nil, false, syscall.ENOTDIR
		case in.typ == syscall.S_IFLNK:
			return nil, false, syscall.ELOOP // O_NOFOLLOW
		}
		return in, false, nil
	}
	if flags&syscall.O_DIRECTORY != 0 {
		return nil, false, syscall.EINVAL
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	return f.createPath(f.root, path, perm, flags, nil, &depth)
}

// createPath is open(2) with O_CREAT of path from dir; depth counts the
// symlinks followed. The caller holds nsMu.
func (f *FS) createPath(dir *Inode, path string, perm uint32, flags int, o *Owner, depth *int) (*Inode, bool, error) {
	dir, name, slash, err := f.resolveParent(dir, path, depth)
	switch {
	case err != nil:
		return nil, false, err
	case nnCreate.check(name) != nil && flags&syscall.O_EXCL != 0:
		return nil, false, syscall.EEXIST // the root, "." or "..": there, and not created
	case nnCreate.check(name) != nil, slash:
		return nil, false, syscall.EISDIR // open("f/", O_CREAT) too, as Linux
	}
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	return f.createLocked(dir, name, perm, flags, o, depth)
}

// createLocked is open(2) with O_CREAT (and O_EXCL, O_NOFOLLOW from flags)
// of name in a resolved directory: an existing symlink is followed, and
// its target created if missing, as Linux does. o, if set, is the creator
// (FUSE); nil keeps newInode's owner. The caller holds nsMu.
func (f *FS) createLocked(dir *Inode, name string, perm uint32, flags int, o *Owner, depth *int) (*Inode, bool, error) {
	in, ok := dir.entries[name]
	switch {
	case !ok:
		in, err := f.makeLocked(dir, name, syscall.S_IFREG|perm&0o7777, "", o)
		return in, err == nil, err
	case flags&syscall.O_EXCL != 0:
		return nil, false, syscall.EEXIST
	case in.typ == syscall.S_IFLNK:
		if flags&syscall.O_NOFOLLOW != 0 {
			return nil, false, syscall.ELOOP
		}
		if *depth++; *depth > maxSymlinks {
			return nil, false, syscall.ELOOP
		}
		return f.createPath(dir, in.target, perm, flags, o, depth)
	case in.IsDir():
		return nil, false, syscall.EISDIR
	}
	return in, false, nil
}

// makeLocked makes a new file, directory or symlink (mode: type and
// permission bits) at a free name of a resolved directory: forwarded to a
// backing directory first, then made and linked. The caller holds nsMu.
func (f *FS) makeLocked(dir *Inode, name string, mode uint32, target string, o *Owner) (*Inode, error) {
	return f.makeNodeLocked(dir, name, mode, 0, target, o)
}

// makeNodeLocked is makeLocked for any type: rdev is a device's number.
func (f *FS) makeNodeLocked(dir *Inode, name string, mode uint32, rdev uint64, target string, o *Owner) (*Inode, error) {
	if _, ok := dir.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	if err := f.fwdCreate(dir, name, mode, rdev, target); err != nil {
		return nil, err
	}
	in := f.newInode(mode)
	in.target = target
	in.rdev = rdev
	if o != nil {
		in.initOwner(dir, *o)
	}
	f.link(dir, name, in)
	return in, nil
}

// link adds an entry. The caller holds nsMu.
func (f *FS) link(dir *Inode, name string, in *Inode) {
	dir.entries[name] = in
	in.nlink++
	if in.IsDir() {
		in.parent = dir
		in.nlink++  // its "."
		dir.nlink++ // its ".."
	}
	dir.touch()
	in.ctime.Store(time.Now().UnixNano())
	f.logDirent(dir, name, in)
	f.logInode(in)
	f.logInode(dir)
}

// unlinkEntry removes an entry and returns the inode if it must be evicted
// now (no links and no open handles). The caller holds nsMu.
func (f *FS) unlinkEntry(dir *Inode, name string) *Inode {
	in := dir.entries[name]
	delete(dir.entries, name)
	in.nlink--
	if in.IsDir() {
		in.nlink = 0
		dir.nlink--
	}
	dir.touch()
	in.ctime.Store(time.Now().UnixNano())
	f.logDirent(dir, name, nil)
	f.logInode(dir)
	if in.nlink == 0 && in.opens == 0 {
		delete(f.inodes, in.ino)
		f.logDrop(in)
		return in
	}
	f.logInode(in)
	return nil
}

// Mkdir creates a directory.
func (f *FS) Mkdir(path string, perm uint32) error {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, _, err := f.lookupParentRoot(path, nnMake)
	if err != nil {
		return err
	}
	_, err = f.makeLocked(dir, name, syscall.S_IFDIR|perm&0o7777, "", nil)
	return err
}

// lookupFree resolves the parent of path and checks that its last name is
// free for link(2), symlink(2) or mknod(2): EEXIST if taken; if free but
// written with a trailing slash, ENOENT: Linux reads the slash as asking
// for a directory, which these calls do not make. The caller holds nsMu.
func (f *FS) lookupFree(path string) (*Inode, string, error) {
	dir, name, slash, err := f.lookupParentRoot(path, nnMake)
	switch {
	case err != nil:
		return nil, "", err
	case dir.entries[name] != nil:
		return nil, "", syscall.EEXIST
	case slash:
		return nil, "", syscall.ENOENT
	}
	return dir, name, nil
}

// Symlink creates a symbolic link at path pointing to target.
func (f *FS) Symlink(target, path string) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, err := f.lookupFree(path)
	if err != nil {
		return err
	}
	_, err = f.makeLocked(dir, name, syscall.S_IFLNK|0o777, target, nil)
	return err
}

// Link makes newPath another name of the non-directory at oldPath; a
// final symlink of oldPath is linked, not followed, as link(2) does.
func (f *FS) Link(oldPath, newPath string) error {
	if err := checkPath(oldPath); err != nil {
		return err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	depth := 0
	in, err := f.walk(f.root, oldPath, false, &depth)
	if err != nil {
		return err
	}
	dir, name, err := f.lookupFree(newPath)
	if err != nil {
		return err
	}
	return f.linkLocked(in, dir, name)
}

// linkLocked makes name, a free name in dir, another name of in; the
// caller holds nsMu. A directory cannot get a second name (EPERM), nor a
// file whose last name is gone (ENOENT, as linkat(2) of an unlinked file
// through /proc/self/fd).
func (f *FS) linkLocked(in, dir *Inode, name string) error {
	switch {
	case in.IsDir():
		return syscall.EPERM
	case in.nlink == 0:
		return syscall.ENOENT
	}
	if err := f.fwdLink(in, dir, name); err != nil {
		return err
	}
	f.link(dir, name, in)
	return nil
}

// Unlink removes a non-directory name. An open file lives on until its
// last handle closes.
func (f *FS) Unlink(path string) error {
	f.nsMu.Lock()
	dir, name, slash, err := f.lookupParentRoot(path, nnCreate)
	if err != nil {
		f.nsMu.Unlock()
		return err
	}
	in, ok := dir.entries[name]
	switch {
	case !ok:
		err = syscall.ENOENT
	case in.IsDir():
		err = syscall.EISDIR
	case slash:
		err = syscall.ENOTDIR // unlink("f/"), even of a symlink to a directory
	}
	if err == nil {
		err = f.fwdRemove(dir, name)
	}
	var dead *Inode
	if err == nil {
		dead = f.unlinkEntry(dir, name)
	}
	f.nsMu.Unlock()
	if dead != nil {
		return dead.evict()
	}
	return err
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(path string) error {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, _, err := f.lookupParentRoot(path, nnRmdir)
	if err != nil {
		return err
	}
	in, ok := dir.entries[name]
	switch {
	case !ok:
		return syscall.ENOENT
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

// isAncestor reports whether a is d or one of d's ancestors. The caller
// holds nsMu.
func (f *FS) isAncestor(a, d *Inode) bool {
	for {
		if d == a {
			return true
		}
		if d == f.root {
			return false
		}
		d = d.parent
	}
}

// checkRenameFlags refuses renameat2 flags holefs does not know, and an
// exchange with either of the others, as do_renameat2.
func checkRenameFlags(flags uint32) error {
	if flags&^(RenameNoReplace|RenameExchange|RenameWhiteout) != 0 ||
		flags&RenameExchange != 0 && flags&(RenameNoReplace|RenameWhiteout) != 0 {
		return syscall.EINVAL
	}
	return nil
}

// Rename renames oldPath to newPath with renameat2 flags. Both paths are
// resolved before either last component is checked, as do_renameat2
// does.
func (f *FS) Rename(oldPath, newPath string, flags uint32) error {
	if err := checkRenameFlags(flags); err != nil {
		return err
	}
	nn := nnRename
	if flags&RenameNoReplace != 0 {
		nn = nnMake
	}
	f.nsMu.Lock()
	odepth, ndepth := 0, 0
	odir, oname, oslash, err := f.resolveParent(f.root, oldPath, &odepth)
	var ndir *Inode
	var nname string
	var nslash bool
	if err == nil {
		ndir, nname, nslash, err = f.resolveParent(f.root, newPath, &ndepth)
	}
	if err == nil {
		err = nnRename.check(oname)
	}
	if err == nil {
		err = nn.check(nname)
	}
	if err == nil {
		err = checkName(oname)
	}
	var src *Inode
	if err == nil {
		var ok bool
		if src, ok = odir.entries[oname]; !ok {
			err = syscall.ENOENT
		}
	}
	if err == nil {
		err = checkName(nname)
	}
	if err != nil {
		f.nsMu.Unlock()
		return err
	}
	return f.finishRename(odir, oname, ndir, nname, src, flags, oslash, nslash, nil)
}

// finishRename renames the resolved entry oname of odir, src, to nname in
// ndir; oslash and nslash say the paths named them with a trailing slash,
// and o, if set, owns a whiteout (nil keeps newInode's owner). The checks
// come in do_renameat2's order, so that a call breaking two rules gets
// Linux's errno. The caller holds nsMu, which finishRename releases
// before it evicts a replaced file that lost its last link.
func (f *FS) finishRename(odir *Inode, oname string, ndir *Inode, nname string, src *Inode, flags uint32, oslash, nslash bool, o *Owner) error {
	dst, exists := ndir.entries[nname]
	exchange := flags&RenameExchange != 0
	var dead *Inode
	var err error
	switch {
	case exists && flags&RenameNoReplace != 0:
		err = syscall.EEXIST
	case exchange && !exists:
		err = syscall.ENOENT
	case exchange && nslash && !dst.IsDir(), !src.IsDir() && (oslash || nslash && !exchange):
		err = syscall.ENOTDIR
	case src.IsDir() && f.isAncestor(src, ndir):
		err = syscall.EINVAL // into its own subtree
	case exists && dst.IsDir() && f.isAncestor(dst, odir):
		// Over a directory the source is in: that directory is not
		// empty; exchanging the two would make a loop.
		err = syscall.ENOTEMPTY
		if exchange {
			err = syscall.EINVAL
		}
	case src == dst:
		// Two names of one file: POSIX says do nothing.
	case exchange:
		err = f.exchange(odir, oname, ndir, nname, src, dst)
	case flags&RenameWhiteout != 0:
		dead, err = f.moveWhiteout(odir, oname, ndir, nname, src, dst, exists, o)
	default:
		dead, err = f.move(odir, oname, ndir, nname, src, dst, exists)
	}
	f.nsMu.Unlock()
	if dead != nil {
		return dead.evict()
	}
	return err
}

// move renames src over the name nname of ndir, which dst has if exists;
// finishRename has checked the names. The caller holds nsMu.
func (f *FS) move(odir *Inode, oname string, ndir *Inode, nname string, src, dst *Inode, exists bool) (*Inode, error) {
	var dead *Inode
	if exists {
		switch {
		case src.IsDir() && !dst.IsDir():
			return nil, syscall.ENOTDIR
		case !src.IsDir() && dst.IsDir():
			return nil, syscall.EISDIR
		case dst.IsDir() && len(dst.entries) > 0:
			return nil, syscall.ENOTEMPTY
		}
		if err := f.fwdRename(odir, oname, ndir, nname, 0, src, dst); err != nil {
			return nil, err
		}
		dead = f.unlinkEntry(ndir, nname)
	} else if err := f.fwdRename(odir, oname, ndir, nname, 0, src, nil); err != nil {
		return nil, err
	}
	delete(odir.entries, oname)
	ndir.entries[nname] = src
	if src.IsDir() && odir != ndir {
		src.parent = ndir
		odir.nlink--
		ndir.nlink++
	}
	odir.touch()
	ndir.touch()
	src.ctime.Store(time.Now().UnixNano())
	f.logDirent(odir, oname, nil)
	f.logDirent(ndir, nname, src)
	f.logInode(odir)
	f.logInode(ndir)
	f.logInode(src)
	return dead, nil
}

// moveWhiteout is move leaving a whiteout at the old name, as overlayfs
// asks of its upper filesystem: a character device 0:0 with no permission
// bits, owned by o. It refuses before moving anything where the whiteout
// could not be made: an image without special files (EOPNOTSUPP), and a
// backing directory (EINVAL: the rename and the whiteout would be two
// changes there, not one). The caller holds nsMu.
func (f *FS) moveWhiteout(odir *Inode, oname string, ndir *Inode, nname string, src, dst *Inode, exists bool, o *Owner) (*Inode, error) {
	if f.backend.Backing != nil {
		return nil, syscall.EINVAL
	}
	mode, rdev, err := f.mknodMode(syscall.S_IFCHR, 0)
	if err != nil {
		return nil, err
	}
	dead, err := f.move(odir, oname, ndir, nname, src, dst, exists)
	if err != nil {
		return nil, err
	}
	// Without a backing directory nothing can fail here: the name was
	// just freed.
	_, err = f.makeNodeLocked(odir, oname, mode, rdev, "", o)
	return dead, err
}

// exchange swaps the entries oname of odir, src, and nname of ndir, dst;
// finishRename has checked the names. The caller holds nsMu.
func (f *FS) exchange(odir *Inode, oname string, ndir *Inode, nname string, src, dst *Inode) error {
	if err := f.fwdRename(odir, oname, ndir, nname, RenameExchange, src, dst); err != nil {
		return err
	}
	odir.entries[oname], ndir.entries[nname] = dst, src
	if odir != ndir {
		if src.IsDir() {
			src.parent = ndir
			odir.nlink--
			ndir.nlink++
		}
		if dst.IsDir() {
			dst.parent = odir
			ndir.nlink--
			odir.nlink++
		}
	}
	odir.touch()
	ndir.touch()
	now := time.Now().UnixNano()
	src.ctime.Store(now)
	dst.ctime.Store(now)
	f.logDirent(odir, oname, dst)
	f.logDirent(ndir, nname, src)
	f.logInode(odir)
	f.logInode(ndir)
	f.logInode(src)
	f.logInode(dst)
	return nil
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Ino  uint64
	Mode uint32 // type and permission bits
}

// ReadDir lists the directory at path sorted by name.
func (f *FS) ReadDir(path string) ([]DirEntry, error) {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	depth := 0
	dir, err := f.walk(f.root, path, true, &depth)
	if err != nil {
		return nil, err
	}
	return dir.list()
}

// ReadDirInode lists the directory dir sorted by name, as getdents(2) on an
// open directory: wherever it was renamed; empty once removed.
func (f *FS) ReadDirInode(dir *Inode) ([]DirEntry, error) {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	return dir.list()
}

// list returns a directory's entries sorted by name. The caller holds nsMu.
func (dir *Inode) list() ([]DirEntry, error) {
	if !dir.IsDir() {
		return nil, syscall.ENOTDIR
	}
	out := make([]DirEntry, 0, len(dir.entries))
	for name, in := range dir.entries {
		out = append(out, DirEntry{Name: name, Ino: in.ino, Mode: in.typ | in.perm})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
