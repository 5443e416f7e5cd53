package fuse

import (
	"context"
	"math"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/holefs/holefs/vfs"
)

// node is a FUSE node: one holefs inode as the kernel knows it. It holds
// no state of its own beyond the inode, so the duplicates go-fuse makes
// and drops when two lookups of one inode race are harmless.
type node struct {
	fs.Inode
	s  *Server
	in *vfs.Inode // immutable
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// child returns the FUSE node of the inode in, a new entry of n, with its
// attributes in out. go-fuse keeps one node per inode number: a node the
// kernel already knows wins over the one made here.
func (n *node) child(ctx context.Context, in *vfs.Inode, out *gofuse.EntryOut) *fs.Inode {
	a := in.Stat()
	fillAttr(&out.Attr, a)
	return n.NewInode(ctx, &node{s: n.s, in: in}, fs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino})
}

// fillAttr copies the engine's attributes into a FUSE reply.
func fillAttr(out *gofuse.Attr, a vfs.Attr) {
	out.Ino = a.Ino
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Size = uint64(a.Size)
	out.Blocks = uint64(a.Blocks)
	out.Blksize = blockSize
	out.Uid, out.Gid = a.Uid, a.Gid
	// Linux's device numbers (12-bit major, 20-bit minor) fit the low 32
	// bits of unix.Mkdev's encoding, which are the FUSE encoding (see Mknod).
	out.Rdev = uint32(a.Rdev)
	out.SetTimes(&a.Atime, &a.Mtime, &a.Ctime)
}

// caller returns who made a request: its fsuid, fsgid and thread ID.
func caller(ctx context.Context) *gofuse.Caller {
	if c, ok := gofuse.FromContext(ctx); ok {
		return c
	}
	return &gofuse.Caller{}
}

// owner is the creator of a new inode: the caller's fsuid and fsgid.
func owner(ctx context.Context) vfs.Owner {
	c := caller(ctx)
	return vfs.Owner{Uid: c.Uid, Gid: c.Gid}
}

// Lookup finds the entry name of the directory.
func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, err := n.s.v.LookupAt(n.in, name)
	if err != nil {
		return nil, n.s.errno(opLookup, err)
	}
	return n.child(ctx, in, out), 0
}

// Getattr returns the inode's attributes. The kernel sends no file
// handle (fstat is a GETATTR of the node), and none is needed.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, n.in.Stat())
	return 0
}

// Setattr changes the size (truncate), mode, owner and times. The kernel
// has checked the caller's permission (default_permissions: setattr_prepare,
// which also drops the set-group-ID bit from a chmod by a caller outside
// the file's group) and turned UTIME_NOW into FATTR_*_NOW, which GetATime
// and GetMTime resolve; an omitted time is not in the request. The size
// changes first, so that times set in the same request win over the
// truncation's.
//
// A request with none of the attributes is chown(2) with -1 for both
// IDs, or the kernel removing privileges before a write: it has left
// killing them to the server (HANDLE_KILLPRIV_V2) and sends no change.
// From a caller other than root, or with a change time (which the kernel
// sends for the chown with the writeback cache), it is taken as a change
// of the owner to what it is, which takes the set-ID bits and the change
// time as any chown does.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	c := caller(ctx)
	if size, ok := in.GetSize(); ok {
		if err := n.truncate(f, size); err != nil {
			return n.s.errno(opSetattr, err)
		}
		// Truncating kills privileges (see killpriv.go).
		kill := in.Valid&gofuse.FATTR_KILL_SUIDGID != 0
		if err := n.in.KillPriv(kill, kill && notInGroup(c, n.in.Stat()), true); err != nil {
			return n.s.errno(opSetattr, err)
		}
	}
	a := vfs.SetAttr{Frontend: true}
	const attrs = gofuse.FATTR_SIZE | gofuse.FATTR_MODE | gofuse.FATTR_UID | gofuse.FATTR_GID | gofuse.FATTR_ATIME | gofuse.FATTR_MTIME
	if in.Valid&attrs == 0 {
		if c.Uid == 0 && in.Valid&gofuse.FATTR_CTIME == 0 {
			// Or a write by root removing file capabilities
			// (file_remove_privs's ATTR_KILL_PRIV), which must keep
			// the set-ID bits. Only with the writeback cache does the
			// kernel tell the chown apart, by the change time it
			// sends; otherwise root's chown with -1, -1 keeps them too.
			if err := n.in.KillPriv(false, false, true); err != nil {
				return n.s.errno(opSetattr, err)
			}
		} else {
			a.Valid = vfs.SetOwner
		}
	}
	if mode, ok := in.GetMode(); ok {
		a.Valid |= vfs.SetMode
		a.Mode = mode & 0o7777
	}
	if uid, ok := in.GetUID(); ok {
		a.Valid |= vfs.SetUid
		a.Uid = uid
	}
	if gid, ok := in.GetGID(); ok {
		a.Valid |= vfs.SetGid
		a.Gid = gid
	}
	if a.Valid&(vfs.SetUid|vfs.SetGid) != 0 {
		// The kernel does not say whether the caller holds CAP_FSETID
		// here: root is taken to.
		a.NotInGroup = c.Uid != 0 && notInGroup(c, n.in.Stat())
	}
	if t, ok := in.GetATime(); ok {
		a.Valid |= vfs.SetAtime
		a.Atime = t
	}
	if t, ok := in.GetMTime(); ok {
		a.Valid |= vfs.SetMtime
		a.Mtime = t
	}
	if a.Valid != 0 || in.Valid&attrs == 0 {
		if err := n.in.Setattr(a); err != nil {
			return n.s.errno(opSetattr, err)
		}
	}
	fillAttr(&out.Attr, n.in.Stat())
	return 0
}

// truncate sets the size through the request's handle (ftruncate) or, for
// truncate(2) of a path, a handle opened for the purpose.
func (n *node) truncate(f fs.FileHandle, size uint64) error {
	if size > math.MaxInt64 {
		return syscall.EFBIG
	}
	if fh, ok := f.(*handle); ok && fh.writable {
		return fh.h.Truncate(int64(size))
	}
	h, err := n.s.v.OpenFrontend(n.in, syscall.O_WRONLY)
	if err != nil {
		return err
	}
	err = h.Truncate(int64(size))
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open opens a regular file. The reply's flags carry the caching mode.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, err := n.s.open(n, flags)
	if err != nil {
		return nil, 0, n.s.errno(opOpen, err)
	}
	oflags := n.s.openFlags(flags)
	if n.in.SequentialZone() && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		// Every write of a sequential zone file reaches the engine as it
		// is made, never through the kernel's page cache, whose writeback
		// would come later and in any order: a buffered one fails at
		// write(2) with EIO, as on zonefs, a direct one lands at the
		// write pointer or fails with EINVAL.
		oflags = oflags&^gofuse.FOPEN_KEEP_CACHE | gofuse.FOPEN_DIRECT_IO
	}
	return fh, oflags, 0
}

// Create creates and opens a regular file. The kernel sends it only after
// a lookup found no entry; should one appear meanwhile, it is opened as
// open(2) with O_CREAT would, or EEXIST with O_EXCL.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, _, err := n.s.v.CreateAt(n.in, name, mode&0o7777, flags&syscall.O_EXCL != 0, owner(ctx))
	if err != nil {
		return nil, nil, 0, n.s.errno(opCreate, err)
	}
	ch := n.child(ctx, in, out)
	fh, err := n.s.open(ch.Operations().(*node), flags)
	if err != nil {
		return nil, nil, 0, n.s.errno(opCreate, err)
	}
	return ch, fh, n.s.openFlags(flags), 0
}

// Mkdir creates a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, err := n.s.v.MkdirAt(n.in, name, mode&0o7777, owner(ctx))
	if err != nil {
		return nil, n.s.errno(opMkdir, err)
	}
	return n.child(ctx, in, out), 0
}

// Mknod makes a regular file, FIFO, socket or device (mknod(2), mkfifo(3),
// bind(2) of a unix socket). The kernel has checked CAP_MKNOD for devices
// and applied the umask. dev is in the kernel's FUSE encoding
// (new_encode_dev: 12-bit major, 20-bit minor), which for such numbers is
// bit for bit what unix.Mkdev makes, the engine's encoding, and so is the
// Rdev of the attributes. The kernel does a special file's I/O itself (a
// pipe, a socket, a driver): it never sends OPEN for one.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, err := n.s.v.MknodAt(n.in, name, mode, uint64(dev), owner(ctx))
	if err != nil {
		return nil, n.s.errno(opMknod, err)
	}
	return n.child(ctx, in, out), 0
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.s.errno(opRmdir, n.s.v.RmdirAt(n.in, name))
}

// Unlink removes a name; an open file lives on until its last handle is
// released.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.s.errno(opUnlink, n.s.v.UnlinkAt(n.in, name))
}

// Rename renames with renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE,
// RENAME_WHITEOUT: the whiteout is the caller's, as Linux makes it for
// any user since 5.8).
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return n.s.errno(opRename, syscall.EXDEV)
	}
	return n.s.errno(opRename, n.s.v.RenameAt(n.in, name, np.in, newName, flags, owner(ctx)))
}

// Link makes name another name of target.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tn, ok := target.(*node)
	if !ok {
		return nil, n.s.errno(opLink, syscall.EXDEV)
	}
	if err := n.s.v.LinkAt(tn.in, n.in, name); err != nil {
		return nil, n.s.errno(opLink, err)
	}
	return n.child(ctx, tn.in, out), 0
}

// Symlink creates a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	in, err := n.s.v.SymlinkAt(n.in, name, target, owner(ctx))
	if err != nil {
		return nil, n.s.errno(opSymlink, err)
	}
	return n.child(ctx, in, out), 0
}

// Readlink returns a symlink's target.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.in.Readlink()
	if err != nil {
		return nil, n.s.errno(opReadlink, err)
	}
	return []byte(t), 0
}

// Statfs reports the device's blocks. holefs has no fixed inode table, so
// the file count is a nominal 2^32, of which the inodes in use are taken.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	bsize, total, free := n.s.v.Statfs()
	out.Bsize, out.Frsize = uint32(bsize), uint32(bsize)
	out.Blocks, out.Bfree, out.Bavail = uint64(total), uint64(free), uint64(free)
	out.Files = 1 << 32
	out.Ffree = out.Files - uint64(n.s.v.Inodes())
	out.NameLen = 255
	return 0
}

// Getxattr reads an extended attribute; with an empty dest, its size.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	sz, err := n.in.Getxattr(attr, dest)
	return uint32(sz), n.s.errno(opGetxattr, err)
}

// Setxattr sets an extended attribute (flags XATTR_CREATE, XATTR_REPLACE).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.s.errno(opSetxattr, n.in.Setxattr(attr, data, int(flags)))
}

// Listxattr lists the extended attribute names; with an empty dest, the
// list's size.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	sz, err := n.in.Listxattr(dest)
	return uint32(sz), n.s.errno(opListxattr, err)
}

// Removexattr removes an extended attribute.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.s.errno(opRemovexattr, n.in.Removexattr(attr))
}

// Fsync is fsync(2) and fdatasync(2) of a file or a directory (the kernel
// sends FSYNCDIR for the latter, which go-fuse routes here too): both
// write back the file's data and commit the metadata.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	switch fh := f.(type) {
	case *handle:
		defer n.s.refreshAttrs(n.in.Ino())
		return n.s.errno(opFsync, fh.h.Sync())
	case *dirHandle:
		return n.s.errno(opFsync, fh.h.Sync())
	}
	return n.s.errno(opFsync, n.s.v.Sync())
}

// CopyFileRange copies between two open files (copy_file_range(2)); the
// kernel has checked the handles' modes and the ranges. One request
// copies at most 1 GiB: its reply counts bytes in 32 bits, and the kernel
// loops over short copies.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode,
	fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	src, ok1 := fhIn.(*handle)
	dst, ok2 := fhOut.(*handle)
	switch {
	case !ok1 || !ok2:
		return 0, n.s.errno(opCopyFileRange, syscall.EBADF)
	case flags != 0:
		return 0, n.s.errno(opCopyFileRange, syscall.EINVAL)
	case offIn > math.MaxInt64 || offOut > math.MaxInt64:
		return 0, n.s.errno(opCopyFileRange, syscall.EINVAL)
	}
	c, err := src.h.CopyRange(dst.h, int64(offIn), int64(offOut), int64(min(length, 1<<30)))
	return uint32(c), n.s.errno(opCopyFileRange, err)
}
