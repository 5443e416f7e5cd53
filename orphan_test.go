package holefs_test

import (
	"testing"
	"time"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

// checkImage runs fsck on a closed image and returns its report, failing
// the test on any error finding.
func checkImage(t *testing.T, dir string) *meta.Report {
	t.Helper()
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	must(t, err)
	defer img.Close()
	rep, err := meta.Check(img, meta.CheckOptions{})
	must(t, err)
	if _, left := rep.Errors(); left > 0 {
		t.Errorf("fsck: %d errors: %v", left, rep.Findings)
	}
	return rep
}

// TestNoOrphansAfterClose checks that a file unlinked while open is freed
// by the time Close returns, however its last reference went: fsck of the
// closed image finds no orphan and no block in use.
func TestNoOrphansAfterClose(t *testing.T) {
	tests := []struct {
		name string
		// do unlinks "f", written and open as h, and may close h.
		do func(t *testing.T, fsys *holefs.FS, h *holefs.File)
	}{
		{"closed then removed", func(t *testing.T, fsys *holefs.FS, h *holefs.File) {
			must(t, h.Close())
			must(t, fsys.Remove("f"))
		}},
		{"removed then closed", func(t *testing.T, fsys *holefs.FS, h *holefs.File) {
			must(t, fsys.Remove("f"))
			must(t, h.Close())
		}},
		{"still open at Close", func(t *testing.T, fsys *holefs.FS, h *holefs.File) {
			must(t, fsys.Remove("f"))
		}},
		{"times set after the last reference", func(t *testing.T, fsys *holefs.FS, h *holefs.File) {
			// What the kernel does through a mount: it keeps the inode
			// by node ID and flushes its cached times when it evicts it.
			in, err := fsys.VFS().Lookup("f", false)
			must(t, err)
			must(t, h.Close())
			must(t, fsys.Remove("f"))
			now := time.Now()
			must(t, in.Setattr(vfs.SetAttr{Valid: vfs.SetMtime | vfs.SetAtime, Mtime: now, Atime: now}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mkImage(t, 64<<20)
			fsys := openImage(t, dir)
			h, err := fsys.Create("f")
			must(t, err)
			_, err = h.Write(make([]byte, 1<<20))
			must(t, err)
			must(t, h.Sync())
			tt.do(t, fsys, h)
			must(t, fsys.Close())
			rep := checkImage(t, dir)
			if rep.Orphans != 0 || rep.Files != 0 || rep.Owned != 0 {
				t.Errorf("after Close: %d orphans, %d files, %d blocks in use; want none: %v", rep.Orphans, rep.Files, rep.Owned, rep.Findings)
			}
		})
	}
}
