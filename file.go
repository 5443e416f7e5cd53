package holefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/holefs/holefs/vfs"
)

// Whence values for Seek beyond io.Seek*: the next data or hole at or
// after the offset (lseek's SEEK_DATA and SEEK_HOLE).
const (
	SeekData = vfs.SeekData
	SeekHole = vfs.SeekHole
)

// File is an open file or directory of an FS, like *os.File.
type File struct {
	fs     *FS
	h      *vfs.File
	name   string
	append bool // opened with O_APPEND

	mu  sync.Mutex    // the file position and the directory cursor (f_pos_lock; see LOCKING.md)
	pos int64         // +checklocks:mu
	dir []fs.DirEntry // entries not yet returned by ReadDir; +checklocks:mu
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

func (f *File) err(op string, err error) error { return pathErr(op, f.name, err) }

// ReadAt reads len(p) bytes at off. At the end of file it returns a short
// count and io.EOF, as io.ReaderAt requires.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.h.ReadAt(p, off)
	return n, f.err("read", err)
}

// WriteAt writes p at off. It fails on an O_APPEND file, like os.File.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.append {
		return 0, f.err("write", fmt.Errorf("WriteAt on a file opened with O_APPEND: %w", syscall.EINVAL))
	}
	n, _, err := f.h.WriteAt(p, off)
	return n, f.err("write", err)
}

// Read reads from the file position and advances it.
func (f *File) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.h.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, f.err("read", err)
}

// Write writes at the file position (at the end with O_APPEND) and
// advances it.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, at, err := f.h.WriteAt(p, f.pos)
	f.pos = at + int64(n)
	return n, f.err("write", err)
}

// Seek sets the file position: whence is io.SeekStart, io.SeekCurrent,
// io.SeekEnd, SeekData or SeekHole.
func (f *File) Seek(off int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = off
	case io.SeekCurrent:
		pos = f.pos + off
	case io.SeekEnd:
		pos = f.h.Inode().Stat().Size + off
	case SeekData, SeekHole:
		var err error
		if pos, err = f.h.SeekDataHole(off, whence); err != nil {
			return 0, f.err("seek", err)
		}
	default:
		return 0, f.err("seek", syscall.EINVAL)
	}
	if pos < 0 {
		return 0, f.err("seek", syscall.EINVAL)
	}
	f.pos = pos
	f.dir = nil
	return pos, nil
}

// Truncate changes the file size.
func (f *File) Truncate(size int64) error { return f.err("truncate", f.h.Truncate(size)) }

// Fallocate allocates, punches, zeroes, collapses or inserts space:
// mode is 0 or unix.FALLOC_FL_* flags, with Linux's rules and errors.
func (f *File) Fallocate(mode uint32, off, n int64) error {
	return f.err("fallocate", f.h.Fallocate(mode, off, n))
}

// Fadvise gives posix_fadvise advice (unix.FADV_*) for [off, off+n);
// n == 0 means to the end of the file.
func (f *File) Fadvise(off, n int64, advice int) error {
	return f.err("fadvise", f.h.Fadvise(off, n, advice))
}

// Readahead reads [off, off+n) into the page cache (readahead(2)).
func (f *File) Readahead(off, n int64) error { return f.err("readahead", f.h.Readahead(off, n)) }

// Sync writes back the file's data and reports a writeback error that
// happened since this handle's last Sync (each error once per handle).
func (f *File) Sync() error { return f.err("sync", f.h.Sync()) }

// Stat returns the file's FileInfo.
func (f *File) Stat() (fs.FileInfo, error) {
	a, err := f.h.Stat()
	if err != nil {
		return nil, f.err("stat", err)
	}
	return newFileInfo(path.Base(clean(f.name)), a), nil
}

// Close closes the file.
func (f *File) Close() error { return f.err("close", f.h.Close()) }

// CopyRange copies n bytes at srcOff of f to dst at dstOff
// (copy_file_range(2)) and returns the bytes copied, fewer at f's EOF.
func (f *File) CopyRange(dst *File, srcOff, dstOff, n int64) (int64, error) {
	c, err := f.h.CopyRange(dst.h, srcOff, dstOff, n)
	return c, f.err("copy_file_range", err)
}

// Clone makes n bytes of dst at dstOff share the blocks of f at srcOff
// (FICLONERANGE; n 0 means to f's EOF): they read the same at once, and a
// later write to either copies the block it writes (reflink). Offsets must
// be multiples of 4096 and so must n unless the range ends at f's EOF;
// overlapping ranges of one file are EINVAL. Backends without shared
// blocks (memfs, passthrough, images made with MkfsOptions.NoReflink)
// return EOPNOTSUPP.
func (f *File) Clone(dst *File, srcOff, dstOff, n int64) error {
	return f.err("clone", f.h.Clone(dst.h, srcOff, dstOff, n))
}

// ErrDedupeDiffers is what Dedupe returns, wrapped, when the ranges are
// not byte-for-byte equal; nothing is changed then.
var ErrDedupeDiffers = errors.New("ranges differ")

// Dedupe makes n bytes of dst at dstOff share the blocks of f at srcOff
// if they hold the same bytes (FIDEDUPERANGE), clipped to both files'
// EOF; alignment as for Clone. Unequal ranges return ErrDedupeDiffers.
func (f *File) Dedupe(dst *File, srcOff, dstOff, n int64) error {
	_, same, err := f.h.Dedupe(dst.h, srcOff, dstOff, n)
	if err == nil && !same {
		err = ErrDedupeDiffers
	}
	return f.err("dedupe", err)
}

// ReadDir reads directory entries in name order (io/fs.ReadDirFile): with
// n > 0 at most n per call and io.EOF at the end; with n <= 0 all the rest.
func (f *File) ReadDir(n int) ([]fs.DirEntry, error) {
	in := f.h.Inode()
	if !in.IsDir() {
		return nil, f.err("readdir", syscall.ENOTDIR)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir == nil {
		ents, err := f.fs.v.ReadDirInode(in)
		if err != nil {
			return nil, f.err("readdir", err)
		}
		all := f.fs.dirEntries(clean(f.name), ents)
		f.dir = all[min(f.pos, int64(len(all))):] // the directory may have shrunk since
	}
	if n <= 0 {
		out := f.dir
		f.pos += int64(len(out))
		f.dir = f.dir[len(out):]
		return out, nil
	}
	if len(f.dir) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(f.dir))
	out := f.dir[:k]
	f.dir = f.dir[k:]
	f.pos += int64(k)
	return out, nil
}

// Mmap maps [off, off+n) of the file into a MappedView; off must be page
// aligned. A writable view needs a file opened for reading and writing.
func (f *File) Mmap(off, n int64, writable bool) (*MappedView, error) {
	v, err := f.h.Mmap(off, n, writable)
	if err != nil {
		return nil, f.err("mmap", err)
	}
	return &MappedView{v: v, name: f.name}, nil
}

// MappedView is an in-process memory mapping of a file: the first access
// to a page faults it in from the page cache (on a DAX filesystem, maps the
// device's memory of its block), later accesses go straight to the page,
// and punch or truncate of the file unmap its pages, as with a shared
// mmap(2). Access past the end of file fails with EFAULT where a
// process would get SIGBUS.
type MappedView struct {
	v    *vfs.View
	name string
}

// Len returns the view's length in bytes.
func (m *MappedView) Len() int64 { return m.v.Len() }

// ReadAt reads from the view at byte offset off.
func (m *MappedView) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.v.ReadAt(p, off)
	return n, pathErr("mmap read", m.name, err)
}

// WriteAt writes to the view at byte offset off.
func (m *MappedView) WriteAt(p []byte, off int64) (int, error) {
	n, err := m.v.WriteAt(p, off)
	return n, pathErr("mmap write", m.name, err)
}

// Madvise gives madvise advice (unix.MADV_WILLNEED, MADV_DONTNEED,
// MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL) for the view's [off, off+n).
func (m *MappedView) Madvise(off, n int64, advice int) error {
	return pathErr("madvise", m.name, m.v.Madvise(off, n, advice))
}

// Sync writes back the view's dirty pages in [off, off+n), n == 0 meaning
// the whole view (msync MS_SYNC).
func (m *MappedView) Sync(off, n int64) error {
	return pathErr("msync", m.name, m.v.Sync(off, n))
}

// Unmap removes the view.
func (m *MappedView) Unmap() error { return pathErr("munmap", m.name, m.v.Unmap()) }

// Attr is the stat information FileInfo.Sys returns.
type Attr = vfs.Attr

type fileInfo struct {
	name string
	a    Attr
}

func newFileInfo(name string, a Attr) *fileInfo {
	if name == "/" || name == "" {
		name = "."
	}
	return &fileInfo{name: name, a: a}
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.a.Size }
func (i *fileInfo) Mode() fs.FileMode  { return fileMode(i.a.Mode) }
func (i *fileInfo) ModTime() time.Time { return i.a.Mtime }
func (i *fileInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i *fileInfo) Sys() any           { return &i.a }

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return mode
}

type dirEntry struct {
	fs   *FS
	dir  string
	name string
	mode uint32
}

func (f *FS) dirEntries(dir string, ents []vfs.DirEntry) []fs.DirEntry {
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = &dirEntry{fs: f, dir: dir, name: e.Name, mode: e.Mode}
	}
	return out
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.Type().IsDir() }
func (d *dirEntry) Type() fs.FileMode { return fileMode(d.mode).Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	return d.fs.Lstat(d.dir + "/" + d.name) // not path.Join: no lexical ".."
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }
