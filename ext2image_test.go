package holefs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/vfs"
)

// Pages where ext2's i_block switches trees: the single-, double- and
// triple-indirect blocks start there.
const (
	ext2Ind  = 12
	ext2DInd = ext2Ind + 1024
	ext2TInd = ext2DInd + 1024*1024
)

func mkExt2Image(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	must(t, holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: size, Backend: holefs.BackendExt2}))
	return dir
}

// ext2Piece is a run of pages written with its own pattern.
type ext2Piece struct {
	page, n int64
	seed    byte
}

// ext2Pieces cross every boundary of the tree: direct to single, single
// to double and double to triple indirect.
var ext2Pieces = []ext2Piece{
	{0, 3, 1},
	{ext2Ind - 2, 4, 2},
	{ext2DInd - 3, 5, 3},
	{ext2TInd - 2, 4, 4},
}

func writePieces(t *testing.T, f *holefs.File, ps []ext2Piece) {
	t.Helper()
	for _, p := range ps {
		writeAt(t, f, pattern(p.seed, int(p.n*pg)), p.page*pg)
	}
}

// checkPieces reads back each piece (those at or past endPage must read
// as nothing: EOF) and a page of hole before each.
func checkPieces(t *testing.T, fsys *holefs.FS, name string, ps []ext2Piece, endPage int64) {
	t.Helper()
	f := openFile(t, fsys, name, syscall.O_RDONLY)
	for _, p := range ps {
		want := pattern(p.seed, int(p.n*pg))
		if p.page+p.n > endPage {
			want = want[:max(endPage-p.page, 0)*pg]
		}
		got := make([]byte, len(want))
		if n, err := f.ReadAt(got, p.page*pg); n != len(want) || (err != nil && n != len(want)) {
			t.Fatalf("%s: read pages [%d, +%d): %d bytes, %v", name, p.page, p.n, n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: pages [%d, +%d) differ after reopen", name, p.page, p.n)
		}
		if p.page > 0 && p.page < endPage && p.page != ext2Ind-2 {
			hole := make([]byte, pg)
			if _, err := f.ReadAt(hole, (p.page-1)*pg); err != nil || !bytes.Equal(hole, make([]byte, pg)) {
				t.Fatalf("%s: the hole before page %d does not read as zeros (%v)", name, p.page, err)
			}
		}
	}
}

func blocksOf(t *testing.T, fsys *holefs.FS, name string) int64 {
	t.Helper()
	st, err := fsys.Stat(name)
	must(t, err)
	return st.Sys().(*vfs.Attr).Blocks
}

// TestExt2ImageRoundTrip: files written across every boundary of the
// indirect tree, one of them truncated back into the double-indirect
// tree, read back the same after close and reopen, with the same block
// counts and the same space in use; and the truncated file's blocks are
// free again.
func TestExt2ImageRoundTrip(t *testing.T) {
	dir := mkExt2Image(t, 64<<20)
	fsys := openImage(t, dir)
	big := create(t, fsys, "big")
	writePieces(t, big, ext2Pieces)
	must(t, big.Sync())
	tr := create(t, fsys, "trunc")
	writePieces(t, tr, ext2Pieces)
	must(t, tr.Sync())
	const cut = ext2DInd - 1 // keeps 2 of piece 3's pages
	must(t, tr.Truncate(cut*pg))
	small := create(t, fsys, "small")
	writePieces(t, small, ext2Pieces[:1]) // not synced: Close commits it
	must(t, small.Close())
	must(t, big.Close())
	must(t, tr.Close())
	names := []string{"big", "trunc", "small"}
	blocks := map[string]int64{}
	for _, n := range names {
		blocks[n] = blocksOf(t, fsys, n)
	}
	// big: 16 data pages; 1 single-indirect block, the double-indirect
	// one and its two leaves, the triple-indirect chain of 3.
	if want := int64(16+7) * 8; blocks["big"] != want {
		t.Errorf("big owns %d 512-byte blocks, want %d (data and indirect blocks)", blocks["big"], want)
	}
	// Freed blocks are quarantined until the commit after the one that
	// freed them (copies of indirect blocks go in at a commit).
	must(t, fsys.Sync())
	must(t, fsys.Sync())
	_, total, free := fsys.Statfs()
	must(t, fsys.Close())
	fsckExt2Clean(t, dir, "after close")
	if rep := fsckExt2(t, dir, false); rep.Owned != total-free {
		t.Errorf("fsck counts %d blocks owned, the filesystem used %d", rep.Owned, total-free)
	}

	fsys = openImage(t, dir)
	defer fsys.Close()
	checkPieces(t, fsys, "big", ext2Pieces, ext2TInd+2)
	checkPieces(t, fsys, "trunc", ext2Pieces, cut)
	checkPieces(t, fsys, "small", ext2Pieces[:1], 3)
	for _, n := range names {
		if got := blocksOf(t, fsys, n); got != blocks[n] {
			t.Errorf("%s: %d blocks after reopen, %d before", n, got, blocks[n])
		}
	}
	if _, _, got := fsys.Statfs(); got != free {
		t.Errorf("%d free blocks after reopen, %d before", got, free)
	}
}

// TestExt2ImageBackend: the backend is the image's. Options.Backend may
// name it or nothing; naming the other is EINVAL, and mkfs refuses what
// ext2 images cannot have.
func TestExt2ImageBackend(t *testing.T) {
	ext2, extent := mkExt2Image(t, 1<<20), mkImage(t, 1<<20)
	tests := []struct {
		name, dir, backend string
		errno              syscall.Errno
	}{
		{"ext2 image, no backend", ext2, "", 0},
		{"ext2 image, ext2", ext2, holefs.BackendExt2, 0},
		{"ext2 image, extent", ext2, holefs.BackendExtent, syscall.EINVAL},
		{"extent image, ext2", extent, holefs.BackendExt2, syscall.EINVAL},
		{"extent image, memory", extent, holefs.BackendMemory, syscall.EINVAL},
	}
	for _, tt := range tests {
		fsys, err := holefs.Open(tt.dir, holefs.Options{Backend: tt.backend, CommitInterval: -1})
		if tt.errno == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			must(t, fsys.Close())
			continue
		}
		if !errors.Is(err, tt.errno) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.errno)
		}
		if err == nil {
			fsys.Close()
		}
	}
	for _, tt := range []struct {
		name  string
		opts  holefs.MkfsOptions
		errno syscall.Errno
	}{
		{"data checksums", holefs.MkfsOptions{Backend: holefs.BackendExt2, DataChecksums: true}, syscall.EINVAL},
		{"past 32-bit pointers", holefs.MkfsOptions{Backend: holefs.BackendExt2, SizeBytes: 1<<44 + 4096}, syscall.EFBIG},
		{"unknown backend", holefs.MkfsOptions{Backend: holefs.BackendMemory}, syscall.EINVAL},
	} {
		err := holefs.Mkfs(filepath.Join(t.TempDir(), "img"), tt.opts)
		if !errors.Is(err, tt.errno) {
			t.Errorf("mkfs %s: %v, want %v", tt.name, err, tt.errno)
		}
	}
}

// TestExt2ImageQuarantine: blocks a truncate freed are not reused before
// the commit that freed them is durable, so a crash copy shows the
// truncated file's committed pages with its own data, never another
// file's; and a full device finds them by committing (Allocate's reclaim).
func TestExt2ImageQuarantine(t *testing.T) {
	dir := mkExt2Image(t, 16*pg) // 15 data blocks
	fsys := openImage(t, dir)
	defer fsys.Close()
	victim := create(t, fsys, "victim")
	writeExt2Pages(t, victim, 1, 0, 8)
	must(t, victim.Sync())
	must(t, victim.Truncate(0)) // not committed: the durable map keeps the blocks
	thief, err := fsys.OpenFile("thief", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	must(t, err)
	defer thief.Close()
	writeExt2Pages(t, thief, 2, 0, 7) // on the device at once
	img := openImage(t, crashCopy(t, dir))
	checkExt2Pages(t, img, "victim", 1, [][2]int64{{0, 8}}, nil)
	must(t, img.Close())
	// 7 free blocks, 8 quarantined: 8 more fit only after a commit.
	more := create(t, fsys, "more")
	writeExt2Pages(t, more, 3, 0, 8)
	must(t, more.Sync())
	checkExt2Pages(t, fsys, "more", 3, [][2]int64{{0, 8}}, nil)
}

// TestExt2ImageFullDevice: on a device filled to ENOSPC, a truncate that
// changes a committed indirect block still commits: the copy of that block
// comes from the blocks kept for commits, which writes cannot take.
func TestExt2ImageFullDevice(t *testing.T) {
	dir := mkExt2Image(t, 256*pg) // reserve 8 blocks
	fsys := openImage(t, dir)
	defer fsys.Close()
	f := create(t, fsys, "f")
	var n int64
	for ; ; n++ {
		if _, err := f.WriteAt(ext2Page(1, n), n*pg); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("write page %d: %v, want ENOSPC at the end", n, err)
			}
			break
		}
		if n%16 == 15 {
			// Writeback allocates: keep the failure on the write.
			must(t, f.Sync())
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	must(t, f.Truncate(100*pg)) // clears slots of the committed single-indirect block
	must(t, f.Sync())
	must(t, fsys.Close())
	fsckExt2Clean(t, dir, "after the truncate")
	fsys = openImage(t, dir)
	defer fsys.Close()
	checkExt2Pages(t, fsys, "f", 1, [][2]int64{{0, 100}}, nil)
}
