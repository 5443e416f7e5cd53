package vfs

import (
	"fmt"
	"syscall"
	"time"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/pagecache"
)

// The log functions record namespace changes in the image's journal; the
// caller holds nsMu, which orders the log. They do nothing without an
// image.

// logInode records an inode's namespace attributes. Once its drop is
// logged, nothing more is (here and in logXattr): the kernel still holds
// it by node ID after the last name and handle are gone, and flushes its
// cached times (SETATTR) when it evicts it, which would bring a record
// back as an orphan without links.
func (f *FS) logInode(in *Inode) {
	j := f.backend.Journal
	if j == nil || in.dropped {
		return
	}
	j.PutInode(meta.Static{Ino: in.ino, Mode: in.typ | in.perm, UID: in.uid, GID: in.gid, Nlink: uint32(in.nlink), Target: in.target, Rdev: in.rdev})
	in.entry.Dirty()
}

// logXattr records an extended attribute's new value (set, possibly
// empty) or its removal. The caller holds nsMu.
func (f *FS) logXattr(in *Inode, name string, value []byte, set bool) {
	if j := f.backend.Journal; j != nil && !in.dropped {
		if set {
			value = append([]byte{}, value...) // non-nil: nil means removal
		}
		j.PutXattr(in.ino, name, value)
		in.entry.Dirty() // ctime
	}
}

// logDirent records that dir's entry name now names in; nil removes it.
func (f *FS) logDirent(dir *Inode, name string, in *Inode) {
	if j := f.backend.Journal; j != nil {
		var ino uint64
		if in != nil {
			ino = in.ino
		}
		j.PutDirent(dir.ino, name, ino)
	}
}

// logDrop records that an inode is gone. It comes before the inode's
// blocks are freed (evict), as the quarantine requires. A Backing forgets
// the inode too.
func (f *FS) logDrop(in *Inode) {
	in.dropped = true
	if j := f.backend.Journal; j != nil {
		j.DropInode(in.ino)
	}
	f.fwdForget(in)
}

// durableFile is a block map whose extents a commit can read.
type durableFile interface {
	DurableExtents() ([]meta.Extent, bool)
}

// rootsFile is a block map kept on the device whose i_block roots a
// commit records (ext2 images).
type rootsFile interface {
	DurableRoots() ([meta.NRoots]uint32, bool)
}

// Snapshot implements meta.Source: what a commit writes of this inode.
func (in *Inode) Snapshot() (d meta.Dynamic, xs []meta.Extent, hasExtents, ok bool) {
	d = meta.Dynamic{Atime: in.atime.Load(), Mtime: in.mtime.Load(), Ctime: in.ctime.Load()}
	if in.mapping == nil {
		return d, nil, false, true
	}
	d.Size = in.mapping.Size()
	if rf, ok := in.blocks.(rootsFile); ok {
		d.IBlock, ok = rf.DurableRoots()
		return d, nil, false, ok
	}
	df, isDurable := in.blocks.(durableFile)
	if !isDurable {
		return d, nil, false, true
	}
	xs, ok = df.DurableExtents()
	return d, xs, true, ok
}

// commit makes everything durable: the image's journal commit, or a device
// flush without an image.
func (f *FS) commit() error {
	if j := f.backend.Journal; j != nil {
		return j.Commit()
	}
	return f.flushDevice()
}

// Restore returns the filesystem held by an image's snapshot. files
// returns the restored block map of a regular file (nil: none, the file
// has no extents). Inodes with no links — files unlinked while open when
// the image was last used — are dropped, their blocks freed by the next
// commit. A snapshot whose records do not fit together (a dirent naming a
// missing inode, a missing root) fails with EUCLEAN: holefs fsck repairs
// it.
func Restore(backend Backend, cacheOpts pagecache.Options, hooks *Hooks, snap *meta.Snapshot, files func(ino uint64) blockmap.File) (*FS, error) {
	f := &FS{cache: pagecache.NewCache(cacheOpts), backend: backend, hooks: hooks, inodes: map[uint64]*Inode{}}
	f.nsMu.Init(lockcheck.RankNamespace, 0)
	fail := func(format string, args ...any) (*FS, error) {
		f.cache.Close()
		return nil, fmt.Errorf("restore: "+format+" (run holefs fsck): %w", append(args, syscall.EUCLEAN)...)
	}
	j := backend.Journal
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	for ino, rec := range snap.Inodes {
		f.nextIno = max(f.nextIno, ino+1)
		if rec.Nlink == 0 {
			j.DropInode(ino)
			continue
		}
		in := &Inode{fs: f, ino: ino, typ: rec.Mode & syscall.S_IFMT, perm: rec.Mode &^ syscall.S_IFMT,
			uid: rec.UID, gid: rec.GID, nlink: int32(rec.Nlink), target: rec.Target, rdev: deviceNumber(rec.Mode, rec.Rdev)}
		in.atime.Store(rec.Atime)
		in.mtime.Store(rec.Mtime)
		in.ctime.Store(rec.Ctime)
		var blocks blockmap.File
		if in.typ == syscall.S_IFREG && files != nil {
			blocks = files(ino)
		}
		f.initInode(in, blocks)
		if in.mapping != nil {
			in.mapping.SetSize(rec.Size)
		}
	}
	for _, d := range snap.Dirents {
		dir, child := f.inodes[d.Dir], f.inodes[d.Ino]
		switch {
		case dir == nil || !dir.IsDir():
			return fail("entry %q of inode %d: not a directory", d.Name, d.Dir)
		case child == nil:
			return fail("entry %q of directory %d names inode %d, which does not exist", d.Name, d.Dir, d.Ino)
		}
		dir.entries[d.Name] = child
		if child.IsDir() {
			child.parent = dir
		}
	}
	for _, x := range snap.Xattrs {
		if in := f.inodes[x.Ino]; in != nil {
			if in.xattrs == nil {
				in.xattrs = map[string][]byte{}
			}
			in.xattrs[x.Name] = x.Value
		}
	}
	root := f.inodes[meta.RootIno]
	if root == nil || !root.IsDir() {
		return fail("the root directory (inode %d) is missing", meta.RootIno)
	}
	root.parent = root
	f.root = root
	return f, nil
}

// initInode finishes a new or restored inode: its lock, its block map and
// page cache (regular files; blocks nil makes a new map), its journal
// entry, and its place in the inode table. The caller holds nsMu.
func (f *FS) initInode(in *Inode, blocks blockmap.File) {
	in.lock.Init(lockcheck.RankInode, uintptr(in.ino))
	switch in.typ {
	case syscall.S_IFDIR:
		in.entries = map[string]*Inode{}
	case syscall.S_IFREG:
		if blocks == nil {
			blocks = f.backend.Store.NewFile(in.ino)
		}
		in.blocks = blocks
		in.mapping = f.cache.NewMapping(pagecache.MappingOptions{
			Blocks: blocks, Device: in.mappingDevice(blocks), Host: &in.lock,
			Unevictable: f.backend.Memory, Key: uintptr(in.ino), DAX: f.backend.DAX,
		})
	}
	if j := f.backend.Journal; j != nil {
		in.entry = j.Entry(in.ino)
		in.entry.SetSource(in)
	}
	f.inodes[in.ino] = in
}

// now is the inode timestamp clock.
func now() int64 { return time.Now().UnixNano() }
