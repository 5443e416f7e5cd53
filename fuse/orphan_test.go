package fuse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// TestNoOrphansAfterUnmount checks that what was removed through the
// mount, in every cache mode, is gone from the image once unmounting and
// Close return: fsck finds no orphan (before the fix, the kernel's SETATTR
// flushing the times of an evicted inode brought every removed file back
// as one) and no block in use.
func TestNoOrphansAfterUnmount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE on this machine (%v): load the fuse module or give the container /dev/fuse", err)
	}
	for _, mode := range []CacheMode{CacheWriteback, CacheWritethrough, CacheDirect} {
		t.Run(mode.String(), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			if err := holefs.Mkfs(img, holefs.MkfsOptions{SizeBytes: 256 << 20}); err != nil {
				t.Fatal(err)
			}
			fsys, err := holefs.Open(img, holefs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			srv, err := Mount(dir, fsys, Options{Cache: mode})
			if err != nil {
				_ = fsys.Close()
				if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "fusermount") {
					t.Skipf("mounting is not permitted here: %v", err)
				}
				t.Fatal(err)
			}
			mounted := true
			t.Cleanup(func() {
				if mounted {
					_ = srv.Detach()
					<-srv.Done()
					_ = fsys.Close()
				}
			})
			tree := filepath.Join(dir, "tree")
			for i := range 20 {
				sub := filepath.Join(tree, "d"+itoa(i))
				if err := os.MkdirAll(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				for j := range 10 {
					if err := os.WriteFile(filepath.Join(sub, "f"+itoa(j)), pattern(byte(j), 5000*j), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A file unlinked while open, written after, closed before
			// unmounting.
			fd := openT(t, filepath.Join(dir, "open"), syscall.O_RDWR|syscall.O_CREAT, 0o644)
			if err := syscall.Unlink(filepath.Join(dir, "open")); err != nil {
				t.Fatal(err)
			}
			pwrite(t, fd, pattern(1, 1<<20), 0)
			if err := os.RemoveAll(tree); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Close(fd); err != nil {
				t.Fatal(err)
			}
			if err := srv.Unmount(); err != nil {
				t.Fatal(err)
			}
			mounted = false
			if err := fsys.Close(); err != nil {
				t.Fatal(err)
			}
			m, err := meta.Open(img, meta.OpenOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rep, err := meta.Check(m, meta.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Orphans != 0 || rep.Inodes != 1 || rep.Owned != 0 {
				t.Errorf("fsck after unmount: %d orphans, %d inodes, %d blocks in use; want 0, 1 (the root), 0", rep.Orphans, rep.Inodes, rep.Owned)
			}
		})
	}
}
