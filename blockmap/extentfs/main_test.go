package extentfs_test

import (
	"os"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on, so any test that takes the
// allocator lock before an extent-map lock, or two extent-map locks out of
// id order, panics where it happens.
func TestMain(m *testing.M) {
	lockcheck.Enable()
	os.Exit(m.Run())
}
