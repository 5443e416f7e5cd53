package ext2fs_test

import (
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
)

// The first page under each indirect root.
const (
	ind  = ext2fs.NDirect
	dind = ind + ext2fs.PtrsPerBlock
	tind = dind + ext2fs.PtrsPerBlock*ext2fs.PtrsPerBlock
)

func newFS(t *testing.T, nblocks int64) (*ext2fs.FS, blockdev.Device) {
	t.Helper()
	dev := blockdev.NewMemory(nblocks)
	fs, err := ext2fs.New(dev)
	if err != nil {
		t.Fatal(err)
	}
	return fs, dev
}

// write allocates and links [index, index+n), as writeback does.
func write(t *testing.T, f blockmap.File, index, n int64) {
	t.Helper()
	if err := f.Allocate(index, n); err != nil {
		t.Fatalf("allocate(%d, %d): %v", index, n, err)
	}
	if err := f.MarkWritten(index, n); err != nil {
		t.Fatalf("mark written(%d, %d): %v", index, n, err)
	}
}

func check(t *testing.T, fs *ext2fs.FS) {
	t.Helper()
	if err := fs.Check(); err != nil {
		t.Fatal(err)
	}
}

// walk reads a file's tree back from the device alone.
func walk(t *testing.T, dev blockdev.Device, f blockmap.File) (pages map[int64]uint32, depths []int) {
	t.Helper()
	pages = make(map[int64]uint32)
	err := ext2fs.Walk(dev, f.(*ext2fs.File).Roots(),
		func(p int64, b uint32) { pages[p] = b },
		func(_ uint32, d int) { depths = append(depths, d) })
	if err != nil {
		t.Fatal(err)
	}
	return pages, depths
}

// TestBoundaries writes one page at each edge of the direct pointers and
// of the single-, double- and triple-indirect trees: the page must be
// mapped, on the device under exactly the indirect blocks its tree needs,
// and a truncate at it must free exactly those blocks.
func TestBoundaries(t *testing.T) {
	tests := []struct {
		page   int64
		depths []int // indirect blocks on the device, in walk order
	}{
		{0, nil},
		{ind - 1, nil},
		{ind, []int{1}},
		{dind - 1, []int{1}},
		{dind, []int{2, 1}},
		{tind - 1, []int{2, 1}},
		{tind, []int{3, 2, 1}},
		{ext2fs.MaxPages - 1, []int{3, 2, 1}},
	}
	for _, tt := range tests {
		fs, dev := newFS(t, 64)
		_, free0 := fs.Statfs()
		f := fs.NewFile(1)
		write(t, f, tt.page, 1)
		e, err := f.Lookup(tt.page, 1)
		if err != nil || e.Kind != blockmap.Mapped || e.Count != 1 {
			t.Fatalf("page %d: lookup = %+v, %v; want one mapped page", tt.page, e, err)
		}
		if got, want := f.Blocks(), int64(1+len(tt.depths)); got != want {
			t.Errorf("page %d: Blocks = %d, want %d", tt.page, got, want)
		}
		pages, depths := walk(t, dev, f)
		if len(pages) != 1 || int64(pages[tt.page]) != e.Block {
			t.Errorf("page %d: device tree maps %v, want only page %d at block %d", tt.page, pages, tt.page, e.Block)
		}
		if !equal(depths, tt.depths) {
			t.Errorf("page %d: indirect blocks of depths %v on the device, want %v", tt.page, depths, tt.depths)
		}
		check(t, fs)
		if err := f.Truncate(tt.page + 1); err != nil || f.Blocks() != int64(1+len(tt.depths)) {
			t.Fatalf("page %d: truncate past it: %v, Blocks %d", tt.page, err, f.Blocks())
		}
		if err := f.Truncate(tt.page); err != nil {
			t.Fatal(err)
		}
		if _, free := fs.Statfs(); free != free0 || f.Blocks() != 0 || f.(*ext2fs.File).Roots() != [ext2fs.NRoots]uint32{} {
			t.Errorf("page %d: after truncate: free %d (want %d), Blocks %d, roots %v", tt.page, free, free0, f.Blocks(), f.(*ext2fs.File).Roots())
		}
		check(t, fs)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTruncate truncates a file of 2100 pages (the single-indirect tree
// and two leaves of the double one) at each boundary: the blocks left are
// the data pages below the cut and the indirect blocks they still need.
func TestTruncate(t *testing.T) {
	const n = 2100
	tests := []struct {
		index, blocks int64
	}{
		{0, 0},
		{5, 5},
		{ind, ind},
		{ind + 1, ind + 1 + 1},
		{dind, dind + 1},
		{dind + 1, dind + 1 + 1 + 2},
		{dind + 1024, dind + 1024 + 1 + 2},
		{dind + 1025, dind + 1025 + 1 + 3},
		{n, n + 4},
		{3000, n + 4},
	}
	for _, tt := range tests {
		fs, dev := newFS(t, 4096)
		total, _ := fs.Statfs()
		f := fs.NewFile(1)
		write(t, f, 0, n)
		if f.Blocks() != n+4 {
			t.Fatalf("Blocks = %d, want %d", f.Blocks(), n+4)
		}
		if err := f.Truncate(tt.index); err != nil {
			t.Fatal(err)
		}
		if f.Blocks() != tt.blocks {
			t.Errorf("truncate(%d): Blocks = %d, want %d", tt.index, f.Blocks(), tt.blocks)
		}
		if _, free := fs.Statfs(); free != total-tt.blocks {
			t.Errorf("truncate(%d): %d free blocks, want %d", tt.index, free, total-tt.blocks)
		}
		pages, _ := walk(t, dev, f)
		if want := min(tt.index, n); int64(len(pages)) != want {
			t.Errorf("truncate(%d): device tree maps %d pages, want %d", tt.index, len(pages), want)
		}
		if next, _ := f.NextData(min(tt.index, n)); next != -1 {
			t.Errorf("truncate(%d): data at page %d", tt.index, next)
		}
		check(t, fs)
	}
}

// TestReservation: a block Allocate reserves reads as Unwritten and is not
// on the device until MarkWritten links it; a truncate frees it unlinked.
func TestReservation(t *testing.T) {
	for _, page := range []int64{3, ind + 7, dind + 9, tind + 11} {
		fs, dev := newFS(t, 64)
		_, free0 := fs.Statfs()
		f := fs.NewFile(1)
		if err := f.Allocate(page, 2); err != nil {
			t.Fatal(err)
		}
		e, _ := f.Lookup(page, 2)
		if e.Kind != blockmap.Unwritten || e.Count != 2 {
			t.Fatalf("page %d: reserved pages look up as %+v, want 2 unwritten", page, e)
		}
		if pages, _ := walk(t, dev, f); len(pages) != 0 {
			t.Fatalf("page %d: reserved blocks on the device before MarkWritten: %v", page, pages)
		}
		if next, _ := f.NextData(0); next != -1 {
			t.Fatalf("page %d: NextData finds reserved page %d", page, next)
		}
		check(t, fs)
		if err := f.MarkWritten(page, 1); err != nil {
			t.Fatal(err)
		}
		pages, _ := walk(t, dev, f)
		if len(pages) != 1 || int64(pages[page]) != e.Block {
			t.Fatalf("page %d: device maps %v after MarkWritten of one page, want block %d", page, pages, e.Block)
		}
		if e2, _ := f.Lookup(page+1, 1); e2.Kind != blockmap.Unwritten {
			t.Fatalf("page %d: second page %+v, want still unwritten", page, e2)
		}
		check(t, fs)
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, free := fs.Statfs(); free != free0 {
			t.Errorf("page %d: %d free after truncate, want %d", page, free, free0)
		}
		check(t, fs)
	}
}

// TestLookup: runs stop where the kind or the block run changes; a hole
// reaches to the next page with a block, across missing indirect blocks.
func TestLookup(t *testing.T) {
	fs, _ := newFS(t, 256)
	f := fs.NewFile(1)
	write(t, f, 0, 4)
	if err := f.Allocate(4, 2); err != nil {
		t.Fatal(err)
	}
	write(t, f, tind+5, 1)
	tests := []struct {
		index, max int64
		want       blockmap.Extent
	}{
		{0, 100, blockmap.Extent{Page: 0, Count: 4, Kind: blockmap.Mapped, Block: 1}},
		{2, 1, blockmap.Extent{Page: 2, Count: 1, Kind: blockmap.Mapped, Block: 3}},
		{3, 100, blockmap.Extent{Page: 3, Count: 1, Kind: blockmap.Mapped, Block: 4}},
		{4, 100, blockmap.Extent{Page: 4, Count: 2, Kind: blockmap.Unwritten, Block: 5}},
		{6, ext2fs.MaxPages, blockmap.Extent{Page: 6, Count: tind + 5 - 6, Kind: blockmap.Hole, Block: -1}},
		{6, 10, blockmap.Extent{Page: 6, Count: 10, Kind: blockmap.Hole, Block: -1}},
		{tind + 6, 10, blockmap.Extent{Page: tind + 6, Count: 10, Kind: blockmap.Hole, Block: -1}},
		{ext2fs.MaxPages, 3, blockmap.Extent{Page: ext2fs.MaxPages, Count: 3, Kind: blockmap.Hole, Block: -1}},
	}
	for _, tt := range tests {
		got, err := f.Lookup(tt.index, tt.max)
		if err != nil || got != tt.want {
			t.Errorf("Lookup(%d, %d) = %+v, %v; want %+v", tt.index, tt.max, got, err, tt.want)
		}
	}
	if e, _ := f.Lookup(tind+5, 1); e.Kind != blockmap.Mapped {
		t.Errorf("triple-indirect page: %+v", e)
	}
	for _, tt := range []struct{ index, want int64 }{{0, 0}, {4, tind + 5}, {tind + 6, -1}} {
		if got, err := f.NextData(tt.index); err != nil || got != tt.want {
			t.Errorf("NextData(%d) = %d, %v; want %d", tt.index, got, err, tt.want)
		}
	}
}

// TestErrors: the errno of each refused call.
func TestErrors(t *testing.T) {
	fs, _ := newFS(t, 16)
	f := fs.NewFile(1)
	tests := []struct {
		name string
		call func() error
		want syscall.Errno
	}{
		{"punch", func() error { return f.Punch(0, 1) }, syscall.EOPNOTSUPP},
		{"zero range", func() error { return f.ZeroRange(0, 1) }, syscall.EOPNOTSUPP},
		{"collapse", func() error { return f.Collapse(0, 1) }, syscall.EOPNOTSUPP},
		{"insert", func() error { return f.Insert(0, 1) }, syscall.EOPNOTSUPP},
		{"allocate past the tree", func() error { return f.Allocate(ext2fs.MaxPages-1, 2) }, syscall.EFBIG},
		{"allocate at the tree's end", func() error { return f.Allocate(ext2fs.MaxPages, 1) }, syscall.EFBIG},
		{"mark written past the tree", func() error { return f.MarkWritten(ext2fs.MaxPages, 1) }, syscall.EFBIG},
		{"negative index", func() error { return f.Allocate(-1, 1) }, syscall.EINVAL},
		{"empty range", func() error { return f.Allocate(0, 0) }, syscall.EINVAL},
		{"lookup of nothing", func() error { _, err := f.Lookup(0, 0); return err }, syscall.EINVAL},
		{"truncate negative", func() error { return f.Truncate(-1) }, syscall.EINVAL},
		{"no space", func() error { return f.Allocate(0, 16) }, syscall.ENOSPC},
		// 15 data blocks fit the 15 free, not with the single-indirect block.
		{"no space for the indirect block", func() error { return f.Allocate(1, 15) }, syscall.ENOSPC},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, free := fs.Statfs(); free != 15 || f.Blocks() != 0 {
		t.Errorf("failed calls changed the store: %d free, %d blocks", free, f.Blocks())
	}
	if err := f.Allocate(0, 14); err != nil { // 12 direct, 2 under the indirect block: all 15
		t.Fatal(err)
	}
	check(t, fs)
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(0, 1); !errors.Is(err, syscall.EIO) {
		t.Errorf("allocate after release: %v, want EIO", err)
	}
	if _, free := fs.Statfs(); free != 15 {
		t.Errorf("release left %d free, want 15", free)
	}
	big := blockdev.NewMemory(ext2fs.MaxBlocks + 1)
	if _, err := ext2fs.New(big); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("device of 2^32+1 blocks: %v, want EFBIG", err)
	}
}

// TestReuse: a block a truncate frees goes to the very next allocation,
// of any file, as the package doc promises, so stale mappings show.
func TestReuse(t *testing.T) {
	fs, _ := newFS(t, 64)
	a, b := fs.NewFile(1), fs.NewFile(2)
	write(t, a, 0, 3)
	e, _ := a.Lookup(1, 1)
	if err := a.Truncate(1); err != nil {
		t.Fatal(err)
	}
	write(t, b, 0, 1)
	if got, _ := b.Lookup(0, 1); got.Block != e.Block {
		t.Errorf("file 2 got block %d, want the freed block %d", got.Block, e.Block)
	}
	check(t, fs)
}

// TestConcurrent runs lookups against writers and truncates of other
// files under -race; the store must check clean after.
func TestConcurrent(t *testing.T) {
	fs, _ := newFS(t, 1<<14)
	var wg sync.WaitGroup
	for w := range 4 {
		f := fs.NewFile(uint64(w + 1))
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range int64(200) {
				p := (i * 37) % 1500
				if err := f.Allocate(p, 3); err != nil {
					t.Error(err)
					return
				}
				if err := f.MarkWritten(p, 3); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 49 {
					if err := f.Truncate(p / 2); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range int64(400) {
				if _, err := f.Lookup((i*13)%1500, 64); err != nil {
					t.Error(err)
					return
				}
				_, _ = f.NextData(i % 1500)
			}
		}()
	}
	wg.Wait()
	check(t, fs)
}

// TestTruncateWriteError: a truncate whose write of an indirect block
// fails changes nothing: the map, the device's tree and the free count
// are as before, Check finds no leaked or dangling block, and the same
// truncate succeeds once the device does. Failing the double-indirect
// root, written after the leaf below it, makes the undo write the leaf
// back.
func TestTruncateWriteError(t *testing.T) {
	const n = dind + 1500 // two leaves under the double-indirect root
	tests := []struct {
		name string
		fail func(f *ext2fs.File, dev blockdev.Device) int64 // the block whose write fails
	}{
		{"double-indirect root", func(f *ext2fs.File, _ blockdev.Device) int64 { return int64(f.Roots()[ext2fs.NDirect+1]) }},
		{"its first leaf", func(f *ext2fs.File, dev blockdev.Device) int64 {
			buf := make([]byte, blockmap.PageSize)
			if err := dev.ReadBlocks(buf, int64(f.Roots()[ext2fs.NDirect+1])); err != nil {
				t.Fatal(err)
			}
			ptr, err := ext2fs.DecodeIndirect(buf, dev.NumBlocks())
			if err != nil {
				t.Fatal(err)
			}
			return int64(ptr[0])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := blockdev.NewFaulty(blockdev.NewMemory(4096), blockdev.FaultOptions{})
			fs, err := ext2fs.New(dev)
			if err != nil {
				t.Fatal(err)
			}
			f := fs.NewFile(1)
			write(t, f, 0, n)
			blocks := f.Blocks()
			_, free := fs.Statfs()
			dev.FailWrite(tc.fail(f.(*ext2fs.File), dev), syscall.EIO)
			if err := f.Truncate(dind + 10); !errors.Is(err, syscall.EIO) {
				t.Fatalf("truncate with a failing indirect block: %v, want EIO", err)
			}
			dev.Clear()
			if _, nfree := fs.Statfs(); f.Blocks() != blocks || nfree != free {
				t.Errorf("after the failed truncate: %d blocks, %d free; want %d, %d", f.Blocks(), nfree, blocks, free)
			}
			if pages, _ := walk(t, dev, f); int64(len(pages)) != n {
				t.Errorf("after the failed truncate the device maps %d pages, want %d", len(pages), n)
			}
			if next, _ := f.NextData(n - 1); next != n-1 {
				t.Errorf("after the failed truncate the last page is gone: NextData = %d", next)
			}
			check(t, fs)
			if err := f.Truncate(dind + 10); err != nil {
				t.Fatal(err)
			}
			check(t, fs)
		})
	}
}
