// Package blockdev provides the block devices holefs stores data on: a
// file-backed device, an in-memory device, a zoned device (Zoned: zones
// with write pointers, memory- or file-backed), and a wrapper that injects
// latency and errors.
//
// All devices address 4 KiB blocks. Errors wrap syscall.Errno (EIO, EINVAL,
// ENOSPC) so callers can match them with errors.Is and report the right
// errno.
package blockdev

// BlockSize is the size of a device block.
const BlockSize = 4096

// Device is a block device. Implementations are safe for concurrent use;
// concurrent I/O to the same block has no defined result, as on a disk.
type Device interface {
	// ReadBlocks reads len(p)/BlockSize blocks starting at block into p.
	// len(p) must be a positive multiple of BlockSize.
	ReadBlocks(p []byte, block int64) error
	// WriteBlocks writes p to len(p)/BlockSize blocks starting at block.
	WriteBlocks(p []byte, block int64) error
	// Flush makes every completed write durable (fdatasync).
	Flush() error
	// NumBlocks returns the device size in blocks.
	NumBlocks() int64
	// Close releases the device. Further I/O returns an error.
	Close() error
}
