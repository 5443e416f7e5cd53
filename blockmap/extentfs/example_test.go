package extentfs_test

import (
	"fmt"

	"github.com/holefs/holefs/blockmap/extentfs"
)

// A block punched out of one file is the next one another file gets.
func Example() {
	fs := extentfs.New(16)
	a := fs.NewFile(0).(*extentfs.File)
	_ = a.Allocate(0, 4)    // blocks 0-3, Unwritten until data reaches them
	_ = a.MarkWritten(0, 4) // writeback done
	fmt.Println("a:", a.Extents())

	_ = a.Punch(1, 1) // frees block 1 at once
	fmt.Println("a:", a.Extents())

	b := fs.NewFile(0)
	_ = b.Allocate(0, 1)
	e, _ := b.Lookup(0, 1)
	fmt.Printf("b: page %d -> block %d (%v)\n", e.Page, e.Block, e.Kind)

	total, free := fs.Statfs()
	fmt.Println("total", total, "free", free)
	fmt.Println("check:", fs.CheckInvariants())
	// Output:
	// a: [{0 4 mapped 0 false}]
	// a: [{0 1 mapped 0 false} {2 2 mapped 2 false}]
	// b: page 0 -> block 1 (unwritten)
	// total 16 free 12
	// check: <nil>
}
