package fuse

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/vfs"
)

const blockSize = 4096

// CacheMode selects how the kernel caches file data (see the package
// documentation).
type CacheMode uint8

// The cache modes.
const (
	// CacheWriteback keeps file data in the kernel's page cache for reads
	// and writes (FOPEN_KEEP_CACHE and the FUSE writeback cache): hits and
	// buffered writes never reach the server. The kernel owns a file's
	// size and modification time while it is cached.
	CacheWriteback CacheMode = iota
	// CacheWritethrough keeps read data in the kernel's page cache but
	// sends every write to the server at once.
	CacheWritethrough
	// CacheDirect bypasses the kernel's page cache (FOPEN_DIRECT_IO): every
	// read and write is a request served from the engine's cache. Shared
	// mmap still works (FUSE_DIRECT_IO_ALLOW_MMAP, Linux 6.6 and later),
	// through the kernel's page cache.
	CacheDirect
)

var cacheModeNames = [...]string{CacheWriteback: "writeback", CacheWritethrough: "writethrough", CacheDirect: "direct"}

// String returns the mode's name, as ParseCacheMode takes it.
func (m CacheMode) String() string {
	if int(m) < len(cacheModeNames) {
		return cacheModeNames[m]
	}
	return fmt.Sprintf("CacheMode(%d)", uint8(m))
}

// ParseCacheMode parses "writeback", "writethrough" or "direct".
func ParseCacheMode(s string) (CacheMode, error) {
	for i, n := range cacheModeNames {
		if n == s {
			return CacheMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown cache mode %q (want writeback, writethrough or direct)", s)
}

// Options configure a mount.
type Options struct {
	// Cache is the kernel caching mode; default CacheWriteback.
	Cache CacheMode
	// Timeout is how long the kernel caches names, failed lookups and
	// attributes; default 1 s. It bounds how long a namespace or
	// attribute change made through the library, which the mount is not
	// told about, stays invisible through the mount.
	Timeout time.Duration
	// FsName is the source /proc/mounts shows; default "holefs".
	FsName string
	// AllowOther lets users other than the mounter in (the kernel still
	// checks permissions: default_permissions).
	AllowOther bool
	// MaxDirtyRatio, if not 0, is the percentage of the kernel's dirty page
	// limit that this mount's files may hold dirty in the writeback cache
	// (the max_ratio of the mount's backing device info). The kernel gives
	// a FUSE mount 1%, lest an unprivileged server hold the machine's
	// memory hostage; writers then wait for writeback long before the
	// cache is full. Setting it needs root.
	MaxDirtyRatio int
	// Debug logs every request.
	Debug bool
	// Transport is how requests reach the server; default TransportAuto.
	Transport Transport
}

// Server is a mounted holefs filesystem.
type Server struct {
	v          *vfs.FS
	srv        atomic.Value  // inodeNotifier: the transport, set once mounted; read by notify
	ring       *ringServer   // the io_uring transport, or nil; immutable
	transport  Transport     // the transport in use (uring or dev); immutable
	mountpoint string        // absolute; immutable
	opts       Options       // immutable
	done       chan struct{} // closed when the server has stopped

	notifies, notifyMisses, notifyFails atomic.Int64
	// attrs queues inodes whose attributes the kernel must fetch again
	// once the request at hand is answered (see refreshAttrs).
	attrs chan uint64

	errMu sync.Mutex
	errs  map[errKey]int64 // +checklocks:errMu
}

// Mount mounts fsys on the directory mountpoint and serves it until it is
// unmounted (Unmount, Detach, umount(8) or holefs umount). The caller
// keeps fsys and closes it after Wait returns. An FS can be mounted once
// at a time (EBUSY otherwise).
//
// As root, Mount calls mount(2) itself; otherwise it needs fusermount3
// (or fusermount), which go-fuse runs when the direct mount is refused.
func Mount(mountpoint string, fsys *holefs.FS, opts Options) (*Server, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.FsName == "" {
		opts.FsName = "holefs"
	}
	v := fsys.VFS()
	if v.Root().Ino() != gofuse.FUSE_ROOT_ID {
		// The kernel names the root by node ID 1, and node IDs are inode
		// numbers here (see ExternalNodeID below).
		return nil, fmt.Errorf("mount %s: root inode is %d, not %d", mountpoint, v.Root().Ino(), gofuse.FUSE_ROOT_ID)
	}
	s := &Server{v: v, opts: opts, done: make(chan struct{}), errs: map[errKey]int64{}, attrs: make(chan uint64, 256)}
	// The hook goes in before the kernel can cache anything: notify does
	// nothing until srv is set, and nothing is served before that.
	if err := v.SetChangeHook(s.notify); err != nil {
		return nil, fmt.Errorf("mount %s: the filesystem is already mounted elsewhere: %w", mountpoint, err)
	}
	timeout := opts.Timeout
	// See killpriv.go for HANDLE_KILLPRIV_V2.
	extra := uint64(gofuse.CAP_ATOMIC_O_TRUNC | gofuse.CAP_HANDLE_KILLPRIV_V2)
	switch opts.Cache {
	case CacheWriteback:
		extra |= gofuse.CAP_WRITEBACK_CACHE
	case CacheDirect:
		extra |= gofuse.CAP_DIRECT_IO_ALLOW_MMAP
	}
	fo := &fs.Options{
		MountOptions: gofuse.MountOptions{
			FsName:      opts.FsName,
			Name:        "holefs",
			AllowOther:  opts.AllowOther,
			Options:     []string{"default_permissions"},
			DirectMount: true,
			MaxWrite:    1 << 20,
			// Writeback and readahead go out as background requests, at
			// most this many in flight (go-fuse's default is 12): room
			// for the writeback of several writers at once.
			MaxBackground: 64,
			// Every change not made through the mount is notified, to
			// the byte range: the kernel must not also drop whole files
			// when it sees a new mtime (FUSE_AUTO_INVAL_DATA).
			ExplicitDataCacheControl: true,
			ExtraCapabilities:        extra,
			Debug:                    opts.Debug,
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// Mode 0 means mode 0: the kernel checks permissions on them.
		NullPermissions: true,
		// Node IDs are inode numbers, which holefs never reuses within a
		// mount, so a change hook naming an inode names its node.
		ExternalNodeID: true,
		RootStableAttr: &fs.StableAttr{Ino: gofuse.FUSE_ROOT_ID},
	}
	root := &node{s: s, in: v.Root()}
	raw := &rawFS{RawFileSystem: fs.NewNodeFS(root, fo), s: s}
	tr, err := opts.Transport.resolve()
	if err == nil && tr == TransportURing && os.Geteuid() != 0 {
		err = fmt.Errorf("%w: it mounts with mount(2), which needs root", errNoURing)
		if opts.Transport == TransportAuto {
			tr, err = TransportDev, nil
		}
	}
	if err != nil {
		_ = v.SetChangeHook(nil)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	s.mountpoint = mountpointOf(mountpoint)
	var srv *gofuse.Server
	if tr == TransportURing {
		err = s.serveRing(raw, &fo.MountOptions)
	} else {
		srv, err = s.serveDev(raw, &fo.MountOptions)
	}
	if err != nil {
		_ = v.SetChangeHook(nil)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if srv != nil {
		err = srv.WaitMount()
	}
	if err == nil && opts.MaxDirtyRatio != 0 {
		err = setMaxDirtyRatio(s.mountpoint, opts.MaxDirtyRatio)
	}
	if err != nil {
		_ = Unmount(s.mountpoint, true)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			// The server may still use fsys: say so rather than hang.
			return nil, fmt.Errorf("mount %s: %w (and the server did not stop after unmounting)", mountpoint, err)
		}
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return s, nil
}

// serveDev mounts with go-fuse's server, which reads each request from
// /dev/fuse and writes each reply, and starts serving.
func (s *Server) serveDev(raw gofuse.RawFileSystem, mo *gofuse.MountOptions) (*gofuse.Server, error) {
	srv, err := gofuse.NewServer(raw, s.mountpoint, mo)
	if err != nil {
		return nil, err
	}
	s.start(TransportDev, srv, srv.Serve)
	return srv, nil
}

// serveRing mounts with the io_uring transport (uring.go). In auto mode
// a kernel that refuses the rings leaves the mount served through
// /dev/fuse by the same server.
func (s *Server) serveRing(raw gofuse.RawFileSystem, mo *gofuse.MountOptions) error {
	rs, err := mountRing(raw, s.mountpoint, mo, s.opts.Transport == TransportURing)
	if err != nil {
		return err
	}
	s.ring = rs
	tr := TransportDev
	if rs.rings {
		tr = TransportURing
	}
	s.start(tr, rs, rs.wait)
	return nil
}

// start serves the mount on transport tr, which sends the kernel n's
// notifications: serve returns when the mount is gone, and then the
// change hook goes and Wait returns.
func (s *Server) start(tr Transport, n inodeNotifier, serve func()) {
	s.transport = tr
	s.srv.Store(n)
	go func() {
		serve()
		_ = s.v.SetChangeHook(nil)
		close(s.done)
	}()
	go s.attrNotifier(n)
}

// inodeNotifier sends FUSE_NOTIFY_INVAL_INODE: go-fuse's server or the
// io_uring transport.
type inodeNotifier interface {
	InodeNotify(ino uint64, off, n int64) gofuse.Status
}

// setMaxDirtyRatio sets the max_ratio of the mount's backing device info,
// /sys/class/bdi/MAJOR:MINOR of its anonymous device.
func setMaxDirtyRatio(mountpoint string, ratio int) error {
	if ratio < 0 || ratio > 100 {
		return fmt.Errorf("dirty ratio %d%% out of range [0, 100]", ratio)
	}
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/max_ratio", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(ratio)), 0); err != nil {
		return fmt.Errorf("setting the dirty ratio: %w", err)
	}
	return nil
}

// mountpointOf returns the absolute form of a mount point, as go-fuse
// mounts it.
func mountpointOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}

// Mountpoint returns the absolute path the filesystem is mounted on.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Transport returns the transport serving the mount: TransportURing or
// TransportDev, never TransportAuto.
func (s *Server) Transport() Transport { return s.transport }

// CacheMode returns the mount's kernel caching mode.
func (s *Server) CacheMode() CacheMode { return s.opts.Cache }

// openFlags returns the FOPEN_* flags of an open reply in the mount's
// cache mode.
func (s *Server) openFlags(flags uint32) uint32 {
	if s.opts.Cache == CacheDirect {
		// The engine serializes writes to one file itself.
		return gofuse.FOPEN_DIRECT_IO | gofuse.FOPEN_PARALLEL_DIRECT_WRITES
	}
	// Pages cached by an earlier open stay valid: every change made
	// elsewhere is notified.
	return gofuse.FOPEN_KEEP_CACHE
}

// notify is the engine's change hook: it tells the kernel to drop what it
// caches of a range the engine changed for someone other than the kernel
// (the library, in this process). It runs after the engine dropped its
// locks, on the changing goroutine, and waits for the kernel: when the
// library call returns, the mount no longer shows the old data. That wait
// cannot deadlock: the kernel, to drop a page, waits at most for requests
// in flight on it, and their handlers need only engine locks, which
// nobody holding them waits for the kernel. Changes the kernel made
// through the mount are its own and need no notification (it truncates
// its page cache around FALLOCATE, COPY_FILE_RANGE and SETATTR itself).
func (s *Server) notify(c vfs.Change) {
	srv, _ := s.srv.Load().(inodeNotifier)
	if c.Frontend || srv == nil {
		return
	}
	off, n := c.Off, c.Len
	switch {
	case n == 0:
		off = -1 // attributes only
	case n < 0:
		n = 0 // to the end of the file
	}
	switch st := srv.InodeNotify(c.Ino, off, n); st {
	case gofuse.OK:
		s.notifies.Add(1)
	case gofuse.ENOENT:
		s.notifyMisses.Add(1) // the kernel does not have the inode: nothing cached
	default:
		s.notifyFails.Add(1)
	}
}

// refreshAttrs makes the kernel fetch an inode's attributes again, after
// the request being handled is answered. With the writeback cache the
// kernel keeps a file's attributes until they time out and only the size
// and times are its own: the block count it shows would stay what it was
// before its cached writes reached the engine. Handlers of FSYNC and
// FLUSH, which follow such writes, call this. It is asynchronous because
// a handler must not wait for a notification about its own inode.
func (s *Server) refreshAttrs(ino uint64) {
	if s.opts.Cache != CacheWriteback {
		return // the kernel drops its attributes after every write itself
	}
	select {
	case s.attrs <- ino:
	default: // full: the attribute timeout catches up
	}
}

// attrNotifier sends the notifications refreshAttrs queues until the
// server stops.
func (s *Server) attrNotifier(srv inodeNotifier) {
	for {
		select {
		case ino := <-s.attrs:
			srv.InodeNotify(ino, -1, 0)
		case <-s.done:
			return
		}
	}
}

// Wait blocks until the filesystem is unmounted and the server stopped.
func (s *Server) Wait() { <-s.done }

// Done returns a channel closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Unmount unmounts the filesystem and waits for the server to stop. It
// fails with EBUSY while files are open through the mount.
func (s *Server) Unmount() error {
	if err := Unmount(s.mountpoint, false); err != nil {
		select {
		case <-s.done:
			// Serving ended and the mount is gone already: a ring
			// failure aborted it (ringServer.abort).
			if errors.Is(err, unix.EINVAL) {
				return nil
			}
		default:
		}
		return err
	}
	s.Wait()
	return nil
}

// Detach detaches the mount (MNT_DETACH): the name disappears at once,
// and the server stops when the last file open through it is closed.
func (s *Server) Detach() error { return Unmount(s.mountpoint, true) }

// Unmount unmounts the FUSE filesystem mounted on mountpoint, lazily
// (MNT_DETACH) if lazy, with umount(2) or, where that is not permitted,
// with fusermount3 -u (fusermount -u).
func Unmount(mountpoint string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(mountpoint, flags)
	if err == nil || err != unix.EPERM {
		return pathErr("umount", mountpoint, err)
	}
	bin, lerr := fusermount()
	if lerr != nil {
		return pathErr("umount", mountpoint, err)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, cerr := exec.Command(bin, append(args, mountpoint)...).CombinedOutput()
	if cerr != nil {
		return fmt.Errorf("%s -u %s: %v: %s", bin, mountpoint, cerr, out)
	}
	return nil
}

// fusermount finds the fusermount helper, as go-fuse does.
func fusermount() (string, error) {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		return p, nil
	}
	return exec.LookPath("fusermount")
}

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

// errno turns an engine error into the errno a FUSE reply carries,
// counting failures per operation.
func (s *Server) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		e = syscall.EIO
	}
	s.errMu.Lock()
	s.errs[errKey{op, e}]++
	s.errMu.Unlock()
	return e
}
