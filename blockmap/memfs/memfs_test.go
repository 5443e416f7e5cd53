package memfs

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/internal/lockcheck"
)

func TestMain(m *testing.M) {
	lockcheck.EnableForTests()
	os.Exit(m.Run())
}

func TestMemfs(t *testing.T) {
	fs := New(8)
	f := fs.NewFile(0)
	if err := f.Allocate(2, 3); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		index int64
		want  blockmap.Extent
	}{
		{0, blockmap.Extent{Page: 0, Count: 2, Kind: blockmap.Hole, Block: -1}},
		{2, blockmap.Extent{Page: 2, Count: 3, Kind: blockmap.Memory}},
		{3, blockmap.Extent{Page: 3, Count: 2, Kind: blockmap.Memory}},
	} {
		e, err := f.Lookup(tt.index, 10)
		if err != nil || e != tt.want {
			t.Errorf("Lookup(%d) = %+v, %v; want %+v", tt.index, e, err, tt.want)
		}
	}
	// Memory pages are never written back, so nothing becomes Mapped, and
	// every allocated page is data.
	if err := f.MarkWritten(2, 3); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ from, want int64 }{{0, 2}, {3, 3}, {5, -1}, {maxPages, -1}} {
		if got, err := f.NextData(tt.from); err != nil || got != tt.want {
			t.Errorf("NextData(%d) = %d, %v; want %d", tt.from, got, err, tt.want)
		}
	}
	if total, free := fs.Statfs(); total != 8 || free != 5 || f.Blocks() != 3 {
		t.Errorf("Statfs = %d, %d, Blocks = %d; want 8, 5, 3", total, free, f.Blocks())
	}
	// Capacity is all-or-nothing, like tmpfs's size=.
	g := fs.NewFile(0)
	if err := g.Allocate(0, 6); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Allocate past capacity = %v, want ENOSPC", err)
	}
	if g.Blocks() != 0 {
		t.Fatalf("a failed allocation kept %d pages", g.Blocks())
	}
	if err := f.Punch(2, 3); err != nil {
		t.Fatal(err)
	}
	if err := g.Allocate(0, 8); err != nil {
		t.Fatalf("punched pages not returned to the capacity: %v", err)
	}
	if err := fs.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
