package holefs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

// ext2Block reads block b of an image's data file.
func ext2Block(t *testing.T, dir string, b uint32) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "data"))
	must(t, err)
	defer f.Close()
	buf := make([]byte, pg)
	_, err = f.ReadAt(buf, int64(b)*pg)
	must(t, err)
	return buf
}

func putExt2Block(t *testing.T, dir string, b uint32, buf []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(buf, int64(b)*pg)
	must(t, err)
}

// setSlot sets pointer slot i of the indirect block b.
func setSlot(t *testing.T, dir string, b uint32, i int, p uint32) {
	t.Helper()
	buf := ext2Block(t, dir, b)
	binary.LittleEndian.PutUint32(buf[4*i:], p)
	putExt2Block(t, dir, b, buf)
}

func slotOf(t *testing.T, dir string, b uint32, i int) uint32 {
	t.Helper()
	return binary.LittleEndian.Uint32(ext2Block(t, dir, b)[4*i:])
}

func iblockOf(t *testing.T, dir string, ino uint64) [meta.NRoots]uint32 {
	t.Helper()
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	must(t, err)
	defer img.Close()
	snap, err := img.Load(nil)
	must(t, err)
	return snap.Inodes[ino].IBlock
}

// TestExt2Fsck: each corruption of an ext2 image's block maps on the data
// device is found by fsck, named by inode, page and pointer path; an
// error keeps the image from opening (EUCLEAN), a warning does not; and
// Repair leaves an image that checks clean, opens, and keeps every page
// the corruption did not touch.
func TestExt2Fsck(t *testing.T) {
	tmpl := mkExt2Image(t, 4<<20)
	fsys := openImage(t, tmpl)
	f := create(t, fsys, "f")
	fPages := [][2]int64{{0, 3}, {ext2Ind, 2}, {ext2DInd, 2}}
	for _, r := range fPages {
		writeExt2Pages(t, f, 1, r[0], r[1])
	}
	must(t, f.Close())
	g := create(t, fsys, "g")
	writeExt2Pages(t, g, 2, 0, 2)
	must(t, g.Close())
	ino := func(name string) uint64 {
		st, err := fsys.Stat(name)
		must(t, err)
		return st.Sys().(*vfs.Attr).Ino
	}
	fIno, gIno := ino("f"), ino("g")
	must(t, fsys.Close())
	fRoots, gRoots := iblockOf(t, tmpl, fIno), iblockOf(t, tmpl, gIno)
	ind, dind := fRoots[12], fRoots[13]
	leaf := slotOf(t, tmpl, dind, 0)

	tests := []struct {
		name    string
		corrupt func(dir string)
		sev     meta.Severity
		kind    meta.Kind
		ino     uint64
		page    int64
		problem string
		lost    []int64 // f's pages that repair turns into holes (or another file's data)
		gLost   []int64 // g's
	}{
		{"pointer past the device", func(d string) { setSlot(t, d, ind, 0, 5000) },
			meta.Error, meta.KindBlockMap, fIno, ext2Ind,
			fmt.Sprintf("i_block[12] -> block %d slot 0 points at block 5000, past the device's 1024 blocks", ind), []int64{ext2Ind}, nil},
		{"garbage indirect block", func(d string) { putExt2Block(t, d, ind, bytes.Repeat([]byte{0xff}, pg)) },
			meta.Error, meta.KindBlockMap, fIno, ext2Ind,
			fmt.Sprintf("i_block[12] points at block %d, which is no indirect block: 1024 of its pointers are past the device", ind), []int64{ext2Ind, ext2Ind + 1}, nil},
		{"data block owned twice", func(d string) { setSlot(t, d, ind, 1, gRoots[0]) },
			meta.Error, meta.KindShared, gIno, 0,
			// The lower inode keeps the block: g loses its page,
			// f's page 13 shows g's data (which fsck cannot know).
			fmt.Sprintf("i_block[0] points at block %d, which is inode %d page %d", gRoots[0], fIno, ext2Ind+1), []int64{ext2Ind + 1}, []int64{0}},
		{"indirect block in a cycle", func(d string) { setSlot(t, d, dind, 1, dind) },
			meta.Error, meta.KindShared, fIno, ext2DInd + 1024,
			fmt.Sprintf("i_block[13] -> block %d slot 1 points at indirect block %d, which is inode %d's indirect block (depth 2) at page %d", dind, dind, fIno, ext2DInd), nil, nil},
		{"page past EOF", func(d string) { setSlot(t, d, leaf, 1000, 1000) },
			meta.Warning, meta.KindPastEOF, fIno, ext2DInd + 1000,
			fmt.Sprintf("i_block[13] -> block %d slot 0 -> block %d slot 1000 links block 1000 past the end of the file (%d pages)", dind, leaf, ext2DInd+2), nil, nil},
		{"empty indirect block", func(d string) { putExt2Block(t, d, leaf, make([]byte, pg)) },
			meta.Info, meta.KindBlockMap, fIno, ext2DInd,
			fmt.Sprintf("i_block[13] -> block %d slot 0: indirect block %d (depth 1) has no pointer", dind, leaf), []int64{ext2DInd, ext2DInd + 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := crashCopy(t, tmpl)
			tt.corrupt(dir)
			rep := fsckExt2(t, dir, false)
			var found []string
			hit := false
			for _, fd := range rep.Findings {
				found = append(found, fd.String())
				hit = hit || (fd.Severity == tt.sev && fd.Kind == tt.kind && fd.Ino == tt.ino && fd.Page == tt.page && fd.Problem == tt.problem)
			}
			if !hit {
				t.Fatalf("fsck did not report %v [%s] inode %d page %d: %q; found:\n%s", tt.sev, tt.kind, tt.ino, tt.page, tt.problem, strings.Join(found, "\n"))
			}
			fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1})
			if tt.sev == meta.Error {
				if !errors.Is(err, syscall.EUCLEAN) {
					t.Fatalf("open before repair: %v, want EUCLEAN", err)
				}
			} else {
				// The mount drops what a warning is about.
				must(t, err)
				must(t, fsys.Close())
				fsckExt2Clean(t, dir, "after a mount")
			}
			fsckExt2(t, dir, true)
			fsckExt2Clean(t, dir, "after repair")
			fsys = openImage(t, dir)
			defer fsys.Close()
			lost := map[int64]bool{}
			for _, p := range tt.lost {
				lost[p] = true
			}
			checkExt2Pages(t, fsys, "f", 1, fPages, lost)
			gLost := map[int64]bool{}
			for _, p := range tt.gLost {
				gLost[p] = true
			}
			checkExt2Pages(t, fsys, "g", 2, [][2]int64{{0, 2}}, gLost)
		})
	}
}

// checkExt2Pages reads the runs of pages of a file written by
// writeExt2Pages: each holds its data; a lost one anything else.
func checkExt2Pages(t *testing.T, fsys *holefs.FS, name string, seed byte, runs [][2]int64, lost map[int64]bool) {
	t.Helper()
	f := openFile(t, fsys, name, os.O_RDONLY)
	buf := make([]byte, pg)
	for _, r := range runs {
		for p := r[0]; p < r[0]+r[1]; p++ {
			_, err := f.ReadAt(buf, p*pg)
			must(t, err)
			if got := bytes.Equal(buf, ext2Page(seed, p)); got == lost[p] {
				t.Errorf("%s page %d: holds its data %v after repair, want %v", name, p, got, !lost[p])
			}
		}
	}
}
