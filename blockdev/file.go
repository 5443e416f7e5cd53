//go:build unix

package blockdev

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// File is a Device stored in a regular file, accessed with pread and
// pwrite at block offsets. It is safe for concurrent use.
type File struct {
	path    string
	nblocks int64

	// mu is held shared by every I/O and exclusive by Close, so the file
	// descriptor cannot be closed (and its number reused by an unrelated
	// open) under an I/O still using it.
	mu sync.RWMutex
	fd int // -1 once closed; guarded by mu
}

// OpenFile opens the file at path as a device of nblocks blocks, creating it
// (mode 0644) if it does not exist. A file smaller than nblocks*BlockSize is
// extended with ftruncate, so the new blocks are sparse and read as zeros. A
// file that is already larger keeps its size and content; the device still
// has exactly nblocks blocks and the bytes past them are never touched.
//
// nblocks must be positive and nblocks*BlockSize must fit an int64, and path
// must be a regular file; otherwise the error wraps syscall.EINVAL.
func OpenFile(path string, nblocks int64) (*File, error) {
	if nblocks <= 0 {
		return nil, fmt.Errorf("blockdev: open %s: device size of %d blocks is not positive: %w", path, nblocks, syscall.EINVAL)
	}
	size, ok := byteSize(nblocks)
	if !ok {
		return nil, fmt.Errorf("blockdev: open %s: device size of %d blocks is too large: %w", path, nblocks, syscall.EINVAL)
	}
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blockdev: open %s: %w", path, err)
	}
	if err := sizeFile(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("blockdev: open %s: %w", path, err)
	}
	return &File{path: path, nblocks: nblocks, fd: fd}, nil
}

// sizeFile checks that fd is a regular file and extends it to size bytes if
// it is smaller.
func sizeFile(fd int, size int64) error {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("not a regular file: %w", syscall.EINVAL)
	}
	if st.Size >= size {
		return nil
	}
	if err := retryEINTR(func() error { return unix.Ftruncate(fd, size) }); err != nil {
		return fmt.Errorf("extend to %d bytes: %w", size, err)
	}
	return nil
}

// ReadBlocks reads len(p)/BlockSize blocks starting at block into p.
func (f *File) ReadBlocks(p []byte, block int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd < 0 {
		return errClosed("read")
	}
	n, err := checkIO("read", p, block, f.nblocks)
	if err != nil {
		return err
	}
	off := block * BlockSize
	for done := 0; done < len(p); {
		m, err := unix.Pread(f.fd, p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("blockdev: read of %d blocks at block %d of %s: %w", n, block, f.path, err)
		case m == 0:
			// The file was truncated behind our back.
			return fmt.Errorf("blockdev: read of %d blocks at block %d of %s: unexpected end of file at byte %d: %w",
				n, block, f.path, off+int64(done), syscall.EIO)
		}
		done += m
	}
	return nil
}

// WriteBlocks writes p to len(p)/BlockSize blocks starting at block.
func (f *File) WriteBlocks(p []byte, block int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd < 0 {
		return errClosed("write")
	}
	n, err := checkIO("write", p, block, f.nblocks)
	if err != nil {
		return err
	}
	off := block * BlockSize
	for done := 0; done < len(p); {
		m, err := unix.Pwrite(f.fd, p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("blockdev: write of %d blocks at block %d of %s: %w", n, block, f.path, err)
		case m == 0:
			return fmt.Errorf("blockdev: write of %d blocks at block %d of %s: no progress at byte %d: %w",
				n, block, f.path, off+int64(done), syscall.EIO)
		}
		done += m
	}
	return nil
}

// Discard gives blocks [block, block+count) back to the filesystem
// holding the file: it punches them out (fallocate PUNCH_HOLE|KEEP_SIZE),
// so they read as zeros and take no space until written again, as a
// discard does on an SSD. A filesystem that cannot punch holes returns an
// error wrapping syscall.EOPNOTSUPP.
func (f *File) Discard(block, count int64) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd < 0 {
		return errClosed("discard")
	}
	if block < 0 || count <= 0 || block > f.nblocks || count > f.nblocks-block {
		return fmt.Errorf("blockdev: discard of %d blocks at block %d of a %d-block device: %w", count, block, f.nblocks, syscall.EINVAL)
	}
	if err := retryEINTR(func() error { return punchHole(f.fd, block*BlockSize, count*BlockSize) }); err != nil {
		return fmt.Errorf("blockdev: discard of %d blocks at block %d of %s: %w", count, block, f.path, err)
	}
	return nil
}

// Flush makes every completed write durable with fdatasync (fsync where
// fdatasync does not exist).
func (f *File) Flush() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.fd < 0 {
		return errClosed("flush")
	}
	if err := retryEINTR(func() error { return datasync(f.fd) }); err != nil {
		return fmt.Errorf("blockdev: flush %s: %w", f.path, err)
	}
	return nil
}

// NumBlocks returns the device size in blocks.
func (f *File) NumBlocks() int64 { return f.nblocks }

// Close closes the file. It waits for I/O in progress and does not flush:
// call Flush first for durability. Further I/O returns an error wrapping
// syscall.EBADF, as does a second Close.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return errClosedTwice()
	}
	fd := f.fd
	f.fd = -1
	// Not retried on EINTR: the descriptor is released either way.
	if err := unix.Close(fd); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("blockdev: close %s: %w", f.path, err)
	}
	return nil
}

// retryEINTR calls fn until it returns something other than EINTR.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
