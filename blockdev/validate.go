package blockdev

import (
	"fmt"
	"math"
	"syscall"
)

// checkIO validates an I/O request against a device of nblocks blocks and
// returns the number of blocks it covers. The error wraps syscall.EINVAL and
// says what was wrong and where.
func checkIO(op string, p []byte, block, nblocks int64) (int64, error) {
	if len(p) == 0 || len(p)%BlockSize != 0 {
		return 0, fmt.Errorf("blockdev: %s of %d bytes at block %d: length is not a positive multiple of the %d-byte block size: %w",
			op, len(p), block, BlockSize, syscall.EINVAL)
	}
	n := int64(len(p) / BlockSize)
	if block < 0 {
		return 0, fmt.Errorf("blockdev: %s of %d blocks at negative block %d: %w", op, n, block, syscall.EINVAL)
	}
	// block+n could overflow; compare against what is left instead.
	if block > nblocks || n > nblocks-block {
		return 0, fmt.Errorf("blockdev: %s of %d blocks at block %d beyond end of %d-block device: %w",
			op, n, block, nblocks, syscall.EINVAL)
	}
	return n, nil
}

// errClosed is the error of I/O on a closed device.
func errClosed(op string) error {
	return fmt.Errorf("blockdev: %s: device closed: %w", op, syscall.EBADF)
}

// errClosedTwice is the error of closing a closed device.
func errClosedTwice() error {
	return fmt.Errorf("blockdev: close: device already closed: %w", syscall.EBADF)
}

// byteSize returns nblocks*BlockSize, or false if it does not fit an int64.
func byteSize(nblocks int64) (int64, bool) {
	if nblocks < 0 || nblocks > math.MaxInt64/BlockSize {
		return 0, false
	}
	return nblocks * BlockSize, true
}
