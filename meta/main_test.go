package meta

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/holefs/holefs/internal/lockcheck"
)

// holdEnv names the image a re-executed test binary holds open instead of
// running the tests (see holdImage).
const holdEnv = "HOLEFS_META_TEST_HOLD"

// TestMain turns the lock-order checker on: the journal's commit lock is
// a ranked lock. Run with holdEnv set, it is holdImage's holder.
func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		os.Exit(hold(dir, os.Getenv(holdEnv+"_RO") != ""))
	}
	lockcheck.EnableForTests()
	os.Exit(m.Run())
}

// hold opens the image at dir, says so on stdout, and keeps it open until
// stdin is closed.
func hold(dir string, readOnly bool) int {
	img, err := Open(dir, OpenOptions{ReadOnly: readOnly})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
	if err := img.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
