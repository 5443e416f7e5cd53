package torture

import (
	"errors"
	"os"

	"github.com/holefs/holefs"
)

// fileSystem is what the workers need of a filesystem: the in-process
// holefs library (libFS) or real system calls on files in a directory
// (targetFS, see target.go).
type fileSystem interface {
	// OpenFile opens name with os.OpenFile's flags (syscall.O_DIRECT
	// included).
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
	Remove(name string) error
	// Sync is syncfs(2).
	Sync() error
	Close() error
}

// file is an open file. Errors wrap the syscall.Errno Linux returns.
type file interface {
	ReadAt(p []byte, off int64) (int, error) // short only at EOF (io.EOF)
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Fallocate(mode uint32, off, n int64) error
	Fadvise(off, n int64, advice int) error
	Readahead(off, n int64) error
	Sync() error
	Close() error
	// CopyRange is copy_file_range(2) to dst, a file of the same
	// fileSystem; it returns the bytes copied.
	CopyRange(dst file, srcOff, dstOff, n int64) (int64, error)
	// Mmap maps [off, off+n) shared; off is page aligned.
	Mmap(off, n int64, writable bool) (mappedView, error)
}

// mappedView is a shared mapping of part of a file. ReadAt and WriteAt
// return EFAULT (with the bytes of the whole blocks done before it) where
// the view lies past the file's end.
type mappedView interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Madvise(off, n int64, advice int) error
	Sync(off, n int64) error // msync(MS_SYNC); n 0: to the end of the view
	Unmap() error
}

// libFS is the holefs library as a fileSystem.
type libFS struct{ *holefs.FS }

func (l libFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := l.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return libFile{f}, nil
}

// libFile is a *holefs.File as a file.
type libFile struct{ *holefs.File }

var errCrossBackend = errors.New("torture: CopyRange between files of different filesystems")

func (l libFile) CopyRange(dst file, srcOff, dstOff, n int64) (int64, error) {
	d, ok := dst.(libFile)
	if !ok {
		return 0, errCrossBackend
	}
	return l.File.CopyRange(d.File, srcOff, dstOff, n)
}

func (l libFile) Mmap(off, n int64, writable bool) (mappedView, error) {
	v, err := l.File.Mmap(off, n, writable)
	if err != nil {
		return nil, err
	}
	return v, nil
}
