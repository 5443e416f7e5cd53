package blockdev

import "golang.org/x/sys/unix"

// datasync flushes fd's data and the metadata needed to read it back.
func datasync(fd int) error { return unix.Fdatasync(fd) }

// punchHole deallocates [off, off+n) of fd, keeping its size.
func punchHole(fd int, off, n int64) error {
	return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}
