package extentfs

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestCheckInvariantsCatches corrupts the state behind the API's back and
// expects CheckInvariants to say what is wrong; a checker that never fails
// would make every other test vacuous.
func TestCheckInvariantsCatches(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(fs *FS, f, g *File)
		want    string
	}{
		{"block owned by two files", func(fs *FS, f, g *File) {
			g.tree.t.ReplaceOrInsert(extent{page: 10, count: 1, block: 2})
			g.blocks++
		}, "blocks [2, 3) mapped 2 times, reference count 1"},
		{"block owned and free", func(fs *FS, f, g *File) {
			fs.alloc.insertFree(run{1, 1})
		}, "blocks [1, 2) owned twice"},
		{"extents not merged", func(fs *FS, f, g *File) {
			f.tree.t.ReplaceOrInsert(extent{page: 0, count: 2, block: 0, unwritten: true})
			f.tree.t.ReplaceOrInsert(extent{page: 2, count: 2, block: 2, unwritten: true})
		}, "not merged"},
		{"extents overlap", func(fs *FS, f, g *File) {
			f.tree.t.ReplaceOrInsert(extent{page: 3, count: 1, block: 9, unwritten: true})
			fs.alloc.carve(run{4, 60}, run{9, 1})
			f.blocks++
		}, "extents overlap at page 3"},
		{"block count wrong", func(fs *FS, f, g *File) {
			f.blocks = 7
		}, "block count says 7"},
		{"extent outside device", func(fs *FS, f, g *File) {
			g.tree.t.ReplaceOrInsert(extent{page: 0, count: 2, block: 63})
		}, "outside device"},
		{"free runs not merged", func(fs *FS, f, g *File) {
			fs.alloc.free.Delete(run{4, 60})
			fs.alloc.free.ReplaceOrInsert(run{4, 30})
			fs.alloc.free.ReplaceOrInsert(run{34, 30})
		}, "free runs not merged at block 34"},
		{"free count wrong", func(fs *FS, f, g *File) {
			fs.alloc.nfree--
		}, "free count says 59"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := New(64)
			f, g := fs.NewFile(0).(*File), fs.NewFile(0).(*File)
			if err := f.Allocate(0, 4); err != nil {
				t.Fatal(err)
			}
			if err := fs.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			tt.corrupt(fs, f, g)
			err := fs.CheckInvariants()
			if !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckInvariants = %v, want EUCLEAN naming %q", err, tt.want)
			}
		})
	}
}

// TestPunchOfFreeBlockReportsEUCLEAN: a map that claims a block the
// allocator thinks is free is corrupt. Punching it must say so, name the
// block, and still leave the free set without duplicates.
func TestPunchOfFreeBlockReportsEUCLEAN(t *testing.T) {
	fs := New(16)
	f := fs.NewFile(0).(*File)
	if err := f.Allocate(0, 4); err != nil {
		t.Fatal(err)
	}
	fs.alloc.mu.Lock()
	fs.alloc.insertFree(run{2, 1})
	fs.alloc.mu.Unlock()
	err := f.Punch(0, 4)
	if !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), "block 2 is already free") {
		t.Fatalf("Punch err = %v, want EUCLEAN naming block 2", err)
	}
	if !strings.Contains(err.Error(), "punch(index=0, n=4)") {
		t.Errorf("Punch err = %v, want it to name the op", err)
	}
	if err := fs.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if _, free := fs.Statfs(); free != 16 {
		t.Errorf("free = %d, want 16", free)
	}
}
