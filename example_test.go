package holefs_test

import (
	"fmt"
	"log"
	"os"

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
