package holefs_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// TestMkfsForceRefusesOpenImage checks that Mkfs with Force refuses, with
// EBUSY and a message naming the fix, an image a process holds (open for
// writing, or for reading as fsck does), without taking it from its
// holder: the holder goes on and its data is all there afterwards; once
// closed, the image can be replaced.
func TestMkfsForceRefusesOpenImage(t *testing.T) {
	tests := []struct {
		name string
		hold func(t *testing.T, dir string) (release func())
	}{
		{"open", func(t *testing.T, dir string) func() {
			fsys := openImage(t, dir)
			return func() { must(t, fsys.Close()) }
		}},
		{"open read-only", func(t *testing.T, dir string) func() {
			img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
			must(t, err)
			return func() { must(t, img.Close()) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mkImage(t, 16<<20)
			fsys := openImage(t, dir)
			writeFile(t, fsys, "kept", []byte("still here"), true)
			must(t, fsys.Close())

			release := tt.hold(t, dir)
			err := holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 16 << 20, Force: true})
			if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "in use by this process: unmount it (holefs umount) or close it first") {
				t.Errorf("Mkfs --force of an open image: %v; want EBUSY naming the fix", err)
			}
			release()

			fsys = openImage(t, dir)
			if b, err := fsys.ReadFile("kept"); err != nil || string(b) != "still here" {
				t.Errorf("after the refused Mkfs: %q, %v", b, err)
			}
			must(t, fsys.Close())
			must(t, holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 16 << 20, Force: true}))
			fsys = openImage(t, dir)
			if _, err := fsys.Stat("kept"); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("after Mkfs --force of the closed image: stat kept: %v, want ENOENT", err)
			}
			must(t, fsys.Close())
		})
	}
}
