package ext2fs_test

import (
	"os"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on: taking the allocator lock
// before a map lock, or two map locks out of id order, panics.
func TestMain(m *testing.M) {
	lockcheck.Enable()
	os.Exit(m.Run())
}
