package extentfs

import (
	"fmt"
	"math"
	"syscall"
)

// MaxPages is the largest file size in pages (4 PiB). Ranges reaching past
// it fail with EFBIG. Keeping it far below MaxInt64 means page and block
// arithmetic (index+n, block+count) can never overflow once a range passed
// validation.
const MaxPages = int64(1) << 40

// checkRange validates [index, index+n) for op. Bad arguments are caller
// bugs; they are returned as EINVAL rather than panicking so a bad request
// from a user-facing path cannot take down the filesystem.
func checkRange(op string, index, n int64) error {
	if err := checkSpan(op, index, n); err != nil {
		return err
	}
	if index+n > MaxPages {
		return fmt.Errorf("extentfs: %s(index=%d, n=%d): range ends past the maximum file size of %d pages: %w",
			op, index, n, MaxPages, syscall.EFBIG)
	}
	return nil
}

// checkSpan rejects a negative index, a non-positive count and a range whose
// end overflows, without limiting it to MaxPages.
func checkSpan(op string, index, n int64) error {
	if index < 0 || n <= 0 || index > math.MaxInt64-n {
		return fmt.Errorf("extentfs: %s(index=%d, n=%d): invalid range: %w", op, index, n, syscall.EINVAL)
	}
	return nil
}

func checkIndex(op string, index int64) error {
	if index < 0 {
		return fmt.Errorf("extentfs: %s(index=%d): negative index: %w", op, index, syscall.EINVAL)
	}
	return nil
}

func errReleased(op string) error {
	return fmt.Errorf("extentfs: %s: file already released: %w", op, syscall.EIO)
}
