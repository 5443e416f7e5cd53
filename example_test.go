package holefs_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
)

func ExampleFS_OpenFile() {
	fsys, err := holefs.Open("", holefs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()

	f, err := fsys.OpenFile("notes.txt", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("hello, hole punching world"), 0); err != nil {
		log.Fatal(err)
	}
	// Punch "hole punching " out: the bytes read as zeros, the size stays.
	if err := f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 7, 14); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 26)
	n, err := f.ReadAt(buf, 0)
	fmt.Printf("%d %v %q\n", n, err, buf[:n])

	// Creating it again exclusively fails with EEXIST, wrapped in a PathError.
	_, err = fsys.OpenFile("notes.txt", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	fmt.Println(err)
	// Output:
	// 26 <nil> "hello, \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00world"
	// open notes.txt: file exists
}

func ExampleFile_Mmap() {
	fsys, err := holefs.Open("", holefs.Options{Backend: holefs.BackendExtent})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.Create("data")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 * 4096); err != nil {
		log.Fatal(err)
	}

	view, err := f.Mmap(0, 2*4096, true)
	if err != nil {
		log.Fatal(err)
	}
	defer view.Unmap()
	// A write through the view is a write to the file.
	if _, err := view.WriteAt([]byte("mapped"), 4096); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 6)
	f.ReadAt(buf, 4096)
	fmt.Printf("file reads %q\n", buf)

	// Punching the page zaps it from the view: the next access faults in
	// the page again and sees the hole.
	if err := f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 4096); err != nil {
		log.Fatal(err)
	}
	view.ReadAt(buf, 4096)
	fmt.Printf("view reads %q\n", buf)

	// Past the end of the file, the view faults like SIGBUS would.
	f.Truncate(4096)
	_, err = view.ReadAt(buf, 4096)
	fmt.Println(err)
	// Output:
	// file reads "mapped"
	// view reads "\x00\x00\x00\x00\x00\x00"
	// mmap read data: bad address
}

func ExampleMkfs() {
	dir, err := os.MkdirTemp("", "holefs-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img := dir + "/img"
	if err := holefs.Mkfs(img, holefs.MkfsOptions{SizeBytes: 64 << 20}); err != nil {
		log.Fatal(err)
	}

	fsys, err := holefs.Open(img, holefs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	f, err := fsys.Create("kept")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("survives a crash once fsynced"), 0); err != nil {
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil { // data, size and the name are durable now
		log.Fatal(err)
	}
	f.Close()
	// A second user of the image is refused while it is open.
	_, err = holefs.Open(img, holefs.Options{})
	fmt.Println(errors.Is(err, syscall.EBUSY))
	if err := fsys.Close(); err != nil {
		log.Fatal(err)
	}

	fsys, err = holefs.Open(img, holefs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	b, err := fsys.ReadFile("kept")
	fmt.Printf("%q %v\n", b, err)
	// Output:
	// true
	// "survives a crash once fsynced" <nil>
}

func ExampleFile_Clone() {
	fsys, err := holefs.Open("", holefs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	a, _ := fsys.Create("a")
	b, _ := fsys.Create("b")
	defer a.Close()
	defer b.Close()
	a.WriteAt([]byte(strings.Repeat("A", 8192)), 0)

	_, total, free := fsys.Statfs()
	before := total - free
	if err := a.Clone(b, 0, 0, 0); err != nil { // the whole file: b shares a's blocks
		log.Fatal(err)
	}
	_, _, free = fsys.Statfs()
	fmt.Println("new blocks used by the clone:", total-free-before)

	b.WriteAt([]byte("B"), 0) // copies b's first block on write; a is unchanged
	buf := make([]byte, 2)
	a.ReadAt(buf, 0)
	fmt.Printf("a: %s\n", buf)
	b.ReadAt(buf, 0)
	fmt.Printf("b: %s\n", buf)
	// Output:
	// new blocks used by the clone: 0
	// a: AA
	// b: BA
}

func ExampleFS_Mknod() {
	fsys, err := holefs.Open("", holefs.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()

	if err := fsys.Mknod("pipe", syscall.S_IFIFO|0o600, 0); err != nil {
		log.Fatal(err)
	}
	if err := fsys.Mknod("null", syscall.S_IFCHR|0o666, unix.Mkdev(1, 3)); err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"pipe", "null"} {
		fi, err := fsys.Lstat(name)
		if err != nil {
			log.Fatal(err)
		}
		rdev := fi.Sys().(*holefs.Attr).Rdev
		fmt.Printf("%s %v %d,%d\n", name, fi.Mode(), unix.Major(rdev), unix.Minor(rdev))
	}
	// The library has no pipe behind a FIFO: only the kernel, through a
	// FUSE mount, does a FIFO's I/O.
	_, err = fsys.OpenFile("pipe", os.O_RDONLY, 0)
	fmt.Println(errors.Is(err, syscall.EOPNOTSUPP))
	// Output:
	// pipe prw------- 0,0
	// null Dcrw-rw-rw- 1,3
	// true
}
