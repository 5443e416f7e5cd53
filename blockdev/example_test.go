package blockdev_test

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockdev"
)

func ExampleNewMemory() {
	// A 1 TiB device: no storage is allocated until blocks are written.
	d := blockdev.NewMemory(1 << 40 / blockdev.BlockSize)
	defer d.Close()

	p := make([]byte, blockdev.BlockSize)
	copy(p, "hello")
	if err := d.WriteBlocks(p, d.NumBlocks()-1); err != nil {
		fmt.Println(err)
	}
	q := make([]byte, blockdev.BlockSize)
	if err := d.ReadBlocks(q, d.NumBlocks()-1); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%s, %d block allocated\n", q[:5], d.Allocated())

	err := d.ReadBlocks(make([]byte, 2*blockdev.BlockSize), d.NumBlocks()-1)
	fmt.Println(err)
	fmt.Println(errors.Is(err, syscall.EINVAL))
	// Output:
	// hello, 1 block allocated
	// blockdev: read of 2 blocks at block 268435455 beyond end of 268435456-block device: invalid argument
	// true
}

func ExampleNewFaulty() {
	d := blockdev.NewFaulty(blockdev.NewMemory(16), blockdev.FaultOptions{})
	defer d.Close()

	// Reads touching block 3 fail with EIO; other blocks still work.
	d.FailRead(3, syscall.EIO)
	buf := make([]byte, 4*blockdev.BlockSize)
	err := d.ReadBlocks(buf, 1) // blocks 1..4
	fmt.Println(err)
	fmt.Println(errors.Is(err, syscall.EIO))
	fmt.Println(d.ReadBlocks(buf[:blockdev.BlockSize], 4))

	d.Clear()
	fmt.Println(d.ReadBlocks(buf, 1))
	fmt.Println(d.Ops(), "ops,", d.Reads(), "blocks read")
	// Output:
	// blockdev: read block 3: input/output error
	// true
	// <nil>
	// <nil>
	// 3 ops, 5 blocks read
}

func ExampleFaulty_FailAfter() {
	d := blockdev.NewFaulty(blockdev.NewMemory(16), blockdev.FaultOptions{})
	defer d.Close()

	// Simulate running out of space after two more operations.
	d.FailAfter(2, syscall.ENOSPC)
	p := make([]byte, blockdev.BlockSize)
	for b := int64(0); b < 4; b++ {
		err := d.WriteBlocks(p, b)
		fmt.Printf("write %d: %v (ENOSPC: %t)\n", b, err, errors.Is(err, syscall.ENOSPC))
	}
	fmt.Println(d.Writes(), "blocks written")
	// Output:
	// write 0: <nil> (ENOSPC: false)
	// write 1: <nil> (ENOSPC: false)
	// write 2: blockdev: write of 1 blocks at block 2: no space left on device (ENOSPC: true)
	// write 3: blockdev: write of 1 blocks at block 3: no space left on device (ENOSPC: true)
	// 2 blocks written
}
