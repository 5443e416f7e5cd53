package blockmap

import "errors"

// ErrZoneReopen marks the error of a Zone's Reset whose reset succeeded
// but whose re-open of the zone (explicit-open keeps it open for its
// writers) failed: the zone is empty, so the file's size must become 0
// although the error is returned, as Linux's zonefs_file_truncate sets
// the size once the reset command succeeded and returns the open's error.
var ErrZoneReopen = errors.New("zone reset, but re-opening it failed")

// Zone is the block map of a file that is one zone of a zoned device
// (zonefs): page i is block i of the zone, the file's own device. The VFS
// checks for it to apply zonefs's rules: a fixed size for a conventional
// zone; for a sequential one, writes only at the write pointer and only
// direct, and truncation only to 0 (Reset) or to the capacity (Finish),
// both block-removing operations.
type Zone interface {
	DeviceFile
	// Sequential reports a sequential-write-required zone.
	Sequential() bool
	// Capacity returns the zone's capacity in bytes: the largest size.
	Capacity() int64
	// Reset rewinds the zone's write pointer: its data is gone. The
	// caller holds the inode and invalidate locks exclusive and has
	// truncated the file's pages. An error wrapping ErrZoneReopen
	// reports a reset done but the zone not re-opened.
	Reset() error
	// Finish moves the write pointer to the capacity: the zone is full.
	// The caller holds the inode and invalidate locks exclusive.
	Finish() error
	// CheckWrite returns the error a write or a truncation gets now:
	// EROFS once an error made the filesystem read-only, EPERM for a
	// zone read-only or offline (zonefs makes the file immutable).
	CheckWrite() error
	// CheckRead returns EPERM for an offline zone, nil otherwise.
	CheckRead() error
	// OpenWrite and CloseWrite bracket every handle of the file open for
	// writing (zonefs's write-open accounting and explicit-open: EBUSY
	// past the device's open-zone limit). A CloseWrite error is an I/O
	// error of the zone.
	OpenWrite() error
	CloseWrite() error
	// IOError handles an I/O error of the file, whose size is size, by
	// the zone's report and the errors= policy (zonefs's
	// zonefs_handle_io_error) and returns the size the file must have
	// now, and the permission bits to clear (0222 for a zone that became
	// read-only, 0777 for one that went offline).
	IOError(write bool, size int64) (newSize int64, clear uint32)
}
