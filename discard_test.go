package holefs_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

// dataBytes returns the disk space an image's data file takes (st_blocks).
func dataBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(dir, "data"), &st))
	return st.Blocks * 512
}

const bigFile = 2 << 20

// TestDiscard checks that the blocks a commit frees are punched out of the
// image's data file (its st_blocks shrink by at least what was freed) by
// default and kept with NoDiscard, that blocks a clone still shares are
// not punched, and that the image stays clean and its other files intact.
func TestDiscard(t *testing.T) {
	tests := []struct {
		name      string
		noDiscard bool
		clone     bool // keep a clone of the removed file
		wantFreed bool
	}{
		{"discard", false, false, true},
		{"no discard", true, false, false},
		{"discard, blocks still shared", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mkImage(t, 16<<20)
			fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1, NoDiscard: tt.noDiscard})
			must(t, err)
			data := pattern(7, bigFile)
			writeFile(t, fsys, "big", data, true)
			writeFile(t, fsys, "small", []byte("kept"), true)
			if tt.clone {
				src, err := fsys.OpenFile("big", unix.O_RDONLY, 0)
				must(t, err)
				dst, err := fsys.Create("copy")
				must(t, err)
				must(t, src.Clone(dst, 0, 0, bigFile))
				must(t, dst.Sync())
				must(t, src.Close())
				must(t, dst.Close())
			}
			before := dataBytes(t, dir)
			must(t, fsys.Remove("big"))
			must(t, fsys.Sync())
			after := dataBytes(t, dir)
			if freed := before - after; tt.wantFreed && freed < bigFile || !tt.wantFreed && freed > 0 {
				t.Errorf("data file took %d bytes, %d after removing an %d-byte file and syncing (want the file's blocks freed: %v)",
					before, after, bigFile, tt.wantFreed)
			}
			if blocks, failed := fsys.Discarded(); tt.wantFreed != (blocks >= bigFile/4096) || failed != 0 {
				t.Errorf("Discarded: %d blocks, %d failures", blocks, failed)
			}
			must(t, fsys.Close())
			checkImage(t, dir)
			fsys = openImage(t, dir)
			defer fsys.Close()
			if b, err := fsys.ReadFile("small"); err != nil || string(b) != "kept" {
				t.Errorf("small after reopening: %q, %v", b, err)
			}
			if tt.clone {
				if b, err := fsys.ReadFile("copy"); err != nil || !bytes.Equal(b, data) {
					t.Errorf("the clone after reopening: %d bytes, %v; want the removed file's data", len(b), err)
				}
			}
		})
	}
}

// TestTrim checks that FS.Trim gives the free blocks of an image made
// without discard back to the host, and that an orphan's blocks are
// discarded by the Open that frees them.
func TestTrim(t *testing.T) {
	t.Run("trim", func(t *testing.T) {
		dir := mkImage(t, 16<<20)
		fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1, NoDiscard: true})
		must(t, err)
		defer fsys.Close()
		writeFile(t, fsys, "big", pattern(1, bigFile), true)
		writeFile(t, fsys, "small", []byte("kept"), true)
		must(t, fsys.Remove("big"))
		before := dataBytes(t, dir)
		n, err := fsys.Trim()
		must(t, err)
		after := dataBytes(t, dir)
		if n < bigFile || before-after < bigFile {
			t.Errorf("Trim: %d bytes trimmed, data file %d -> %d bytes; want at least %d freed", n, before, after, bigFile)
		}
		if b, err := fsys.ReadFile("small"); err != nil || string(b) != "kept" {
			t.Errorf("small after Trim: %q, %v", b, err)
		}
	})
	t.Run("orphan freed at open", func(t *testing.T) {
		dir := mkImage(t, 16<<20)
		fsys := openImage(t, dir)
		h, err := fsys.Create("orphan")
		must(t, err)
		_, err = h.Write(pattern(2, bigFile))
		must(t, err)
		must(t, fsys.Remove("orphan"))
		must(t, fsys.Sync())
		crashed := crashCopy(t, dir) // the image as a crash leaves it: an orphan
		must(t, h.Close())
		must(t, fsys.Close())
		before := dataBytes(t, crashed)
		fsys = openImage(t, crashed)
		must(t, fsys.Close())
		if after := dataBytes(t, crashed); before-after < bigFile {
			t.Errorf("opening an image with an %d-byte orphan: data file %d -> %d bytes", bigFile, before, after)
		}
		if rep := checkImage(t, crashed); rep.Orphans != 0 || rep.Owned != 0 {
			t.Errorf("after open: %d orphans, %d blocks in use", rep.Orphans, rep.Owned)
		}
	})
}
