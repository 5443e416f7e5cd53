// Package holefs is a filesystem engine whose page cache stays coherent
// when blocks are removed from under it.
//
// It implements Linux's mapping->invalidate_lock protocol in userspace:
// reads, page faults, readahead and fadvise/madvise never expose data of
// punched or truncated blocks — of this file, or of another file that
// reused them — and writeback never writes through a stale block mapping,
// while reads of a file still run in parallel with its writers.
//
// An FS is used like the os package: OpenFile returns a *File with ReadAt,
// WriteAt, Seek (including SEEK_DATA and SEEK_HOLE), Truncate, Fallocate,
// Fadvise, Mmap and Sync; errors are *fs.PathError values wrapping the
// syscall.Errno Linux would return. *FS is also an io/fs.FS.
package holefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/blockmap/memfs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/pagecache"
	"github.com/holefs/holefs/vfs"
)

// LockMode selects how fill paths are serialized against block removal:
// LockInvalidate (the default), LockRWSem (XFS-style) or LockNone (no
// protection: reproduces the race; for tests and benchmarks only).
type LockMode = pagecache.LockMode

// The lock modes.
const (
	LockInvalidate = pagecache.LockInvalidate
	LockRWSem      = pagecache.LockRWSem
	LockNone       = pagecache.LockNone
)

// ParseLockMode parses "invalidate", "rwsem" or "none".
func ParseLockMode(s string) (LockMode, error) { return pagecache.ParseLockMode(s) }

// Backend names.
const (
	// BackendExtent is the ext4-like backend: extents on a block device,
	// unwritten extents, an allocator that reuses freed blocks at once.
	BackendExtent = "extentfs"
	// BackendMemory is the tmpfs-like backend: the page cache is the storage.
	BackendMemory = "memfs"
	// BackendPassthrough stores each file as a file of Options.BackingDir,
	// a directory of another filesystem, under the same name (cifs- and
	// ceph-like: the engine's page cache sits on top).
	BackendPassthrough = "passthrough"
	// BackendLog is the log-structured (f2fs-like) extentfs: every write
	// goes out of place to the log head and frees the block it replaces;
	// a background cleaner (and FS.Clean) compacts free space.
	BackendLog = "logfs"
	// BackendExt2 is the ext2-like backend: per-file block maps of direct
	// pointers and single-, double- and triple-indirect blocks stored on
	// the device, no unwritten extents and no fallocate (every mode is
	// EOPNOTSUPP, as on ext2); truncate is its one remover.
	BackendExt2 = "ext2"
)

// Options configure a filesystem.
type Options struct {
	// Backend is BackendExtent (default), BackendMemory, BackendLog,
	// BackendExt2, BackendPassthrough or BackendZonefs.
	Backend string
	// Zoned is the geometry and limits of BackendZonefs's in-memory zoned
	// device (a *blockdev.Zoned in Device, or an image, brings its own);
	// zeros: 1 MiB zones over SizeBytes, the first four conventional.
	Zoned blockdev.ZonedOptions
	// ZoneErrors is BackendZonefs's policy for I/O errors, zonefs's
	// errors= mount option: "remount-ro" (the default), "zone-ro",
	// "zone-offline" or "repair".
	ZoneErrors string
	// ZoneExplicitOpen is BackendZonefs's explicit-open mount option:
	// opening a sequential file for writing opens its zone explicitly,
	// and is EBUSY past the device's max-open limit (blockdev.ZonedOptions
	// MaxOpen) instead of a write failing later (ETOOMANYREFS).
	ZoneExplicitOpen bool
	// SizeBytes is the device size (extentfs, logfs, ext2, zonefs) or the
	// capacity (memfs);
	// default 1 GiB. An in-memory device costs memory only where written.
	SizeBytes int64
	// Device, if set, is the block device of an extentfs or ext2 filesystem (for
	// example a blockdev.Faulty injecting latency and errors, or a
	// blockdev.File), or the *blockdev.Zoned of a BackendZonefs filesystem
	// (memory- or file-backed); SizeBytes is then ignored. The FS closes
	// it.
	Device blockdev.Device
	// Latency and Jitter delay every device I/O of the default in-memory
	// device, to model a real disk.
	Latency, Jitter time.Duration
	// CacheBytes bounds the page cache; default 64 MiB.
	CacheBytes int64
	// LockMode selects the fill-path protection; default LockInvalidate.
	LockMode LockMode
	// FileInvalidateLock makes each file's invalidate lock one lock for the
	// whole file, as Linux's mapping->invalidate_lock, instead of a range
	// lock: a punch, zero range, collapse or truncate then stalls every
	// cache miss in the file, not only those of the range it removes.
	// For comparison (holefs bench range-punch).
	FileInvalidateLock bool
	// ReadaheadBytes is the largest readahead window; default 128 KiB.
	ReadaheadBytes int64
	// Hooks stop operations at chosen points, for tests that force an
	// interleaving. Nil in normal use.
	Hooks *Hooks
	// CommitInterval is how often an image's changes are committed in
	// the background while any are pending; default 5 s, negative: only
	// on Sync, fsync, Close and when many changes accumulate.
	CommitInterval time.Duration
	// NoDiscard keeps an image's freed blocks allocated in its data file.
	// By default, once the commit that freed them is durable, they are
	// punched out of it (fallocate PUNCH_HOLE, like a discard on an SSD),
	// so the space they took goes back to the filesystem holding the
	// image; FS.Trim does the same for every free block at once.
	NoDiscard bool
	// UnsafeLockNone allows LockNone on an image or a passthrough backing
	// directory. Without it Open refuses: that mode corrupts files on
	// purpose.
	UnsafeLockNone bool
	// WrapDevice, if set, wraps an image's data device, for tests that
	// record its writes or inject faults (see blockdev.Faulty); on
	// BackendPassthrough, each file's devices (its backing file).
	WrapDevice func(blockdev.Device) blockdev.Device
	// BackingDir is the directory BackendPassthrough keeps its files in:
	// Open loads the tree it holds, and every change made through the FS
	// is made there too, under the same names. While the FS is open, a
	// second FS cannot open it (EBUSY); other programs may change its
	// files, which the FS notices (see RevalidateInterval).
	BackingDir string
	// RevalidateInterval is how often BackendPassthrough checks its open
	// files for changes made from outside (by their size, modification
	// and change times) and drops the cached pages of changed ones; each
	// open checks too. Default 1 s; negative: only on open. Dirty pages of
	// a file changed from outside are dropped, not written over the
	// change, and the next fsync of every handle reports ESTALE.
	RevalidateInterval time.Duration
	// DAX puts every regular file in DAX mode (Linux's -o dax): reads,
	// writes and mapped views address the device's memory directly, with
	// no page cache pages, and fsync is the device's flush. It needs
	// BackendExtent or BackendExt2 (Linux's ext2 -o dax) on a device whose memory can be addressed
	// (blockdev.DAXDevice: the default in-memory device, with no Latency
	// or Jitter, or a Device that is one); Open refuses anything else with
	// EINVAL. Clone and dedupe of DAX files fail with EINVAL, and
	// copy_file_range copies. The FUSE mount cannot pass DAX on to the
	// kernel (FUSE DAX is virtiofs's only).
	DAX bool
	// AcceptRollback opens an image whose metadata fell back to an older
	// commit than its last (a damaged meta.db page; see meta.Rollback):
	// what was committed since, fsync'd files among it, is lost for good.
	// Without it Open refuses such an image (EUCLEAN, naming the commits);
	// holefs fsck --repair --accept-rollback is the command-line way.
	AcceptRollback bool
}

// Hooks are test hooks. Each runs on the goroutine of the operation.
type Hooks struct {
	// BeforeFill runs on every fill path after its end-of-file checks and
	// before it creates the file pages [page, page+count) (a fault already
	// holds its fill lock there).
	BeforeFill func(ino uint64, page, count int64)
	// AfterMapRead runs on every fill path (read, readahead, fadvise and
	// madvise WILLNEED, fault) after the block lookup of the file pages
	// [page, page+count) and before their data is read.
	AfterMapRead func(ino uint64, page, count int64)
	// AfterTruncatePages runs in every block-removing operation ("punch",
	// "zero", "collapse", "insert", "truncate", "evict", and "clone" and
	// "dedupe" on the destination) after the page cache of its range is
	// truncated and before its blocks are removed; and in a logfs
	// cleaner's relocation ("relocate") before it moves blocks.
	AfterTruncatePages func(ino uint64, op string)
	// BeforeCommit and AfterCommit run around the metadata transaction of
	// each commit of an image (after its data flush), with no engine lock
	// held but the commit's own: a crash test copies meta.db there. On
	// an image with a log (meta.IncompatWAL) they run around its commit
	// point: once the log record is written, and once it is flushed.
	BeforeCommit, AfterCommit func()
	// BeforeCheckpoint and AfterCheckpoint run around each meta.db
	// transaction of an image with a log: a crash test copies meta.db
	// there.
	BeforeCheckpoint, AfterCheckpoint func()
}

// FS is a filesystem. It is safe for concurrent use.
type FS struct {
	v     *vfs.FS
	name  string                // what error messages call the filesystem
	img   *meta.Image           // nil for an in-memory filesystem
	sums  *blockdev.Checksummed // an image with data checksums; nil otherwise
	store *extentfs.FS          // an image's block maps; nil otherwise
	data  *blockdev.File        // an image's data file; nil otherwise
}

// Open opens a filesystem. The path "" makes a new in-memory filesystem;
// any other path is an image made by Mkfs (a directory), opened for
// reading and writing with its metadata locked against other users (EBUSY).
// Changes to an image are committed in batches: by File.Sync (fsync) and
// FS.Sync, every Options.CommitInterval, and when enough accumulate; Close
// commits the rest.
func Open(imagePath string, opts Options) (*FS, error) {
	if opts.SizeBytes < 0 || opts.CacheBytes < 0 || opts.ReadaheadBytes < 0 {
		return nil, &fs.PathError{Op: "open", Path: nameOf(imagePath), Err: fmt.Errorf("negative size in options: %w", syscall.EINVAL)}
	}
	if opts.DAX {
		if err := checkDAX(imagePath, opts); err != nil {
			return nil, &fs.PathError{Op: "open", Path: nameOf(imagePath), Err: err}
		}
	}
	if imagePath != "" {
		return openImage(imagePath, opts)
	}
	if opts.SizeBytes == 0 {
		opts.SizeBytes = 1 << 30
	}
	var backend vfs.Backend
	switch opts.Backend {
	case "", BackendExtent, BackendLog:
		dev := opts.Device
		if dev == nil {
			dev = withLatency(blockdev.NewMemory(opts.SizeBytes/blockdev.BlockSize), opts)
		}
		store := extentfs.New(dev.NumBlocks())
		if opts.Backend == BackendLog {
			store = extentfs.NewLog(dev.NumBlocks())
		}
		backend = vfs.Backend{Store: store, Device: dev}
	case BackendExt2:
		dev := opts.Device
		if dev == nil {
			dev = withLatency(blockdev.NewMemory(opts.SizeBytes/blockdev.BlockSize), opts)
		}
		store, err := ext2fs.New(dev)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: "(memory)", Err: err}
		}
		backend = vfs.Backend{Store: store, Device: dev}
	case BackendMemory:
		backend = vfs.Backend{Store: memfs.New(opts.SizeBytes / blockmap.PageSize), Memory: true}
	case BackendPassthrough:
		return openPassthrough(opts)
	case BackendZonefs:
		dev, ok := opts.Device.(*blockdev.Zoned)
		if !ok && opts.Device != nil {
			return nil, &fs.PathError{Op: "open", Path: "(memory)", Err: fmt.Errorf("the zonefs backend needs a *blockdev.Zoned device, not %T: %w", opts.Device, syscall.EINVAL)}
		}
		if dev == nil {
			var err error
			if dev, err = blockdev.NewZoned(defaultZoned(opts.Zoned, opts.SizeBytes)); err != nil {
				return nil, &fs.PathError{Op: "open", Path: "(memory)", Err: err}
			}
		}
		return openZonefs(dev, opts, "(memory)")
	default:
		return nil, &fs.PathError{Op: "open", Path: "(memory)",
			Err: fmt.Errorf("unknown backend %q (want %s, %s, %s, %s, %s or %s): %w", opts.Backend,
				BackendExtent, BackendMemory, BackendLog, BackendExt2, BackendPassthrough, BackendZonefs, syscall.EINVAL)}
	}
	if opts.DAX {
		backend.DAX = backend.Device.(blockdev.DAXDevice) // checkDAX made sure
	}
	copts, vhooks := engineOptions(opts)
	return &FS{v: vfs.New(backend, copts, vhooks), name: "(memory)"}, nil
}

// checkDAX reports why opts cannot have DAX, as an error wrapping EINVAL
// (Linux's mount -o dax on a device without DAX fails with EINVAL), or nil.
func checkDAX(imagePath string, opts Options) error {
	var why string
	switch {
	case imagePath != "":
		why = "an image's data is a file, not memory"
	case opts.Backend != "" && opts.Backend != BackendExtent && opts.Backend != BackendExt2:
		why = fmt.Sprintf("backend %s does not write blocks in place on a device (want %s or %s)", opts.Backend, BackendExtent, BackendExt2)
	case opts.Device != nil:
		if _, ok := opts.Device.(blockdev.DAXDevice); !ok {
			why = fmt.Sprintf("the device (%T) cannot expose its memory", opts.Device)
		}
	case opts.Latency > 0 || opts.Jitter > 0:
		why = "a device with latency injected cannot expose its memory"
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("DAX: %s: %w", why, syscall.EINVAL)
}

func nameOf(imagePath string) string {
	if imagePath == "" {
		return "(memory)"
	}
	return imagePath
}

// withLatency wraps a device in the latency the options ask for.
func withLatency(d blockdev.Device, opts Options) blockdev.Device {
	if opts.Latency > 0 || opts.Jitter > 0 {
		return blockdev.NewFaulty(d, blockdev.FaultOptions{Latency: opts.Latency, Jitter: opts.Jitter})
	}
	return d
}

// engineOptions returns the page cache options and VFS hooks of opts.
func engineOptions(opts Options) (pagecache.Options, *vfs.Hooks) {
	copts := pagecache.Options{CacheBytes: opts.CacheBytes, LockMode: opts.LockMode, FileInvalidateLock: opts.FileInvalidateLock,
		ReadaheadPages: int(opts.ReadaheadBytes / blockmap.PageSize)}
	var vhooks *vfs.Hooks
	if h := opts.Hooks; h != nil {
		ph := &pagecache.Hooks{}
		if h.AfterMapRead != nil {
			ph.AfterMapRead = func(m *pagecache.Mapping, e blockmap.Extent) { h.AfterMapRead(uint64(m.Key()), e.Page, e.Count) }
		}
		if h.BeforeFill != nil {
			ph.BeforeFill = func(m *pagecache.Mapping, index, n int64) { h.BeforeFill(uint64(m.Key()), index, n) }
		}
		copts.Hooks = ph
		vhooks = &vfs.Hooks{AfterTruncatePages: h.AfterTruncatePages}
	}
	return copts, vhooks
}

// clean turns an os-style name ("/a/b", "a//b/") into the VFS's form: a
// path relative to the root. It does not clean "." and ".." lexically: the
// VFS's path walk resolves them as Linux does (".." after a symlink leads
// to the parent of the link's target; "a/." is not a name to create or
// remove).
//
// A name of PATH_MAX bytes or more is kept whole, for the VFS to refuse
// (ENAMETOOLONG): its leading slashes count, as Linux counts them.
func clean(name string) string {
	if len(name) >= syscall.PathMax {
		return name
	}
	return strings.TrimLeft(name, "/")
}

func pathErr(op, name string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// OpenFile opens the named file with os.OpenFile flags (O_RDONLY,
// O_WRONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND, and
// syscall.O_NOFOLLOW, O_DIRECTORY, and O_DIRECT for direct I/O) and, when
// creating, perm. The name resolves as open(2)'s does: O_CREATE through a
// dangling symlink creates its target, O_NOFOLLOW on a symlink is ELOOP.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	in, _, err := f.v.OpenPath(clean(name), flag, uint32(perm.Perm()))
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	h, err := f.v.Open(in, flag&^(syscall.O_CREAT|syscall.O_EXCL))
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &File{fs: f, h: h, name: name, append: flag&syscall.O_APPEND != 0}, nil
}

// Create creates or truncates the named file for reading and writing,
// like os.Create.
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC, 0o666)
}

// Open opens the named file read-only, implementing io/fs.FS: name must
// be a valid io/fs path.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return f.OpenFile(name, syscall.O_RDONLY, 0)
}

// Mkdir creates a directory.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	return pathErr("mkdir", name, f.v.Mkdir(clean(name), uint32(perm.Perm())))
}

// Remove removes a file or an empty directory, like os.Remove. An open
// file lives on until its last handle and view are gone.
func (f *FS) Remove(name string) error {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return pathErr("remove", name, err)
	}
	if in.IsDir() {
		return pathErr("remove", name, f.v.Rmdir(clean(name)))
	}
	return pathErr("remove", name, f.v.Unlink(clean(name)))
}

// Rename renames (moves) oldName to newName, replacing a file there.
func (f *FS) Rename(oldName, newName string) error {
	return f.Rename2(oldName, newName, 0)
}

// Rename2 is renameat2(2): flags is 0, RenameNoReplace, RenameExchange or
// RenameWhiteout (with or without RenameNoReplace), which leaves a
// whiteout at oldName: a character device 0:0 with mode 0, as overlayfs
// uses; not on a passthrough backend (EINVAL).
func (f *FS) Rename2(oldName, newName string, flags uint32) error {
	if err := f.v.Rename(clean(oldName), clean(newName), flags); err != nil {
		return &fs.PathError{Op: "rename", Path: oldName + " -> " + newName, Err: err}
	}
	return nil
}

// Rename flags.
const (
	RenameNoReplace = vfs.RenameNoReplace
	RenameExchange  = vfs.RenameExchange
	RenameWhiteout  = vfs.RenameWhiteout
)

// Link creates newName as a hard link to oldName.
func (f *FS) Link(oldName, newName string) error {
	if err := f.v.Link(clean(oldName), clean(newName)); err != nil {
		return &fs.PathError{Op: "link", Path: oldName + " -> " + newName, Err: err}
	}
	return nil
}

// Symlink creates newName as a symbolic link to target.
func (f *FS) Symlink(target, newName string) error {
	return pathErr("symlink", newName, f.v.Symlink(target, clean(newName)))
}

// Mknod creates a regular file, FIFO, socket, or character or block
// device at name, as mknod(2): mode is the type (syscall.S_IFREG or 0,
// S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK) and the permission bits, set as
// given; dev is a device's number (unix.Mkdev), kept for devices only, as
// Linux. A directory type is EPERM and any other EINVAL; an existing name
// is EEXIST. Stat shows the type (fs.ModeNamedPipe, ModeSocket, ModeDevice
// with ModeCharDevice) and Attr.Rdev; chmod, chown, Chtimes, Link, Rename
// and Remove work on special files as on any other. They hold no data
// here, so OpenFile cannot open them: a FIFO is EOPNOTSUPP (its I/O needs
// the kernel: mount the FS with package fuse, and two processes share a
// pipe through it); a socket or device is ENXIO, as open(2) of a socket,
// or of a device with no driver, is on Linux. An image made before holefs
// kept special files refuses all but regular files (EOPNOTSUPP).
func (f *FS) Mknod(name string, mode uint32, dev uint64) error {
	return pathErr("mknod", name, f.v.Mknod(clean(name), mode, dev))
}

// Readlink returns the target of a symbolic link.
func (f *FS) Readlink(name string) (string, error) {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	t, err := in.Readlink()
	return t, pathErr("readlink", name, err)
}

// Stat returns a FileInfo describing the named file, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return newFileInfo(path.Base(clean(name)), in.Stat()), nil
}

// Lstat is Stat without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.v.Lookup(clean(name), false)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return newFileInfo(path.Base(clean(name)), in.Stat()), nil
}

// ReadDir lists a directory sorted by name (io/fs.ReadDirFS).
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := f.v.ReadDir(clean(name))
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return f.dirEntries(clean(name), ents), nil
}

// ReadFile reads a whole file (io/fs.ReadFileFS); name must be a valid
// io/fs path.
func (f *FS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	file, err := f.OpenFile(name, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(file)
}

// Chmod changes the permission bits of the named file, following symlinks.
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return pathErr("chmod", name, err)
	}
	return pathErr("chmod", name, in.Setattr(vfs.SetAttr{Valid: vfs.SetMode, Mode: uint32(mode.Perm())}))
}

// Chtimes sets the access and modification times of the named file,
// following symlinks, like os.Chtimes: a zero time.Time leaves that time
// unchanged. holefs never updates the access time itself (it behaves as
// if mounted noatime), so atime is what Chtimes, or creation, last set.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	in, err := f.v.Lookup(clean(name), true)
	if err != nil {
		return pathErr("chtimes", name, err)
	}
	a := vfs.SetAttr{Atime: atime, Mtime: mtime}
	if !atime.IsZero() {
		a.Valid |= vfs.SetAtime
	}
	if !mtime.IsZero() {
		a.Valid |= vfs.SetMtime
	}
	return pathErr("chtimes", name, in.Setattr(a))
}

// Sync writes back every dirty page and flushes the device.
func (f *FS) Sync() error { return pathErr("sync", f.name, f.v.Sync()) }

// Close writes back everything, commits it to the image, if any, and
// releases the filesystem.
func (f *FS) Close() error {
	err := f.v.Close()
	if f.img != nil {
		if cerr := f.img.Close(); err == nil {
			err = cerr
		}
	}
	return pathErr("close", f.name, err)
}

// Statfs returns the block size and the total and free blocks.
func (f *FS) Statfs() (bsize, total, free int64) { return f.v.Statfs() }

// Clean runs one pass of a log-structured filesystem's cleaner (BackendLog;
// one also runs in the background while less than a quarter of the space
// is free): the live blocks of the emptiest 1 MiB segment move to the log
// head. It returns the pages moved; other backends return EOPNOTSUPP.
func (f *FS) Clean() (int64, error) {
	n, err := f.v.Clean()
	return n, pathErr("clean", f.name, err)
}

// DataChecksumErrors returns how many reads failed their data checksum
// (EIO) since Open, on an image made with MkfsOptions.DataChecksums.
func (f *FS) DataChecksumErrors() int64 {
	if f.sums == nil {
		return 0
	}
	return f.sums.Mismatches()
}

// CacheStats returns the page cache's counters.
func (f *FS) CacheStats() pagecache.Stats { return f.v.Cache().Stats() }

// LockModes lists every lock mode, for comparisons.
var LockModes = pagecache.LockModes
