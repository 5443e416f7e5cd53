package torture

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on and checks that every run
// stopped its goroutines and closed its filesystem.
func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	goleak.VerifyTestMain(m)
}
