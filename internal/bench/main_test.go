package bench

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on (off for benchmark runs) and
// checks that every workload closed its filesystems and timer goroutines.
func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	goleak.VerifyTestMain(m)
}
