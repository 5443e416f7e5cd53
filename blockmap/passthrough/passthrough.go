// Package passthrough is the backend whose files are files of a directory
// of another filesystem, the backing directory, under the same names and
// tree: what holefs shows at a/b is DIR/a/b, and anyone can look at it
// there. The engine's page cache sits on top, as the Linux kernel's does
// over cifs or ceph.
//
// Data. Each regular file's block map is a File: block i of its device is
// page i of the backing file, read with pread and written with pwrite.
// Lookup reports where the backing file has data (SEEK_DATA/SEEK_HOLE);
// punch, zero range, collapse and insert are fallocate(2) on the backing
// file, truncate is ftruncate, and Allocate is fallocate with KEEP_SIZE,
// so a full backing filesystem fails the write (ENOSPC). The backing file
// is kept as long as the file: writeback writes whole pages, but never
// past the file size. Modes the backing filesystem refuses (tmpfs has no
// zero range, collapse or insert) are found by a probe at Open and refused
// by the VFS before anything changes (Unsupported).
//
// Namespace. FS implements vfs.Backing: the VFS forwards every create,
// mkdir, symlink, link, unlink, rmdir, rename (renameat2, with its flags),
// chmod, chown, utimes and size change to the backing directory before it
// changes its own tree, so that a backing error fails the operation with
// nothing changed. Directories are addressed by descriptors, so a rename
// elsewhere cannot send an operation to the wrong place; an entry that is
// not the one the VFS knows (replaced from outside) is ESTALE rather than
// removed or renamed. The tree is loaded from the backing directory at
// Open; changes made to the tree from outside after that are not seen
// until the next Open.
//
// Coherence. A backing file written from outside is detected by its size,
// modification and change times (see File.Changed): every change the
// engine itself makes is bracketed by a check and a refresh of what it
// knows of the file. The VFS revalidates on every open and periodically,
// and drops the cache of a changed file as a block-removing operation
// does. The policy for the engine's own dirty pages is drop and report:
// writeback never writes over an outside change (the write fails with
// ESTALE, reported by fsync like any writeback error, and the page stays
// cached, clean, until the revalidation drops it), and dirty pages found
// when the change is detected are discarded, which the next fsync of
// every handle reports (ESTALE).
//
// Special files (FIFOs, sockets, devices) are made with mknod(2) in the
// backing directory, where the backing filesystem's rules apply: a caller
// without CAP_MKNOD cannot make a device there (EPERM), whatever the VFS
// allows. Like symlinks they are held by an O_PATH descriptor, never
// opened for I/O.
//
// Limits: one descriptor per file, directory, symlink and special file
// stays open (a tree of more than RLIMIT_NOFILE entries cannot be
// opened); extended attributes,
// and the owner the VFS records for a FUSE caller at creation, live in
// memory only; an outside write that lands during one of the engine's own
// writes to the same file can go unseen, as with NFS's weak cache
// consistency.
package passthrough

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
)

// RootIno is the inode number of the backing directory itself.
const RootIno = 1

// FS is a backing directory: the block-map store of its files
// (blockmap.Store) and the mirror of the VFS's namespace there
// (vfs.Backing). It is safe for concurrent use.
type FS struct {
	dir         string
	rootFd      int // the backing directory, locked against a second holefs; closed by Close
	unsupported uint32
	noAlloc     bool // the backing filesystem has no fallocate at all
	wrap        func(blockdev.Device) blockdev.Device

	// mu guards the node table. It is a leaf held only to look nodes up
	// and change the table, never across a syscall.
	mu     sync.Mutex
	nodes  map[uint64]*node // by inode number; +checklocks:mu
	closed bool             // +checklocks:mu
}

// node is what FS holds of an inode.
type node struct {
	fd       int   // a directory (O_RDONLY), symlink or special file (O_PATH) descriptor; -1 for a regular file
	file     *File // regular files
	dev, ino uint64
	dir      bool
	special  bool // a FIFO, socket or device
}

var _ blockmap.Store = (*FS)(nil)

// Options configure Open.
type Options struct {
	// WrapDevice, if set, wraps each file's devices, for tests and
	// benchmarks that add latency or record I/O.
	WrapDevice func(blockdev.Device) blockdev.Device
}

// Open opens the backing directory dir. A second Open of the same
// directory, by this or another process, fails with EBUSY while the first
// is open. Open probes which fallocate modes the backing filesystem has,
// with a scratch file it creates and removes in dir.
func Open(dir string, o Options) (*FS, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("passthrough: open %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if err == syscall.EWOULDBLOCK {
			err = syscall.EBUSY
		}
		return nil, fmt.Errorf("passthrough: %s is in use by another holefs: %w", dir, err)
	}
	fsys := &FS{dir: dir, rootFd: fd, wrap: o.WrapDevice, nodes: map[uint64]*node{}}
	if fsys.wrap == nil {
		fsys.wrap = func(d blockdev.Device) blockdev.Device { return d }
	}
	if err := fsys.probe(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return fsys, nil
}

// probeModes are the fallocate modes the VFS may forward, as it forwards
// them.
var probeModes = []uint32{
	unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
	unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
	unix.FALLOC_FL_COLLAPSE_RANGE,
	unix.FALLOC_FL_INSERT_RANGE,
}

// probe finds the fallocate modes the backing filesystem refuses with
// EOPNOTSUPP, on an unnamed scratch file of four pages.
func (f *FS) probe() error {
	fd, err := unix.Openat(f.rootFd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		// No O_TMPFILE: a named file, removed at once.
		name := fmt.Sprintf(".holefs-probe-%d", os.Getpid())
		if fd, err = unix.Openat(f.rootFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600); err != nil {
			return fmt.Errorf("passthrough: probe %s: %w", f.dir, err)
		}
		unix.Unlinkat(f.rootFd, name, 0)
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, make([]byte, 4*pageSize), 0); err != nil {
		return fmt.Errorf("passthrough: probe %s: %w", f.dir, err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, pageSize); errors.Is(err, syscall.EOPNOTSUPP) {
		f.noAlloc = true
	}
	for _, mode := range probeModes {
		if err := unix.Fallocate(fd, mode, pageSize, pageSize); errors.Is(err, syscall.EOPNOTSUPP) {
			f.unsupported |= mode &^ unix.FALLOC_FL_KEEP_SIZE
		}
	}
	return nil
}

// Unsupported returns the fallocate modes (FALLOC_FL_* bits) the backing
// filesystem refuses with EOPNOTSUPP.
func (f *FS) Unsupported() uint32 { return f.unsupported }

// Load walks the backing directory and calls add for it (dir 0, name "",
// inode RootIno) and then for every directory entry, each directory
// before its entries. Inode numbers are this FS's own; the names of one
// backing inode (hard links) share one. A regular file's block map is
// NewFile's. Directories already seen (a bind mount looping back) are
// skipped.
func (f *FS) Load(add func(dir uint64, name string, ino uint64, st *unix.Stat_t, target string) error) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.rootFd, &st); err != nil {
		return fmt.Errorf("passthrough: load %s: %w", f.dir, err)
	}
	l := &loader{f: f, add: add, next: RootIno + 1, seen: map[[2]uint64]uint64{{st.Dev, st.Ino}: RootIno}}
	f.put(RootIno, &node{fd: f.rootFd, dev: st.Dev, ino: st.Ino, dir: true})
	if err := add(0, "", RootIno, &st, ""); err != nil {
		return err
	}
	if err := l.walk(RootIno, f.rootFd, f.dir); err != nil {
		return fmt.Errorf("passthrough: load %s: %w", f.dir, err)
	}
	return nil
}

type loader struct {
	f    *FS
	add  func(dir uint64, name string, ino uint64, st *unix.Stat_t, target string) error
	next uint64
	seen map[[2]uint64]uint64 // backing (dev, ino) -> inode number
}

func (l *loader) walk(dir uint64, dirFd int, path string) error {
	names, err := readdirnames(dirFd)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	slices.Sort(names)
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s/%s: %w", path, name, err)
		}
		typ := st.Mode & unix.S_IFMT
		if ino, ok := l.seen[[2]uint64{st.Dev, st.Ino}]; ok {
			if typ != unix.S_IFDIR {
				if err := l.add(dir, name, ino, &st, ""); err != nil {
					return err
				}
			}
			continue
		}
		n := &node{fd: -1, dev: st.Dev, ino: st.Ino, dir: typ == unix.S_IFDIR}
		var target string
		switch typ {
		case unix.S_IFDIR:
			n.fd, err = unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		case unix.S_IFREG:
			n.file, err = openFile(l.f, dirFd, name)
		case unix.S_IFLNK:
			if target, err = readlinkat(dirFd, name); err == nil {
				n.fd, err = unix.Openat(dirFd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		default:
			n.special = true
			n.fd, err = unix.Openat(dirFd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			return fmt.Errorf("%s/%s: %w", path, name, err)
		}
		ino := l.next
		l.next++
		l.seen[[2]uint64{st.Dev, st.Ino}] = ino
		l.f.put(ino, n)
		if err := l.add(dir, name, ino, &st, target); err != nil {
			return err
		}
		if typ == unix.S_IFDIR {
			if err := l.walk(ino, n.fd, path+"/"+name); err != nil {
				return err
			}
		}
	}
	return nil
}

// openFile opens a backing file for reading and writing, or only for
// reading if the backing filesystem refuses writing (its writes then fail
// with EBADF).
func openFile(fsys *FS, dirFd int, name string) (*File, error) {
	const flags = unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirFd, name, unix.O_RDWR|flags, 0)
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ETXTBSY) || errors.Is(err, syscall.EPERM) {
		fd, err = unix.Openat(dirFd, name, unix.O_RDONLY|flags, 0)
	}
	if err != nil {
		return nil, err
	}
	return newFile(fsys, fd, name)
}

func readdirnames(dirFd int) ([]string, error) {
	fd, err := unix.Dup(dirFd)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), "")
	defer d.Close()
	if _, err := d.Seek(0, 0); err != nil {
		return nil, err
	}
	return d.Readdirnames(-1)
}

func readlinkat(dirFd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func (f *FS) put(ino uint64, n *node) {
	f.mu.Lock()
	f.nodes[ino] = n
	f.mu.Unlock()
}

func (f *FS) get(ino uint64) (*node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[ino]
	if n == nil {
		return nil, fmt.Errorf("passthrough: no inode %d: %w", ino, syscall.ENOENT)
	}
	return n, nil
}

// dirFd returns the descriptor of directory ino.
func (f *FS) dirFd(ino uint64) (int, error) {
	n, err := f.get(ino)
	if err != nil {
		return -1, err
	}
	if !n.dir {
		return -1, syscall.ENOTDIR
	}
	return n.fd, nil
}

// NewFile returns the block map of regular file ino, which Load found or
// Create made: the VFS forwards a file's creation before it makes the
// inode. Any other call is a bug.
func (f *FS) NewFile(ino uint64) blockmap.File {
	n, err := f.get(ino)
	if err != nil || n.file == nil {
		panic(fmt.Sprintf("passthrough: NewFile(%d) of an inode that Load did not find and Create did not make", ino))
	}
	return n.file
}

// Statfs returns the backing filesystem's size and free space (available
// to this process) in pages.
func (f *FS) Statfs() (total, free int64) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(f.rootFd, &st); err != nil {
		return 0, 0
	}
	return int64(st.Blocks) * st.Bsize / pageSize, int64(st.Bavail) * st.Bsize / pageSize
}

// Create makes the entry name in directory dir for the new inode ino: a
// regular file, a directory, a symlink to target, or a FIFO, socket or
// device numbered rdev, by mode (type and permission bits, set exactly,
// whatever the umask). It fails with EEXIST if the backing directory has
// the name, even though the VFS does not.
func (f *FS) Create(dir uint64, name string, ino uint64, mode uint32, rdev uint64, target string) error {
	d, err := f.dirFd(dir)
	if err != nil {
		return err
	}
	perm := mode &^ unix.S_IFMT
	n := &node{fd: -1}
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		fd, err := unix.Openat(d, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err != nil {
			return err
		}
		if err := unix.Fchmod(fd, perm); err != nil {
			unix.Close(fd)
			unix.Unlinkat(d, name, 0)
			return err
		}
		if n.file, err = newFile(f, fd, name); err != nil {
			unix.Unlinkat(d, name, 0)
			return err
		}
		n.dev, n.ino = n.file.dev, n.file.ino
	case unix.S_IFDIR:
		if err := unix.Mkdirat(d, name, perm); err != nil {
			return err
		}
		n.dir = true
		n.fd, err = unix.Openat(d, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			// A directory made in a set-group-ID directory inherits the
			// bit, as the VFS's own inode_init_owner does: keep it.
			var st unix.Stat_t
			if err = unix.Fstat(n.fd, &st); err == nil {
				n.dev, n.ino = st.Dev, st.Ino
				err = unix.Fchmod(n.fd, perm|st.Mode&unix.S_ISGID)
			}
			if err != nil {
				unix.Close(n.fd)
			}
		}
		if err != nil {
			unix.Unlinkat(d, name, unix.AT_REMOVEDIR)
			return err
		}
	case unix.S_IFLNK:
		if err := unix.Symlinkat(target, d, name); err != nil {
			return err
		}
		n.fd, err = unix.Openat(d, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			if err = n.identify(); err != nil {
				unix.Close(n.fd)
			}
		}
		if err != nil {
			unix.Unlinkat(d, name, 0)
			return err
		}
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		if rdev > math.MaxUint32 {
			return syscall.EINVAL // mknodat(2) takes 32 bits
		}
		if err := unix.Mknodat(d, name, mode, int(rdev)); err != nil {
			return err
		}
		n.special = true
		n.fd, err = unix.Openat(d, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			if err = n.identify(); err == nil {
				err = n.chmod(perm) // the umask cut mknodat's mode
			}
			if err != nil {
				unix.Close(n.fd)
			}
		}
		if err != nil {
			unix.Unlinkat(d, name, 0)
			return err
		}
	default:
		return syscall.EINVAL
	}
	f.put(ino, n)
	return nil
}

func (n *node) identify() error {
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return err
	}
	n.dev, n.ino = st.Dev, st.Ino
	return nil
}

// chmod sets the permission bits of a special file, held by an O_PATH
// descriptor, which fchmod refuses: through its /proc/self/fd link, which
// chmod follows to the inode itself.
func (n *node) chmod(perm uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", n.fd), perm, 0)
}

// around runs fn as a change of n: for a regular file, between the check
// and the refresh of its attributes (File.change), since a namespace or
// attribute change moves its change time.
func (n *node) around(op string, fn func() error) error {
	if n.file == nil {
		return fn()
	}
	return n.file.change(op, false, func(int) error { return fn() })
}

// withFd runs fn on the inode's descriptor.
func (n *node) withFd(fn func(fd int) error) error {
	if n.file != nil {
		return n.file.control(fn)
	}
	return fn(n.fd)
}

// Link makes name in directory dir another name of inode ino (not a
// directory), through /proc/self/fd, since linkat(AT_EMPTY_PATH) needs
// CAP_DAC_READ_SEARCH.
func (f *FS) Link(ino, dir uint64, name string) error {
	d, err := f.dirFd(dir)
	if err != nil {
		return err
	}
	n, err := f.get(ino)
	if err != nil {
		return err
	}
	if n.dir {
		return syscall.EPERM
	}
	return n.around("link", func() error {
		return n.withFd(func(fd int) error {
			return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), d, name, unix.AT_SYMLINK_FOLLOW)
		})
	})
}

// check fails with ESTALE unless entry name of the directory d is inode n:
// the VFS and the backing directory disagree (someone replaced the entry
// from outside), and removing or renaming it would hit someone else's file.
func (n *node) check(d int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(d, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Dev != n.dev || st.Ino != n.ino {
		return fmt.Errorf("passthrough: entry %q was replaced in the backing directory: %w", name, syscall.ESTALE)
	}
	return nil
}

// entry returns the descriptor of directory dir and the node of inode ino,
// after checking that the backing directory's entry name still is that
// inode (an entry replaced from outside is ESTALE).
func (f *FS) entry(dir uint64, name string, ino uint64) (int, *node, error) {
	d, err := f.dirFd(dir)
	if err != nil {
		return -1, nil, err
	}
	n, err := f.get(ino)
	if err != nil {
		return -1, nil, err
	}
	return d, n, n.check(d, name)
}

// Remove removes the entry name of directory dir, which names inode ino:
// unlink, or rmdir for a directory (ENOTEMPTY if the backing directory
// holds entries the VFS does not know).
func (f *FS) Remove(dir uint64, name string, ino uint64) error {
	d, n, err := f.entry(dir, name, ino)
	if err != nil {
		return err
	}
	flags := 0
	if n.dir {
		flags = unix.AT_REMOVEDIR
	}
	return n.around("unlink", func() error { return unix.Unlinkat(d, name, flags) })
}

// Rename is renameat2(2) of oname in directory odir to nname in ndir with
// flags (RENAME_NOREPLACE, RENAME_EXCHANGE). src is the inode of oname;
// dst is the inode nname names, or 0 if the VFS has no such entry — then
// the rename does not replace one the backing directory has (EEXIST).
func (f *FS) Rename(odir uint64, oname string, ndir uint64, nname string, flags uint32, src, dst uint64) error {
	od, s, err := f.entry(odir, oname, src)
	if err != nil {
		return err
	}
	nd, err := f.dirFd(ndir)
	if err != nil {
		return err
	}
	if dst == 0 {
		if flags&unix.RENAME_EXCHANGE == 0 {
			flags |= unix.RENAME_NOREPLACE
		}
		return s.around("rename", func() error { return unix.Renameat2(od, oname, nd, nname, uint(flags)) })
	}
	_, t, err := f.entry(ndir, nname, dst)
	if err != nil {
		return err
	}
	// Both files' change times move: hold both, in inode order (the only
	// place two are held; all under the VFS's namespace lock).
	first, second := s, t
	if src > dst {
		first, second = t, s
	}
	return first.around("rename", func() error {
		return second.around("rename", func() error { return unix.Renameat2(od, oname, nd, nname, uint(flags)) })
	})
}

// Setattr changes inode ino's attributes: the permission bits unless
// mode < 0, the owner and group as fchown (-1 leaves one alone), and the
// times as utimensat (UTIME_OMIT leaves one alone; nil: neither). The
// owner goes first: chown clears set-user-ID bits, which a mode set in the
// same call then restores, as the VFS does. A symlink's mode cannot
// change (EOPNOTSUPP, as lchmod on Linux).
func (f *FS) Setattr(ino uint64, mode int64, uid, gid int, times *[2]unix.Timespec) error {
	n, err := f.get(ino)
	if err != nil {
		return err
	}
	if mode >= 0 && n.file == nil && !n.dir && !n.special {
		return syscall.EOPNOTSUPP
	}
	return n.around("setattr", func() error {
		return n.withFd(func(fd int) error {
			if uid != -1 || gid != -1 {
				if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
					return err
				}
			}
			switch {
			case mode >= 0 && n.special:
				if err := n.chmod(uint32(mode)); err != nil {
					return err
				}
			case mode >= 0:
				if err := unix.Fchmod(fd, uint32(mode)); err != nil {
					return err
				}
			}
			if times != nil {
				return unix.UtimesNanoAt(fd, "", times[:], unix.AT_EMPTY_PATH)
			}
			return nil
		})
	})
}

// Resize sets regular file ino's backing file size (ftruncate): the VFS
// grows a file this way; it shrinks one through the block map's Truncate.
func (f *FS) Resize(ino uint64, size int64) error {
	n, err := f.get(ino)
	if err != nil {
		return err
	}
	if n.file == nil {
		return syscall.EINVAL
	}
	return n.file.resize(size)
}

// Changed reports whether regular file ino changed from outside since the
// engine last changed or revalidated it (File.Changed).
func (f *FS) Changed(ino uint64) bool {
	n, err := f.get(ino)
	return err == nil && n.file != nil && n.file.Changed()
}

// Revalidated takes regular file ino as it now is for what the engine
// knows, and returns its attributes (File.Revalidated).
func (f *FS) Revalidated(ino uint64) (unix.Stat_t, error) {
	n, err := f.get(ino)
	if err != nil {
		return unix.Stat_t{}, err
	}
	if n.file == nil {
		return unix.Stat_t{}, syscall.EINVAL
	}
	return n.file.Revalidated()
}

// Forget drops inode ino, gone from the VFS: a directory's or symlink's
// descriptor is closed; a regular file's is closed by its block map's
// Release, when its pages are gone.
func (f *FS) Forget(ino uint64) {
	f.mu.Lock()
	n := f.nodes[ino]
	delete(f.nodes, ino)
	f.mu.Unlock()
	if n != nil && n.fd >= 0 && n.fd != f.rootFd {
		unix.Close(n.fd)
	}
}

// Sync makes the backing filesystem's data durable (syncfs).
func (f *FS) Sync() error {
	if err := unix.Syncfs(f.rootFd); err != nil {
		return fmt.Errorf("passthrough: syncfs %s: %w", f.dir, err)
	}
	return nil
}

// Close closes every descriptor, which releases the backing directory for
// another Open. The VFS has written back every page.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return syscall.EINVAL
	}
	f.closed = true
	nodes := make([]*node, 0, len(f.nodes))
	for _, n := range f.nodes {
		nodes = append(nodes, n)
	}
	clear(f.nodes)
	f.mu.Unlock()
	var first error
	for _, n := range nodes {
		var err error
		switch {
		case n.file != nil:
			err = n.file.Release()
		case n.fd != f.rootFd:
			err = unix.Close(n.fd)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if err := unix.Close(f.rootFd); err != nil && first == nil {
		first = err
	}
	return first
}
