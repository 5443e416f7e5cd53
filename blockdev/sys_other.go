//go:build unix && !linux

package blockdev

import "golang.org/x/sys/unix"

// datasync flushes fd; this platform has no fdatasync, so it is fsync.
func datasync(fd int) error { return unix.Fsync(fd) }

// punchHole is not available on this platform.
func punchHole(fd int, off, n int64) error { return unix.EOPNOTSUPP }
