package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// fstrimCmd is holefs fstrim: it punches every free block out of an
// image's data file, giving the space back to the host (images mounted
// with --no-discard, or used by a holefs that did not discard).
func fstrimCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fstrim", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs fstrim PATH\n\n"+
			"Punches every free block out of the data file of the image at PATH (fallocate\n"+
			"PUNCH_HOLE), so that the space it took goes back to the filesystem holding the\n"+
			"image, and says how much the data file takes before and after. A mounted image\n"+
			"does this as it frees blocks, unless mounted with --no-discard; unmount it first.\n")
	}
	path, err := parseOne(fl, args, stdout, stderr, "image path")
	if err != nil {
		return err
	}
	data := filepath.Join(path, meta.DataFile)
	before, _ := diskBytes(data)
	fsys, err := holefs.Open(path, holefs.Options{CommitInterval: -1})
	if err != nil {
		return imageError(path, err)
	}
	n, err := fsys.Trim()
	if cerr := fsys.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	after, err := diskBytes(data)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: trimmed %s of free space; the data file takes %s on disk (%s before)\n",
		path, formatBytes(n), formatBytes(after), formatBytes(before))
	return nil
}

// diskBytes returns the disk space a file takes (st_blocks).
func diskBytes(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}
