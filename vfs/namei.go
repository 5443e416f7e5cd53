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
)

// Rename flags, as renameat2(2).
const (
	RenameNoReplace = 1 << 0 // RENAME_NOREPLACE: fail with EEXIST if the target exists
	RenameExchange  = 1 << 1 // RENAME_EXCHANGE: atomically swap the two names
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

// lookupParent resolves all but the last component of path, which it
// returns validated; nn gives the errors when the last component is not a
// name. The caller holds nsMu.
func (f *FS) lookupParent(path string, nn notName) (*Inode, string, error) {
	comps := split(path)
	if len(comps) == 0 {
		return nil, "", nn.root
	}
	name := comps[len(comps)-1]
	depth := 0
	dir, err := f.walk(f.root, strings.Join(comps[:len(comps)-1], "/"), true, &depth)
	if err != nil {
		return nil, "", err
	}
	if !dir.IsDir() {
		return nil, "", syscall.ENOTDIR
	}
	switch name {
	case ".":
		return nil, "", nn.dot
	case "..":
		return nil, "", nn.dotdot
	}
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	return dir, name, nil
}

// Lookup resolves path; follow says whether a final symlink is followed
// (stat) or returned (lstat).
func (f *FS) Lookup(path string, follow bool) (*Inode, error) {
	f.nsMu.RLock()
	defer f.nsMu.RUnlock()
	depth := 0
	return f.walk(f.root, path, follow, &depth)
}

// Create returns the regular file at path, creating it with perm if it
// does not exist; with excl an existing file is EEXIST (O_CREAT|O_EXCL).
// It reports whether it created the file.
func (f *FS) Create(path string, perm uint32, excl bool) (*Inode, bool, error) {
	if strings.HasSuffix(path, "/") {
		return nil, false, syscall.EISDIR // open("f/", O_CREAT), as Linux
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, err := f.lookupParent(path, nnCreate)
	if err != nil {
		return nil, false, err
	}
	return f.createLocked(dir, name, perm, excl, nil)
}

// createLocked is Create in a resolved directory; the caller holds nsMu.
// o, if set, is the creator (FUSE); nil keeps newInode's owner.
func (f *FS) createLocked(dir *Inode, name string, perm uint32, excl bool, o *Owner) (*Inode, bool, error) {
	if _, ok := dir.entries[name]; ok {
		if excl {
			return nil, false, syscall.EEXIST
		}
		depth := 0
		in, err := f.walk(dir, name, true, &depth)
		if err != nil {
			return nil, false, err
		}
		if in.IsDir() {
			return nil, false, syscall.EISDIR
		}
		return in, false, nil
	}
	in, err := f.makeLocked(dir, name, syscall.S_IFREG|perm&0o7777, "", o)
	return in, err == nil, err
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
	dir, name, err := f.lookupParent(path, nnMake)
	if err != nil {
		return err
	}
	_, err = f.makeLocked(dir, name, syscall.S_IFDIR|perm&0o7777, "", nil)
	return err
}

// Symlink creates a symbolic link at path pointing to target.
func (f *FS) Symlink(target, path string) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	dir, name, err := f.lookupParent(path, nnMake)
	if err != nil {
		return err
	}
	_, err = f.makeLocked(dir, name, syscall.S_IFLNK|0o777, target, nil)
	return err
}

// Link makes newPath another name of the non-directory at oldPath.
func (f *FS) Link(oldPath, newPath string) error {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	depth := 0
	in, err := f.walk(f.root, oldPath, false, &depth)
	if err != nil {
		return err
	}
	if in.IsDir() {
		return syscall.EPERM
	}
	dir, name, err := f.lookupParent(newPath, nnMake)
	if err != nil {
		return err
	}
	if _, ok := dir.entries[name]; ok {
		return syscall.EEXIST
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
	dir, name, err := f.lookupParent(path, nnCreate)
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
	dir, name, err := f.lookupParent(path, nnRmdir)
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

// Rename renames oldPath to newPath with renameat2 flags.
func (f *FS) Rename(oldPath, newPath string, flags uint32) error {
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return syscall.EINVAL
	}
	f.nsMu.Lock()
	odir, oname, err := f.lookupParent(oldPath, nnRename)
	if err != nil {
		f.nsMu.Unlock()
		return err
	}
	nn := nnRename
	if flags&RenameNoReplace != 0 {
		nn = nnMake
	}
	ndir, nname, err := f.lookupParent(newPath, nn)
	if err != nil {
		f.nsMu.Unlock()
		return err
	}
	src, ok := odir.entries[oname]
	if !ok {
		f.nsMu.Unlock()
		return syscall.ENOENT
	}
	return f.finishRename(odir, oname, ndir, nname, src, flags)
}

// finishRename renames the resolved entry oname of odir, src, to nname in
// ndir. The caller holds nsMu, which finishRename releases before it
// evicts a replaced file that lost its last link.
func (f *FS) finishRename(odir *Inode, oname string, ndir *Inode, nname string, src *Inode, flags uint32) error {
	dst, exists := ndir.entries[nname]
	var dead *Inode
	var err error
	switch {
	case flags&RenameExchange != 0:
		err = f.exchange(odir, oname, ndir, nname, src, dst, exists)
	case exists && flags&RenameNoReplace != 0:
		err = syscall.EEXIST
	case src == dst:
		// Two names of one file: POSIX says do nothing.
	default:
		dead, err = f.move(odir, oname, ndir, nname, src, dst, exists)
	}
	f.nsMu.Unlock()
	if dead != nil {
		return dead.evict()
	}
	return err
}

func (f *FS) move(odir *Inode, oname string, ndir *Inode, nname string, src, dst *Inode, exists bool) (*Inode, error) {
	if src.IsDir() && f.isAncestor(src, ndir) {
		return nil, syscall.EINVAL
	}
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

func (f *FS) exchange(odir *Inode, oname string, ndir *Inode, nname string, src, dst *Inode, exists bool) error {
	if !exists {
		return syscall.ENOENT
	}
	if src == dst {
		return nil
	}
	if (src.IsDir() && f.isAncestor(src, ndir)) || (dst.IsDir() && f.isAncestor(dst, odir)) {
		return syscall.EINVAL
	}
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
