package torture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// targetFS runs the torture with real system calls on files in a fresh
// directory (Config.Target): pread/pwrite, fallocate, ftruncate, fadvise,
// readahead, fsync, syncfs, copy_file_range, mmap(MAP_SHARED) with
// madvise and msync, and O_DIRECT through page-aligned buffers. It
// tortures whatever filesystem the directory is on: the holefs FUSE
// mount, or a kernel filesystem (tmpfs, ext4, xfs), which is correct, so
// any violation there is a bug of the torture itself.
//
// Mapped views and SIGBUS. The removers truncate and collapse files under
// the mapped views of the fault, madvise and mapwrite workers, exactly as
// they do on holefs, so a view may reach past EOF, where touching it
// raises SIGBUS. Coordinating removers with views (never shrinking a file
// under a live view) would take out the race between faults and
// truncation that the torture is for, so instead every access to mapped
// memory runs one block at a time in a function that turns the fault
// into a panic (debug.SetPanicOnFault, per goroutine, on only for the
// copy) and recovers it: the access returns EFAULT and the whole blocks
// copied before it, like holefs's MappedView past EOF. The runtime
// recovers such faults cleanly (the fault is in a memmove of the
// faulting goroutine, which holds no runtime lock), and the mapped
// memory is outside Go's heap, so neither the garbage collector nor the
// race detector touches it. A mapped write that faults may have stored
// part of its block before a truncation zapped the page, so the model
// takes its effect as uncertain, not void.
//
// Collapse and insert run alone. FALLOC_FL_COLLAPSE_RANGE and
// FALLOC_FL_INSERT_RANGE shift every block after their offset, and on
// Linux 6.18's ext4 (the filesystem of t.TempDir() here) a shift that
// overlaps other I/O on the file can leave stale blocks behind: a program
// with one thread doing pwrite, collapse and insert and checking every
// block after each, while other threads only read the file (pread,
// faults, readahead, fadvise, copy_file_range out of it) and fsync it,
// saw a pwrite past EOF after a few shifts expose, in the hole it opened,
// data those offsets held before an earlier shift instead of zeros (3
// times in 2.2 million of its operations; never in 0.9 million with the
// other threads idle). The torture's violations on ext4 had that shape:
// zeros, or data of a nearby block, where the model expects what a
// collapse or insert moved there, in 3 of 84 runs of 20 s (and in CI);
// without collapse and insert 0 of 40 runs, with them run alone 0 of 80.
// So on a target, collapse and insert take shift exclusively and every
// other call on a file or a view takes it shared: the model still checks
// what they move, the kernel just never runs them concurrently with other
// I/O. The in-process engine, which must keep them coherent, is tortured
// with the race as before.
type targetFS struct {
	dir   string // the run's own directory, removed by Close
	dirfd int    // for syncfs
	// sigbus counts mapped accesses that faulted (recovered as EFAULT).
	sigbus atomic.Int64
	// shift keeps collapse and insert apart from all other I/O (above).
	shift sync.RWMutex
	// waiting, if set (tests), is called when a call is about to wait
	// for shift.
	waiting func(shift bool)
}

// shifts reports whether an fallocate mode shifts blocks (collapse,
// insert), which runs alone on a target (see targetFS).
func shifts(mode uint32) bool {
	return mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0
}

// io takes the shift lock for one call: exclusive for a block shift,
// shared for everything else. It returns the unlock.
func (t *targetFS) io(shift bool) func() {
	if shift {
		if !t.shift.TryLock() {
			t.wait(shift)
			t.shift.Lock()
		}
		return t.shift.Unlock
	}
	if !t.shift.TryRLock() {
		t.wait(shift)
		t.shift.RLock()
	}
	return t.shift.RUnlock
}

func (t *targetFS) wait(shift bool) {
	if t.waiting != nil {
		t.waiting(shift)
	}
}

// eintr retries f while it fails with EINTR (a FUSE request interrupted
// by one of the Go runtime's signals).
func eintr(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// newTargetFS creates a fresh directory holefs-torture-<seed>-<pid> in
// parent (with a numeric suffix if it exists).
func newTargetFS(parent string, seed uint64) (*targetFS, error) {
	if err := checkTarget(parent); err != nil {
		return nil, err
	}
	base := filepath.Join(parent, fmt.Sprintf("holefs-torture-%d-%d", seed, os.Getpid()))
	dir := base
	for i := 1; ; i++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return nil, err
		}
		dir = fmt.Sprintf("%s.%d", base, i)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &targetFS{dir: dir, dirfd: fd}, nil
}

// checkTarget reports whether dir is a directory the torture can create
// files in.
func checkTarget(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	return nil
}

func (t *targetFS) path(name string) string { return filepath.Join(t.dir, name) }

func (t *targetFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	p := t.path(name)
	var fd int
	err := eintr(func() (err error) {
		fd, err = unix.Open(p, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return &targetFile{fs: t, fd: fd, name: p, direct: flag&syscall.O_DIRECT != 0}, nil
}

func (t *targetFS) Remove(name string) error { return os.Remove(t.path(name)) }

func (t *targetFS) Sync() error {
	defer t.io(false)()
	if err := eintr(func() error { return unix.Syncfs(t.dirfd) }); err != nil {
		return &os.PathError{Op: "syncfs", Path: t.dir, Err: err}
	}
	return nil
}

// Close removes the run's directory and everything in it.
func (t *targetFS) Close() error {
	err := unix.Close(t.dirfd)
	if rerr := os.RemoveAll(t.dir); err == nil {
		err = rerr
	}
	return err
}

// targetFile is an open file descriptor. O_DIRECT handles do their I/O
// through a page-aligned buffer of their own (anonymous mmap).
type targetFile struct {
	fs     *targetFS
	fd     int
	name   string
	direct bool

	mu     sync.Mutex // the bounce buffer
	bounce []byte     // +checklocks:mu
}

func (f *targetFile) err(op string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

// aligned returns a page-aligned buffer of at least n bytes (f.mu held).
func (f *targetFile) aligned(n int) ([]byte, error) {
	if len(f.bounce) < n {
		if f.bounce != nil {
			_ = unix.Munmap(f.bounce)
			f.bounce = nil
		}
		size := (n + BlockSize - 1) &^ (BlockSize - 1)
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, err
		}
		f.bounce = b
	}
	return f.bounce[:n], nil
}

func (f *targetFile) ReadAt(p []byte, off int64) (int, error) {
	defer f.fs.io(false)()
	buf := p
	if f.direct {
		f.mu.Lock()
		defer f.mu.Unlock()
		b, err := f.aligned(len(p))
		if err != nil {
			return 0, f.err("mmap", err)
		}
		buf = b
	}
	done := 0
	for done < len(buf) {
		var n int
		err := eintr(func() (err error) {
			n, err = unix.Pread(f.fd, buf[done:], off+int64(done))
			return err
		})
		if err != nil {
			copy(p, buf[:done])
			return done, f.err("pread", err)
		}
		if n == 0 {
			copy(p, buf[:done])
			return done, io.EOF
		}
		done += n
	}
	copy(p, buf)
	return done, nil
}

func (f *targetFile) WriteAt(p []byte, off int64) (int, error) {
	defer f.fs.io(false)()
	buf := p
	if f.direct {
		f.mu.Lock()
		defer f.mu.Unlock()
		b, err := f.aligned(len(p))
		if err != nil {
			return 0, f.err("mmap", err)
		}
		copy(b, p)
		buf = b
	}
	done := 0
	for done < len(buf) {
		var n int
		err := eintr(func() (err error) {
			n, err = unix.Pwrite(f.fd, buf[done:], off+int64(done))
			return err
		})
		if err != nil {
			return done, f.err("pwrite", err)
		}
		if n == 0 {
			return done, f.err("pwrite", io.ErrShortWrite)
		}
		done += n
	}
	return done, nil
}

func (f *targetFile) Truncate(size int64) error {
	defer f.fs.io(false)()
	return f.err("ftruncate", eintr(func() error { return unix.Ftruncate(f.fd, size) }))
}

func (f *targetFile) Fallocate(mode uint32, off, n int64) error {
	defer f.fs.io(shifts(mode))()
	return f.err("fallocate", eintr(func() error { return unix.Fallocate(f.fd, mode, off, n) }))
}

func (f *targetFile) Fadvise(off, n int64, advice int) error {
	defer f.fs.io(false)()
	return f.err("fadvise", eintr(func() error { return unix.Fadvise(f.fd, off, n, advice) }))
}

// Readahead is readahead(2), which x/sys/unix does not wrap (64-bit
// only: on 32-bit systems the offset takes two registers).
func (f *targetFile) Readahead(off, n int64) error {
	defer f.fs.io(false)()
	return f.err("readahead", eintr(func() error {
		_, _, e := unix.Syscall(unix.SYS_READAHEAD, uintptr(f.fd), uintptr(off), uintptr(n))
		if e != 0 {
			return e
		}
		return nil
	}))
}

func (f *targetFile) Sync() error {
	defer f.fs.io(false)()
	return f.err("fsync", eintr(func() error { return unix.Fsync(f.fd) }))
}

func (f *targetFile) Close() error {
	f.mu.Lock()
	if f.bounce != nil {
		_ = unix.Munmap(f.bounce)
		f.bounce = nil
	}
	f.mu.Unlock()
	return f.err("close", unix.Close(f.fd))
}

func (f *targetFile) CopyRange(dst file, srcOff, dstOff, n int64) (int64, error) {
	d, ok := dst.(*targetFile)
	if !ok {
		return 0, errCrossBackend
	}
	defer f.fs.io(false)()
	var done int64
	for done < n {
		var c int
		err := eintr(func() (err error) {
			c, err = unix.CopyFileRange(f.fd, &srcOff, d.fd, &dstOff, int(n-done), 0)
			return err
		})
		if err != nil {
			return done, f.err("copy_file_range", err)
		}
		if c == 0 {
			break // EOF of the source
		}
		done += int64(c)
	}
	return done, nil
}

func (f *targetFile) Mmap(off, n int64, writable bool) (mappedView, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	b, err := unix.Mmap(f.fd, off, int(n), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, f.err("mmap", err)
	}
	return &targetView{b: b, name: f.name, fs: f.fs}, nil
}

// targetView is a MAP_SHARED mapping. It is used by one goroutine.
type targetView struct {
	b    []byte
	name string
	fs   *targetFS // its sigbus count and shift lock
}

// faultCopy copies src to dst and reports whether it faulted (SIGBUS:
// mapped memory past EOF) instead; see targetFS.
func faultCopy(dst, src []byte) (faulted bool) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if re, ok := r.(interface{ Addr() uintptr }); ok {
				_ = re.Addr() // a memory fault at an address: SIGBUS past EOF
				faulted = true
				return
			}
			panic(r)
		}
	}()
	copy(dst, src)
	return false
}

// access copies between p and the view at off one block at a time; it
// stops at the first block that faults and returns EFAULT.
func (v *targetView) access(p []byte, off int64, write bool) (int, error) {
	if off < 0 || off > int64(len(v.b)) {
		return 0, &os.PathError{Op: "view access", Path: v.name, Err: syscall.EINVAL}
	}
	n := min(len(p), len(v.b)-int(off))
	for done := 0; done < n; done += BlockSize {
		end := min(done+BlockSize, n)
		m := v.b[int(off)+done : int(off)+end]
		var faulted bool
		unlock := v.fs.io(false) // a fault is I/O too
		if write {
			faulted = faultCopy(m, p[done:end])
		} else {
			faulted = faultCopy(p[done:end], m)
		}
		unlock()
		if faulted {
			v.fs.sigbus.Add(1)
			return done, &os.PathError{Op: "view access", Path: v.name, Err: syscall.EFAULT}
		}
	}
	return n, nil
}

func (v *targetView) ReadAt(p []byte, off int64) (int, error)  { return v.access(p, off, false) }
func (v *targetView) WriteAt(p []byte, off int64) (int, error) { return v.access(p, off, true) }

func (v *targetView) span(off, n int64) ([]byte, error) {
	if n == 0 {
		n = int64(len(v.b)) - off
	}
	if off < 0 || n < 0 || off+n > int64(len(v.b)) {
		return nil, &os.PathError{Op: "view", Path: v.name, Err: syscall.EINVAL}
	}
	return v.b[off : off+n], nil
}

func (v *targetView) Madvise(off, n int64, advice int) error {
	b, err := v.span(off, n)
	if err != nil {
		return err
	}
	defer v.fs.io(false)()
	if err := eintr(func() error { return unix.Madvise(b, advice) }); err != nil {
		return &os.PathError{Op: "madvise", Path: v.name, Err: err}
	}
	return nil
}

func (v *targetView) Sync(off, n int64) error {
	b, err := v.span(off, n)
	if err != nil {
		return err
	}
	defer v.fs.io(false)()
	if err := eintr(func() error { return unix.Msync(b, unix.MS_SYNC) }); err != nil {
		return &os.PathError{Op: "msync", Path: v.name, Err: err}
	}
	return nil
}

func (v *targetView) Unmap() error {
	if v.b == nil {
		return nil
	}
	err := unix.Munmap(v.b)
	v.b = nil
	if err != nil {
		return &os.PathError{Op: "munmap", Path: v.name, Err: err}
	}
	return nil
}
