package fuse

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTmpDebug(t *testing.T) {
	m := mountFS(t, Options{Debug: true})
	os.WriteFile(m.path("f"), []byte("abc"), 0o644)
	time.Sleep(10 * time.Millisecond)
	t.Log("TRUNCATE")
	unix.Truncate(m.path("f"), 3)
	t.Log("CHOWN")
	unix.Chmod(m.path("f"), 0o6755)
	unix.Lchown(m.path("f"), -1, -1)
	t.Log("END")
}
