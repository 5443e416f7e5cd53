package crash

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on and checks that every run
// closed its filesystems and stopped their goroutines.
func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	goleak.VerifyTestMain(m)
}
