package meta

import (
	"os"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

// TestMain turns the lock-order checker on: the journal's commit lock is
// a ranked lock.
func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	os.Exit(m.Run())
}
