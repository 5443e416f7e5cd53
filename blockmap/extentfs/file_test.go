package extentfs_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/extentfs"
)

func u(page, count, block int64) blockmap.Extent {
	return blockmap.Extent{Page: page, Count: count, Kind: blockmap.Unwritten, Block: block}
}

func m(page, count, block int64) blockmap.Extent {
	return blockmap.Extent{Page: page, Count: count, Kind: blockmap.Mapped, Block: block}
}

func hole(page, count int64) blockmap.Extent {
	return blockmap.Extent{Page: page, Count: count, Kind: blockmap.Hole, Block: -1}
}

// step is one operation on a file, so that cases read as scripts.
type step struct {
	op   string
	a, n int64
}

func (s step) String() string { return fmt.Sprintf("%s(%d, %d)", s.op, s.a, s.n) }

func alloc(i, n int64) step    { return step{"allocate", i, n} }
func write(i, n int64) step    { return step{"markwritten", i, n} }
func punch(i, n int64) step    { return step{"punch", i, n} }
func zero(i, n int64) step     { return step{"zerorange", i, n} }
func collapse(i, n int64) step { return step{"collapse", i, n} }
func insert(i, n int64) step   { return step{"insert", i, n} }
func trunc(i int64) step       { return step{"truncate", i, 0} }

func (s step) do(f *extentfs.File) error {
	switch s.op {
	case "allocate":
		return f.Allocate(s.a, s.n)
	case "markwritten":
		return f.MarkWritten(s.a, s.n)
	case "punch":
		return f.Punch(s.a, s.n)
	case "zerorange":
		return f.ZeroRange(s.a, s.n)
	case "collapse":
		return f.Collapse(s.a, s.n)
	case "insert":
		return f.Insert(s.a, s.n)
	case "truncate":
		return f.Truncate(s.a)
	}
	panic("unknown op " + s.op)
}

func newFile(fs *extentfs.FS) *extentfs.File { return fs.NewFile(0).(*extentfs.File) }

func mustCheck(t *testing.T, fs *extentfs.FS) {
	t.Helper()
	if err := fs.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestOps runs each case's setup steps, which must succeed, then its last
// step, and compares the error, the resulting extents and the free count.
func TestOps(t *testing.T) {
	const dev = 64
	tests := []struct {
		name     string
		dev      int64 // device size; dev if 0
		steps    []step
		wantErr  error
		want     []blockmap.Extent
		wantFree int64 // -1: dev - sum of want
	}{
		// Allocate
		{name: "allocate fresh file gets lowest blocks", steps: []step{alloc(0, 4)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "allocate append is contiguous and merges", steps: []step{alloc(0, 4), alloc(4, 4)}, want: []blockmap.Extent{u(0, 8, 0)}},
		{name: "allocate skips allocated pages", steps: []step{alloc(2, 2), alloc(0, 6)},
			// [0,2) has no preceding extent: lowest (2,3); [4,6) follows
			// blocks 0,1 so its goal is 2, taken a moment ago: lowest again.
			want: []blockmap.Extent{u(0, 2, 2), u(2, 2, 0), u(4, 2, 4)}},
		{name: "allocate on mapped range changes nothing", steps: []step{alloc(0, 4), write(0, 4), alloc(0, 4)}, want: []blockmap.Extent{m(0, 4, 0)}},
		{name: "allocate next to mapped does not merge kinds", steps: []step{alloc(0, 2), write(0, 2), alloc(2, 2)}, want: []blockmap.Extent{m(0, 2, 0), u(2, 2, 2)}},
		{name: "allocate after a gap still follows previous extent", steps: []step{alloc(0, 2), alloc(10, 2)}, want: []blockmap.Extent{u(0, 2, 0), u(10, 2, 2)}},
		{name: "allocate ENOSPC changes nothing", dev: 8, steps: []step{alloc(0, 6), alloc(10, 4)}, wantErr: syscall.ENOSPC, want: []blockmap.Extent{u(0, 6, 0)}},
		{name: "allocate exactly fills device", dev: 8, steps: []step{alloc(0, 6), alloc(10, 2)}, want: []blockmap.Extent{u(0, 6, 0), u(10, 2, 6)}},
		{name: "allocate past max file size", steps: []step{alloc(extentfs.MaxPages-1, 2)}, wantErr: syscall.EFBIG},
		{name: "allocate last page", steps: []step{alloc(extentfs.MaxPages-1, 1)}, want: []blockmap.Extent{u(extentfs.MaxPages-1, 1, 0)}},
		{name: "allocate negative index", steps: []step{alloc(-1, 1)}, wantErr: syscall.EINVAL},
		{name: "allocate zero count", steps: []step{alloc(0, 0)}, wantErr: syscall.EINVAL},
		{name: "allocate overflow", steps: []step{alloc(math.MaxInt64, 1)}, wantErr: syscall.EINVAL},

		// MarkWritten
		{name: "markwritten whole extent", steps: []step{alloc(0, 4), write(0, 4)}, want: []blockmap.Extent{m(0, 4, 0)}},
		{name: "markwritten middle splits", steps: []step{alloc(0, 8), write(2, 3)}, want: []blockmap.Extent{u(0, 2, 0), m(2, 3, 2), u(5, 3, 5)}},
		{name: "markwritten joins neighbours", steps: []step{alloc(0, 8), write(0, 2), write(5, 3), write(2, 3)}, want: []blockmap.Extent{m(0, 8, 0)}},
		{name: "markwritten leaves holes alone", steps: []step{alloc(2, 2), write(0, 8)}, want: []blockmap.Extent{m(2, 2, 0)}},
		{name: "markwritten across two extents", steps: []step{alloc(0, 2), alloc(4, 2), write(1, 4)}, want: []blockmap.Extent{u(0, 1, 0), m(1, 1, 1), m(4, 1, 2), u(5, 1, 3)}},
		{name: "markwritten negative count", steps: []step{write(0, -3)}, wantErr: syscall.EINVAL},

		// Punch
		{name: "punch middle gives two extents", steps: []step{alloc(0, 10), write(0, 10), punch(3, 3)}, want: []blockmap.Extent{m(0, 3, 0), m(6, 4, 6)}},
		{name: "punch head", steps: []step{alloc(0, 10), punch(0, 3)}, want: []blockmap.Extent{u(3, 7, 3)}},
		{name: "punch tail past end", steps: []step{alloc(0, 10), punch(8, 100)}, want: []blockmap.Extent{u(0, 8, 0)}},
		{name: "punch across extents and holes", steps: []step{alloc(0, 2), alloc(4, 2), alloc(8, 2), write(4, 2), punch(1, 8)}, want: []blockmap.Extent{u(0, 1, 0), u(9, 1, 5)}},
		{name: "punch hole only", steps: []step{alloc(0, 2), punch(5, 5)}, want: []blockmap.Extent{u(0, 2, 0)}},
		{name: "punch empty file", steps: []step{punch(0, 5)}},
		{name: "punch overflow", steps: []step{punch(1, math.MaxInt64)}, wantErr: syscall.EINVAL},

		// ZeroRange
		{name: "zerorange mapped and hole merge", steps: []step{alloc(0, 2), write(0, 2), zero(0, 4)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "zerorange middle of mapped", steps: []step{alloc(0, 6), write(0, 6), zero(2, 2)}, want: []blockmap.Extent{m(0, 2, 0), u(2, 2, 2), m(4, 2, 4)}},
		{name: "zerorange unwritten is a no-op", steps: []step{alloc(0, 4), zero(0, 4)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "zerorange mixed holes, mapped, unwritten", steps: []step{alloc(0, 4), write(0, 4), alloc(6, 2), zero(0, 10)},
			// [4,6) follows blocks 0-3: goal 4 is taken by pages 6,7, so
			// lowest (6,7); [8,10) follows blocks 4,5: goal 6, just taken.
			want: []blockmap.Extent{u(0, 4, 0), u(4, 2, 6), u(6, 2, 4), u(8, 2, 8)}},
		{name: "zerorange ENOSPC changes nothing", dev: 8, steps: []step{alloc(0, 2), write(0, 2), alloc(4, 4), zero(0, 10)},
			wantErr: syscall.ENOSPC, want: []blockmap.Extent{m(0, 2, 0), u(4, 4, 2)}},

		// Collapse
		{name: "collapse middle shifts down", steps: []step{alloc(0, 10), write(0, 10), collapse(2, 3)}, want: []blockmap.Extent{m(0, 2, 0), m(2, 5, 5)}},
		{name: "collapse joins contiguous blocks", steps: []step{alloc(0, 2), alloc(5, 2), write(0, 7), collapse(2, 3)}, want: []blockmap.Extent{m(0, 4, 0)}},
		{name: "collapse hole shifts later extents", steps: []step{alloc(0, 1), alloc(10, 2), collapse(3, 4)}, want: []blockmap.Extent{u(0, 1, 0), u(6, 2, 1)}},
		{name: "collapse past end changes nothing", steps: []step{alloc(0, 4), collapse(20, 5)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "collapse whole file", steps: []step{alloc(0, 4), collapse(0, 4)}},
		{name: "collapse zero count", steps: []step{collapse(3, 0)}, wantErr: syscall.EINVAL},

		// Insert
		{name: "insert splits straddling extent", steps: []step{alloc(0, 10), write(0, 10), insert(4, 3)}, want: []blockmap.Extent{m(0, 4, 0), m(7, 6, 4)}},
		{name: "insert at extent start", steps: []step{alloc(0, 10), insert(0, 2)}, want: []blockmap.Extent{u(2, 10, 0)}},
		{name: "insert shifts several extents", steps: []step{alloc(0, 2), alloc(4, 2), alloc(8, 2), insert(3, 5)}, want: []blockmap.Extent{u(0, 2, 0), u(9, 2, 2), u(13, 2, 4)}},
		{name: "insert past end changes nothing", steps: []step{alloc(0, 4), insert(4, 5)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "insert past max file size", steps: []step{alloc(0, 1), insert(0, extentfs.MaxPages)}, wantErr: syscall.EFBIG, want: []blockmap.Extent{u(0, 1, 0)}},
		{name: "insert negative index", steps: []step{insert(-5, 1)}, wantErr: syscall.EINVAL},

		// Truncate
		{name: "truncate middle of extent", steps: []step{alloc(0, 10), trunc(4)}, want: []blockmap.Extent{u(0, 4, 0)}},
		{name: "truncate to zero", steps: []step{alloc(0, 3), alloc(6, 3), trunc(0)}},
		{name: "truncate past end", steps: []step{alloc(0, 3), trunc(100)}, want: []blockmap.Extent{u(0, 3, 0)}},
		{name: "truncate negative", steps: []step{trunc(-1)}, wantErr: syscall.EINVAL},
		{name: "truncate past max file size", steps: []step{trunc(extentfs.MaxPages + 1)}, wantErr: syscall.EFBIG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.dev
			if size == 0 {
				size = dev
			}
			fs := extentfs.New(size)
			f := newFile(fs)
			last := len(tt.steps) - 1
			for _, s := range tt.steps[:last] {
				if err := s.do(f); err != nil {
					t.Fatalf("setup %v: %v", s, err)
				}
				mustCheck(t, fs)
			}
			err := tt.steps[last].do(f)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("%v: %v", tt.steps[last], err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("%v: err = %v, want %v", tt.steps[last], err, tt.wantErr)
			}
			mustCheck(t, fs)
			got := f.Extents()
			if len(got) == 0 && len(tt.want) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("extents = %v\nwant      %v", got, tt.want)
			}
			var used int64
			for _, e := range got {
				used += e.Count
			}
			if b := f.Blocks(); b != used {
				t.Errorf("Blocks = %d, extents hold %d", b, used)
			}
			if total, free := fs.Statfs(); total != size || free != size-used {
				t.Errorf("Statfs = %d, %d; want %d, %d", total, free, size, size-used)
			}
		})
	}
}

func TestErrorNamesOpAndRange(t *testing.T) {
	fs := extentfs.New(8)
	f := newFile(fs)
	err := f.Punch(-3, 2)
	if err == nil || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("err = %v, want EINVAL", err)
	}
	if want := "extentfs: punch(index=-3, n=2): invalid range: invalid argument"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestLookup(t *testing.T) {
	fs := extentfs.New(16)
	f := newFile(fs)
	// pages 2: mapped block 0; 3,4: unwritten blocks 1,2; rest holes.
	for _, s := range []step{alloc(2, 3), write(2, 1)} {
		if err := s.do(f); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		index, max int64
		want       blockmap.Extent
		wantErr    error
	}{
		{index: 0, max: 10, want: hole(0, 2)},
		{index: 0, max: 1, want: hole(0, 1)},
		{index: 1, max: 10, want: hole(1, 1)},
		{index: 2, max: 10, want: m(2, 1, 0)},
		{index: 3, max: 10, want: u(3, 2, 1)},
		{index: 4, max: 10, want: u(4, 1, 2)},
		{index: 3, max: 1, want: u(3, 1, 1)},
		{index: 5, max: 10, want: hole(5, 10)},
		{index: 5, max: math.MaxInt64 - 5, want: hole(5, math.MaxInt64-5)},
		{index: extentfs.MaxPages + 7, max: 3, want: hole(extentfs.MaxPages+7, 3)},
		{index: -1, max: 1, wantErr: syscall.EINVAL},
		{index: 0, max: 0, wantErr: syscall.EINVAL},
		{index: math.MaxInt64, max: 1, wantErr: syscall.EINVAL},
	}
	for _, tt := range tests {
		got, err := f.Lookup(tt.index, tt.max)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Lookup(%d, %d) err = %v, want %v", tt.index, tt.max, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Lookup(%d, %d) = %+v, %v; want %+v", tt.index, tt.max, got, err, tt.want)
		}
	}
}

func TestNextData(t *testing.T) {
	fs := extentfs.New(16)
	f := newFile(fs)
	for _, s := range []step{alloc(2, 3), write(3, 1), alloc(10, 2), write(10, 2), alloc(20, 2)} {
		if err := s.do(f); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ index, want int64 }{
		{0, 3}, {2, 3}, {3, 3}, {4, 10}, {10, 10}, {11, 11}, {12, -1}, {20, -1}, {1000, -1},
	}
	for _, tt := range tests {
		if got, err := f.NextData(tt.index); err != nil || got != tt.want {
			t.Errorf("NextData(%d) = %d, %v; want %d", tt.index, got, err, tt.want)
		}
	}
	if _, err := f.NextData(-1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("NextData(-1) err = %v, want EINVAL", err)
	}
}

func TestRelease(t *testing.T) {
	fs := extentfs.New(16)
	f := newFile(fs)
	g := newFile(fs)
	if err := f.Allocate(0, 5); err != nil {
		t.Fatal(err)
	}
	if err := g.Allocate(0, 3); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, fs)
	if _, free := fs.Statfs(); free != 13 {
		t.Errorf("free = %d, want 13", free)
	}
	if f.Blocks() != 0 || f.Extents() != nil {
		t.Errorf("released file: Blocks = %d, Extents = %v", f.Blocks(), f.Extents())
	}
	for name, call := range map[string]func() error{
		"Lookup":      func() error { _, err := f.Lookup(0, 1); return err },
		"Allocate":    func() error { return f.Allocate(0, 1) },
		"MarkWritten": func() error { return f.MarkWritten(0, 1) },
		"Punch":       func() error { return f.Punch(0, 1) },
		"ZeroRange":   func() error { return f.ZeroRange(0, 1) },
		"Collapse":    func() error { return f.Collapse(0, 1) },
		"Insert":      func() error { return f.Insert(0, 1) },
		"Truncate":    func() error { return f.Truncate(0) },
		"NextData":    func() error { _, err := f.NextData(0); return err },
		"Release":     func() error { return f.Release() },
	} {
		if err := call(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s after Release: err = %v, want EIO", name, err)
		}
	}
	mustCheck(t, fs)
	// The released file's blocks are the lowest free ones again.
	h := newFile(fs)
	if err := h.Allocate(0, 5); err != nil {
		t.Fatal(err)
	}
	if got := h.Extents(); !reflect.DeepEqual(got, []blockmap.Extent{u(0, 5, 0)}) {
		t.Errorf("extents = %v, want blocks 0-4 reused", got)
	}
	mustCheck(t, fs)
}

// TestPromptReuse is the property the package doc promises: a block punched
// out of one file is the next block handed to another.
func TestPromptReuse(t *testing.T) {
	fs := extentfs.New(64)
	a, b := newFile(fs), newFile(fs)
	if err := a.Allocate(0, 10); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkWritten(0, 10); err != nil {
		t.Fatal(err)
	}
	if err := a.Punch(3, 3); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, fs)
	if err := b.Allocate(0, 3); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, fs)
	if got, want := b.Extents(), []blockmap.Extent{u(0, 3, 3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("file B extents = %v, want %v (blocks 3,4,5 reused)", got, want)
	}
}

// TestGoalContiguityWins: when the block after a file's last extent is free
// it is used even though lower blocks were freed in the meantime, so files
// appended to stay contiguous. Lower blocks go to whoever has no goal.
func TestGoalContiguityWins(t *testing.T) {
	fs := extentfs.New(64)
	x, a, c := newFile(fs), newFile(fs), newFile(fs)
	steps := []struct {
		f *extentfs.File
		s step
	}{
		{x, alloc(0, 2)}, // blocks 0,1
		{a, alloc(0, 4)}, // blocks 2-5
		{x, punch(0, 2)}, // blocks 0,1 free, below a's goal 6
		{a, alloc(4, 2)}, // goal 6 free: 6,7
		{c, alloc(0, 3)}, // fresh file, no goal: 0,1 then 8
	}
	for _, st := range steps {
		if err := st.s.do(st.f); err != nil {
			t.Fatalf("%v: %v", st.s, err)
		}
		mustCheck(t, fs)
	}
	if got, want := a.Extents(), []blockmap.Extent{u(0, 6, 2)}; !reflect.DeepEqual(got, want) {
		t.Errorf("file A extents = %v, want %v", got, want)
	}
	if got, want := c.Extents(), []blockmap.Extent{u(0, 2, 0), u(2, 1, 8)}; !reflect.DeepEqual(got, want) {
		t.Errorf("file C extents = %v, want %v", got, want)
	}
}

// TestBusyGoalFallsBackToLowest: when the goal block belongs to another file
// the allocation does not search near it; it takes the lowest free blocks.
func TestBusyGoalFallsBackToLowest(t *testing.T) {
	fs := extentfs.New(64)
	a, b, x := newFile(fs), newFile(fs), newFile(fs)
	for _, st := range []struct {
		f *extentfs.File
		s step
	}{
		{x, alloc(0, 1)}, // block 0
		{a, alloc(0, 2)}, // blocks 1,2
		{b, alloc(0, 2)}, // blocks 3,4: a's goal 3 is now busy
		{x, punch(0, 1)}, // block 0 free
		{a, alloc(2, 2)}, // lowest: 0, then 5
	} {
		if err := st.s.do(st.f); err != nil {
			t.Fatalf("%v: %v", st.s, err)
		}
		mustCheck(t, fs)
	}
	if got, want := a.Extents(), []blockmap.Extent{u(0, 2, 1), u(2, 1, 0), u(3, 1, 5)}; !reflect.DeepEqual(got, want) {
		t.Errorf("file A extents = %v, want %v", got, want)
	}
}

func TestNewNegativeSize(t *testing.T) {
	fs := extentfs.New(-5)
	if total, free := fs.Statfs(); total != 0 || free != 0 {
		t.Errorf("Statfs = %d, %d; want 0, 0", total, free)
	}
	if err := fs.NewFile(0).Allocate(0, 1); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Allocate on empty device: err = %v, want ENOSPC", err)
	}
	mustCheck(t, fs)
}
