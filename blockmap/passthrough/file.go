package passthrough

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
)

// maxPages bounds file offsets, in pages (vfs.MaxFileSize).
const maxPages = int64(1) << 30

const pageSize = blockmap.PageSize

// attrs are what tells an outside change of a backing file apart: its
// size, modification and change times. The change time catches what the
// other two miss (a write that restores the old mtime, as rsync --inplace
// does); with multigrain timestamps (Linux 6.13) a change made after the
// engine last looked always moves it. st_blocks is left out: a filesystem
// changes it on its own (XFS trims speculative preallocation).
type attrs struct {
	size, mtime, ctime int64
}

func attrsOf(st *unix.Stat_t) attrs {
	return attrs{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// File is the block map of one passthrough file: its backing file. Block
// i of its devices is page i of the file. It implements
// blockmap.DeviceFile and is safe for concurrent use.
//
// Reads (fills, Lookup, NextData, Blocks) use the descriptor with no lock:
// the fill paths take only the page cache's invalidate lock, as for every
// backend. Every change the engine makes to the backing file — writeback
// and direct writes, fallocate, ftruncate, and the namespace and attribute
// changes that move its change time — runs under mu, between a check and a
// refresh of known: the file's attributes as the engine last left them. A
// check that finds them changed has found a change made from outside (see
// Changed).
type File struct {
	fs       *FS
	f        *os.File        // the backing file; closed by Release
	rc       syscall.RawConn // f's descriptor, for the syscalls os.File lacks
	dev, ino uint64          // the backing file's identity (st_dev, st_ino); immutable

	// size returns the file size the page cache holds (i_size). It is set
	// by WritebackDevice, when the VFS sets the file up and before any I/O,
	// and never changes after.
	size func() int64

	// mu is a leaf: nothing is acquired while it is held, and it is held
	// across the backing file's syscalls, so that the engine's own changes
	// are told apart from outside ones.
	mu       sync.Mutex
	known    attrs // +checklocks:mu
	released bool  // +checklocks:mu
	// stale says an outside change was seen and the page cache not yet
	// revalidated.
	stale atomic.Bool

	direct, writeback blockdev.Device // immutable
}

var _ blockmap.DeviceFile = (*File)(nil)

// newFile takes over the descriptor of a backing file.
func newFile(fsys *FS, fd int, name string) (*File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	osf := os.NewFile(uintptr(fd), name)
	rc, err := osf.SyscallConn()
	if err != nil {
		osf.Close()
		return nil, err
	}
	f := &File{fs: fsys, f: osf, rc: rc, dev: st.Dev, ino: st.Ino, known: attrsOf(&st)}
	f.direct, f.writeback = fsys.wrap(device{f: f}), fsys.wrap(device{f: f, clip: true})
	return f, nil
}

// control runs fn on the descriptor; EIO once the file is closed.
func (f *File) control(fn func(fd int) error) error {
	var err error
	if cerr := f.rc.Control(func(fd uintptr) { err = fn(int(fd)) }); cerr != nil {
		return fmt.Errorf("passthrough: %v: %w", cerr, syscall.EIO)
	}
	return err
}

func (f *File) stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := f.control(func(fd int) error { return unix.Fstat(fd, &st) })
	return st, err
}

// change runs fn, a change the engine makes to the backing file, between
// a check and a refresh of its known attributes. A check that fails has
// found an outside change: the file is marked stale; with refuse (writeback
// of cached pages) fn does not run and change fails with ESTALE, since the
// pages may be older than what the outside change wrote; other changes are
// new operations applied to the file as it now is, and run.
func (f *File) change(op string, refuse bool, fn func(fd int) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return fmt.Errorf("passthrough: %s after release: %w", op, syscall.EIO)
	}
	st, err := f.stat()
	if err != nil {
		return fmt.Errorf("passthrough: %s: %w", op, err)
	}
	if attrsOf(&st) != f.known {
		f.stale.Store(true)
		if refuse {
			return fmt.Errorf("passthrough: %s: the backing file changed behind the cache: %w", op, syscall.ESTALE)
		}
	}
	err = f.control(fn)
	if st, serr := f.stat(); serr == nil {
		f.known = attrsOf(&st)
	} else if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("passthrough: %s: %w", op, err)
	}
	return nil
}

// Changed reports whether the backing file changed from outside since the
// engine's last change of it or the last Revalidated.
func (f *File) Changed() bool {
	if f.stale.Load() {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return false
	}
	st, err := f.stat()
	return err == nil && attrsOf(&st) != f.known
}

// Revalidated takes the backing file as it now is for what the engine
// knows, and returns its attributes. The caller has dropped every cached
// page of the file first, under the protocol's locks: from now on the file
// is compared with these attributes.
func (f *File) Revalidated() (unix.Stat_t, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return unix.Stat_t{}, syscall.EIO
	}
	st, err := f.stat()
	if err != nil {
		return st, err
	}
	f.known = attrsOf(&st)
	f.stale.Store(false)
	return st, nil
}

func checkRange(op string, index, n int64) error {
	switch {
	case index < 0 || n <= 0:
		return fmt.Errorf("passthrough: %s(index=%d, n=%d): %w", op, index, n, syscall.EINVAL)
	case index > maxPages-n:
		return fmt.Errorf("passthrough: %s(index=%d, n=%d): %w", op, index, n, syscall.EFBIG)
	}
	return nil
}

// fallocate runs fallocate(2) on the pages [index, index+n) as one of the
// engine's changes. A remover (grow) first makes the backing file as long
// as the file if it is shorter (see growLocked): the backing filesystem
// applies the operation to its own idea of the end of file (ext4 does not
// punch past it at all), which must be the file's.
func (f *File) fallocate(op string, mode uint32, index, n int64, grow bool) error {
	if err := checkRange(op, index, n); err != nil {
		return err
	}
	return f.change(op, false, func(fd int) error {
		if grow {
			if err := f.growLocked(fd); err != nil {
				return err
			}
		}
		return unix.Fallocate(fd, mode, index*pageSize, n*pageSize)
	})
}

// growLocked extends the backing file to the file size when it is
// shorter. The backing file reaches the size of a buffered write that
// extended the file when the page holding the new end is written back;
// until then it is shorter, and a remover that discards that page, still
// dirty, must not leave it so. It never shrinks: writeback in flight
// never writes past the file size (see device.WriteBlocks), so a longer
// backing file is about to be cut by the truncate that made it so.
func (f *File) growLocked(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if size := f.size(); st.Size < size {
		return unix.Ftruncate(fd, size)
	}
	return nil
}

// probePages bounds a Mapped extent of Lookup (see there).
const probePages = 64

// Lookup returns the extent of page index, clipped to [index, index+max):
// Mapped where the backing file has data (SEEK_DATA), and elsewhere
// Unwritten — the file's device has every block, it holds no data yet —
// not Hole: a hole is storage the map must allocate before writeback, and
// the backing filesystem allocates on write. A page is data if any byte
// of it is. Block is the page index.
//
// The end of a run of data is found with SEEK_DATA page by page, and a
// Mapped extent is at most probePages long (callers ask again for the
// rest), never with SEEK_HOLE: SEEK_HOLE from inside data scans to the
// next hole, which on tmpfs walks every page to the end of a dense file
// (7 ms for 256 MiB), while a fill or a writeback cluster asks about a
// few dozen pages. SEEK_DATA from a data offset returns at once.
func (f *File) Lookup(index, max int64) (blockmap.Extent, error) {
	if index < 0 || max <= 0 {
		return blockmap.Extent{}, fmt.Errorf("passthrough: lookup(index=%d, max=%d): %w", index, max, syscall.EINVAL)
	}
	none := blockmap.Extent{Page: index, Count: max, Kind: blockmap.Unwritten, Block: index}
	var data, end int64
	err := f.control(func(fd int) error {
		var err error
		if data, err = unix.Seek(fd, index*pageSize, unix.SEEK_DATA); err != nil || data/pageSize > index {
			return err
		}
		end = index + 1
		for limit := index + min(max, probePages); end < limit; end++ {
			d, err := unix.Seek(fd, end*pageSize, unix.SEEK_DATA)
			if errors.Is(err, syscall.ENXIO) || err == nil && d/pageSize > end {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, syscall.ENXIO):
		return none, nil
	case err != nil:
		return blockmap.Extent{}, fmt.Errorf("passthrough: lookup: %w", err)
	case data/pageSize > index:
		none.Count = min(data/pageSize-index, max)
		return none, nil
	}
	return blockmap.Extent{Page: index, Count: min(end-index, max), Kind: blockmap.Mapped, Block: index}, nil
}

// Allocate reserves the backing file's space for [index, index+n) with
// fallocate(FALLOC_FL_KEEP_SIZE), so that a full backing filesystem fails
// the write that needs the space (ENOSPC) rather than its writeback. On a
// backing filesystem without fallocate it reserves nothing.
func (f *File) Allocate(index, n int64) error {
	if f.fs.noAlloc {
		return checkRange("allocate", index, n)
	}
	return f.fallocate("allocate", unix.FALLOC_FL_KEEP_SIZE, index, n, false)
}

// MarkWritten has nothing to record: the data is in the backing file.
func (f *File) MarkWritten(index, n int64) error { return nil }

// Punch punches [index, index+n) out of the backing file
// (FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE).
func (f *File) Punch(index, n int64) error {
	return f.fallocate("punch", unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, index, n, true)
}

// ZeroRange zeroes [index, index+n) of the backing file
// (FALLOC_FL_ZERO_RANGE|FALLOC_FL_KEEP_SIZE).
func (f *File) ZeroRange(index, n int64) error {
	return f.fallocate("zero range", unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, index, n, true)
}

// Collapse removes [index, index+n) from the backing file and shifts the
// rest down (FALLOC_FL_COLLAPSE_RANGE), which shrinks it by n pages as the
// VFS shrinks the file.
func (f *File) Collapse(index, n int64) error {
	return f.fallocate("collapse", unix.FALLOC_FL_COLLAPSE_RANGE, index, n, true)
}

// Insert shifts the backing file up by n pages from index
// (FALLOC_FL_INSERT_RANGE), which grows it by n pages as the VFS grows the
// file.
func (f *File) Insert(index, n int64) error {
	return f.fallocate("insert", unix.FALLOC_FL_INSERT_RANGE, index, n, true)
}

// Truncate cuts the backing file at the file size, which the VFS has set
// before truncating the page cache and calling Truncate, or at page index
// if that is less: ftruncate takes bytes, and the size need not be a
// whole number of pages.
func (f *File) Truncate(index int64) error {
	if index < 0 {
		return fmt.Errorf("passthrough: truncate(index=%d): %w", index, syscall.EINVAL)
	}
	return f.change("truncate", false, func(fd int) error {
		return unix.Ftruncate(fd, min(f.size(), index*pageSize))
	})
}

// resize sets the backing file's size: a truncate up, or a fallocate
// that grows the file.
func (f *File) resize(size int64) error {
	return f.change("resize", false, func(fd int) error { return unix.Ftruncate(fd, size) })
}

// NextData returns the first page >= index holding data, or -1.
func (f *File) NextData(index int64) (int64, error) {
	var data int64
	err := f.control(func(fd int) error {
		var err error
		data, err = unix.Seek(fd, index*pageSize, unix.SEEK_DATA)
		return err
	})
	switch {
	case errors.Is(err, syscall.ENXIO):
		return -1, nil
	case err != nil:
		return -1, fmt.Errorf("passthrough: next data: %w", err)
	}
	return data / pageSize, nil
}

// Blocks returns the backing file's allocated space in pages.
func (f *File) Blocks() int64 {
	st, err := f.stat()
	if err != nil {
		return 0
	}
	return st.Blocks * 512 / pageSize
}

// Release closes the backing file. The file's names are gone already (the
// VFS releases a file when its last name and handle are), so the backing
// filesystem frees its space now.
func (f *File) Release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	f.released = true
	return f.f.Close()
}

// Device returns the device of direct I/O.
func (f *File) Device() blockdev.Device { return f.direct }

// WritebackDevice returns the device of the page cache, whose writes stop
// at size().
func (f *File) WritebackDevice(size func() int64) blockdev.Device {
	f.size = size
	return f.writeback
}

// device is a backing file as a block device: block i is bytes
// [i*4096, (i+1)*4096) of the file.
type device struct {
	f *File
	// clip: writes stop at the file size (the page cache's device), and
	// are refused once the backing file changed from outside.
	clip bool
}

// ReadBlocks reads with pread; past the backing file's end, zeros.
func (d device) ReadBlocks(p []byte, block int64) error {
	if err := checkIO("read", p, block); err != nil {
		return err
	}
	n, err := d.f.f.ReadAt(p, block*pageSize)
	if err == io.EOF {
		clear(p[n:])
		return nil
	}
	if err != nil {
		return fmt.Errorf("passthrough: read: %w", errnoOf(err))
	}
	return nil
}

// WriteBlocks writes with pwrite, as one of the engine's changes. The page
// cache's device writes nothing past max(file size, backing file size):
// the last page of a file stops at its end, and a page wholly past it —
// being truncated, waited for by the truncate — is dropped, or written up
// to a backing end the truncate is about to cut. It refuses (ESTALE) to
// write over an outside change (see File.change).
func (d device) WriteBlocks(p []byte, block int64) error {
	if err := checkIO("write", p, block); err != nil {
		return err
	}
	f, off := d.f, block*pageSize
	return f.change("write", d.clip, func(fd int) error {
		buf := p
		if d.clip {
			limit := max(f.size(), f.known.size)
			buf = p[:min(max(limit-off, 0), int64(len(p)))]
		}
		for len(buf) > 0 {
			n, err := unix.Pwrite(fd, buf, off)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				return err
			case n == 0:
				return io.ErrShortWrite
			}
			buf, off = buf[n:], off+int64(n)
		}
		return nil
	})
}

// Flush makes the backing file's written data durable (fdatasync).
func (d device) Flush() error {
	return d.f.control(func(fd int) error { return unix.Fdatasync(fd) })
}

// NumBlocks returns the largest file size in blocks.
func (d device) NumBlocks() int64 { return maxPages }

// Close does nothing: the backing file is the File's, closed by Release.
func (d device) Close() error { return nil }

// checkIO checks a device I/O: whole blocks, inside the largest file.
func checkIO(op string, p []byte, block int64) error {
	if len(p) == 0 || len(p)%pageSize != 0 || block < 0 || block > maxPages-int64(len(p)/pageSize) {
		return fmt.Errorf("passthrough: %s of %d bytes at block %d: %w", op, len(p), block, syscall.EINVAL)
	}
	return nil
}

// errnoOf returns the errno inside an os error, EIO if none.
func errnoOf(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
