package vfs

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
	"github.com/holefs/holefs/pagecache"
)

// Backing mirrors the filesystem in a directory of another filesystem,
// for a backend whose files are files there (passthrough). Its methods
// speak the system calls' language, not the VFS's types, so a backend
// implements it from below.
//
// Forwarding. The namespace and attribute operations call it after their
// own checks and before they change anything in memory, with the
// namespace lock held, so that an error of the other filesystem (EACCES,
// ENOSPC, EXDEV, EEXIST for an entry made there from outside) fails the
// operation with nothing changed, and both trees change in one order.
// Inodes are named by number; directories by the inode number of the
// directory.
//
// Coherence. Its files can change behind the engine's back. Open and a
// periodic pass over open files ask Changed; a changed file's page cache
// is dropped as a block-removing operation drops it (inode lock, then
// invalidate lock exclusive, TruncateRange), and Revalidated then gives
// the file's new size and times. Dirty pages dropped that way are lost
// (the backend refuses to write them over the change); the next fsync of
// every handle reports it with ESTALE.
type Backing interface {
	// Load reports the backing tree: the root (dir 0, name "", inode 1)
	// and then every entry, each directory before its entries; the names
	// of one inode share its number. The Store's NewFile returns a
	// reported regular file's block map.
	Load(add func(dir uint64, name string, ino uint64, st *unix.Stat_t, target string) error) error
	// Create makes the entry name in directory dir for the new inode ino
	// of mode (type and permission bits): a regular file (the Store's
	// NewFile(ino) then returns its block map), a directory, a symlink
	// to target, or a FIFO, socket, or character or block device
	// numbered rdev (mknod(2); the other filesystem's errors stand, as
	// EPERM for a device made without CAP_MKNOD).
	Create(dir uint64, name string, ino uint64, mode uint32, rdev uint64, target string) error
	// Link makes name in directory dir another name of inode ino.
	Link(ino, dir uint64, name string) error
	// Remove removes the entry name of directory dir, which names inode
	// ino (unlink, or rmdir of a directory).
	Remove(dir uint64, name string, ino uint64) error
	// Rename is renameat2(2) of oname in odir to nname in ndir with the
	// Rename* flags; src is oname's inode, dst the inode nname names (0:
	// none).
	Rename(odir uint64, oname string, ndir uint64, nname string, flags uint32, src, dst uint64) error
	// Setattr sets the permission bits unless mode < 0, the owner as
	// fchown (-1: unchanged) and the times as utimensat (nil: neither).
	Setattr(ino uint64, mode int64, uid, gid int, times *[2]unix.Timespec) error
	// Resize grows a regular file (truncate up, fallocate past EOF);
	// shrinking goes through the block map's Truncate.
	Resize(ino uint64, size int64) error
	// Changed reports whether regular file ino changed from outside since
	// the engine last changed it or Revalidated returned.
	Changed(ino uint64) bool
	// Revalidated takes regular file ino as it is now for what the engine
	// knows of it and returns its attributes; the caller has dropped the
	// file's page cache.
	Revalidated(ino uint64) (unix.Stat_t, error)
	// Forget releases what the backend holds of an inode gone from the
	// VFS (a regular file's block map is released by Release).
	Forget(ino uint64)
	// Unsupported returns the fallocate modes (FALLOC_FL_* bits) the
	// other filesystem refuses; Fallocate refuses them with EOPNOTSUPP
	// before it changes anything.
	Unsupported() uint32
	// Sync makes everything written to the other filesystem durable.
	Sync() error
	// Close releases the backend, after every page is written back.
	Close() error
}

// Load returns the filesystem that backend.Backing holds, with its page
// cache on top: it makes an inode for every file, directory, symlink and
// special file the backing reports, and starts a goroutine that
// revalidates the open files every interval (none if interval <= 0; open
// revalidates anyway).
func Load(backend Backend, cacheOpts pagecache.Options, hooks *Hooks, interval time.Duration) (*FS, error) {
	b := backend.Backing
	f := &FS{cache: pagecache.NewCache(cacheOpts), backend: backend, hooks: hooks,
		inodes: map[uint64]*Inode{}, nextIno: 1}
	f.nsMu.Init(lockcheck.RankNamespace, 0)
	f.nsMu.Lock()
	err := b.Load(func(dir uint64, name string, ino uint64, st *unix.Stat_t, target string) error {
		in := f.inodes[ino]
		if in == nil {
			in = &Inode{fs: f, ino: ino, typ: st.Mode & syscall.S_IFMT, perm: st.Mode &^ syscall.S_IFMT,
				uid: st.Uid, gid: st.Gid, target: target, rdev: deviceNumber(st.Mode, st.Rdev)}
			in.atime.Store(st.Atim.Nano())
			in.mtime.Store(st.Mtim.Nano())
			in.ctime.Store(st.Ctim.Nano())
			f.initInode(in, nil)
			if in.mapping != nil {
				in.mapping.SetSize(st.Size)
			}
			f.nextIno = max(f.nextIno, ino+1)
		}
		if dir == 0 {
			f.root, in.parent, in.nlink = in, in, 2
			return nil
		}
		parent := f.inodes[dir]
		if parent == nil || !parent.IsDir() || in == f.root {
			return fmt.Errorf("vfs: load: entry %q of inode %d: %w", name, dir, syscall.EUCLEAN)
		}
		parent.entries[name] = in
		in.nlink++
		if in.IsDir() {
			in.parent = parent
			in.nlink++
			parent.nlink++
		}
		return nil
	})
	if err == nil && f.root == nil {
		err = fmt.Errorf("vfs: load: no root directory: %w", syscall.EUCLEAN)
	}
	f.nsMu.Unlock()
	if err != nil {
		f.cache.Close()
		return nil, err
	}
	if interval > 0 {
		f.reval = newRevalidator(f, interval)
	}
	return f, nil
}

// The forwarding helpers below do nothing without a Backing. The caller
// holds nsMu.

// fwdCreate forwards the creation of name in dir for the inode newInode
// makes next.
func (f *FS) fwdCreate(dir *Inode, name string, mode uint32, rdev uint64, target string) error {
	if err := f.fixedErr(mode); err != nil {
		return err
	}
	if b := f.backend.Backing; b != nil {
		return b.Create(dir.ino, name, f.nextIno, mode, rdev, target)
	}
	return nil
}

func (f *FS) fwdLink(in, dir *Inode, name string) error {
	if err := f.fixedErr(0); err != nil {
		return err
	}
	if b := f.backend.Backing; b != nil {
		return b.Link(in.ino, dir.ino, name)
	}
	return nil
}

func (f *FS) fwdRemove(dir *Inode, name string) error {
	if err := f.fixedErr(0); err != nil {
		return err
	}
	if b := f.backend.Backing; b != nil {
		return b.Remove(dir.ino, name, dir.entries[name].ino)
	}
	return nil
}

// fwdRename forwards a rename of src, replacing dst if not nil.
func (f *FS) fwdRename(odir *Inode, oname string, ndir *Inode, nname string, flags uint32, src, dst *Inode) error {
	if err := f.fixedErr(0); err != nil {
		return err
	}
	b := f.backend.Backing
	if b == nil {
		return nil
	}
	var d uint64
	if dst != nil {
		d = dst.ino
	}
	return b.Rename(odir.ino, oname, ndir.ino, nname, flags, src.ino, d)
}

// fwdSetattr forwards a Setattr. The caller holds nsMu; a change of the
// modification time has written back the file's dirty pages first
// (syncForTimes), whose writeback would move it again.
func (f *FS) fwdSetattr(in *Inode, a SetAttr) error {
	if err := in.zoneSetattr(a); err != nil {
		return err
	}
	b := f.backend.Backing
	if b == nil {
		return nil
	}
	mode, uid, gid := int64(-1), -1, -1
	if a.Valid&SetMode != 0 {
		mode = int64(a.Mode & 0o7777)
	}
	if a.Valid&SetUid != 0 {
		uid = int(a.Uid)
	}
	if a.Valid&SetGid != 0 {
		gid = int(a.Gid)
	}
	if a.Valid&SetOwner != 0 {
		// The backing file's own chown to its owner takes its set-ID
		// bits as the engine takes the inode's.
		uid, gid = int(in.uid), int(in.gid)
	}
	var times *[2]unix.Timespec
	if a.Valid&(SetAtime|SetMtime) != 0 {
		times = &[2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if a.Valid&SetAtime != 0 {
			times[0] = unix.NsecToTimespec(a.Atime.UnixNano())
		}
		if a.Valid&SetMtime != 0 {
			times[1] = unix.NsecToTimespec(a.Mtime.UnixNano())
		}
	}
	return b.Setattr(in.ino, mode, uid, gid, times)
}

// syncForTimes writes back a backed regular file's dirty pages before its
// modification time is set: writing them later would move the time again.
// Writes after it are newer than the time set, and move it as they should.
func (in *Inode) syncForTimes(a SetAttr) error {
	if in.fs.backend.Backing == nil || in.mapping == nil || a.Valid&SetMtime == 0 {
		return nil
	}
	return errno(in.mapping.Sync(0, 0))
}

// fwdResize forwards a regular file's growth to size; the caller holds
// the inode lock exclusive.
func (in *Inode) fwdResize(size int64) error {
	if b := in.fs.backend.Backing; b != nil && size > in.mapping.Size() {
		return errno(b.Resize(in.ino, size))
	}
	return nil
}

// fwdForget tells the backing that an inode left the inode table.
func (f *FS) fwdForget(in *Inode) {
	if b := f.backend.Backing; b != nil {
		b.Forget(in.ino)
	}
}

// unsupported returns the fallocate modes the backend refuses.
func (f *FS) unsupported() uint32 {
	if b := f.backend.Backing; b != nil {
		return b.Unsupported()
	}
	return 0
}

// device returns the device holding the file's blocks for direct I/O: its
// own (blockmap.DeviceFile) or the filesystem's.
func (in *Inode) device() blockdev.Device {
	if d, ok := in.blocks.(blockmap.DeviceFile); ok {
		return d.Device()
	}
	return in.fs.backend.Device
}

// commit makes a regular file durable after its writeback (fsync): a file
// with a device of its own flushes that device, and anything else commits
// the filesystem.
func (in *Inode) commit() error {
	if d, ok := in.blocks.(blockmap.DeviceFile); ok {
		return errno(d.Device().Flush())
	}
	return in.fs.commit()
}

// mappingDevice returns the device a regular file's page cache reads and
// writes back through: its own (blockmap.DeviceFile), whose writes stop
// at the file size, or the filesystem's. The caller sets in.mapping
// before any I/O.
func (in *Inode) mappingDevice(blocks blockmap.File) blockdev.Device {
	if d, ok := blocks.(blockmap.DeviceFile); ok {
		return d.WritebackDevice(func() int64 { return in.mapping.Size() })
	}
	return in.fs.backend.Device
}

// revalidate checks a backed regular file for a change made from outside
// and, if there is one, drops its page cache — a block-removing operation
// for the cache, under the same locks: inode lock, invalidate lock
// exclusive, TruncateRange, then the new size. Dirty pages dropped are
// reported (ESTALE) to every handle's next fsync: the policy is that the
// outside change wins over local data not yet written back (see package
// passthrough).
func (in *Inode) revalidate() error {
	b := in.fs.backend.Backing
	if b == nil || in.mapping == nil || !b.Changed(in.ino) {
		return nil
	}
	m := in.mapping
	in.lock.Lock()
	inv := m.LockRemove(0, maxOffset)
	dropped, err := in.revalidateLocked(b)
	inv.Unlock()
	in.lock.Unlock()
	if dropped {
		in.fs.changed(in, false, 0, -1)
	}
	return err
}

// revalidateLocked is revalidate with the locks held; it reports whether
// it dropped the cache.
func (in *Inode) revalidateLocked(b Backing) (bool, error) {
	// Check again under the locks: another revalidation (an open, the
	// periodic pass) may have handled the change since, and the pages
	// dirtied after it are not stale.
	if in.evicted || !b.Changed(in.ino) {
		return false, nil
	}
	m := in.mapping
	dirty := m.NrDirty() > 0
	if err := m.TruncateRange(0, maxOffset); err != nil {
		return true, errno(err)
	}
	// Only now, with no page left to write back, may the change become
	// what the engine knows: writeback checks against it.
	st, err := b.Revalidated(in.ino)
	if err != nil {
		return true, errno(err)
	}
	if dirty {
		m.SetError(syscall.ESTALE)
	}
	in.setSize(st.Size)
	in.mtime.Store(st.Mtim.Nano())
	in.ctime.Store(st.Ctim.Nano())
	return true, nil
}

// revalidator revalidates the open files periodically.
type revalidator struct {
	stop chan struct{}
	done sync.WaitGroup
}

func newRevalidator(f *FS, interval time.Duration) *revalidator {
	r := &revalidator{stop: make(chan struct{})}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			f.nsMu.RLock()
			var open []*Inode
			for _, in := range f.inodes {
				if in.mapping != nil && in.opens > 0 {
					open = append(open, in)
				}
			}
			f.nsMu.RUnlock()
			for _, in := range open {
				// An error (the backing file unreadable) is the next
				// open's to report; the pass goes on.
				_ = in.revalidate()
			}
		}
	}()
	return r
}

// close stops the revalidation and waits for a pass in progress.
func (r *revalidator) close() {
	if r != nil {
		close(r.stop)
		r.done.Wait()
	}
}
