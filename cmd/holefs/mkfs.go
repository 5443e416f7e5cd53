package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// mkfsCmd creates an image and prints what it made, as read back from
// the image.
func mkfsCmd(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("mkfs", flag.ContinueOnError)
	size := fl.String("size", "64G", "device `size`: bytes, or a number with a K, M, G or T suffix (binary); the data file is sparse")
	blockSize := fl.Int("block-size", meta.BlockSize, "block size in bytes: holefs has only 4096")
	sums := fl.Bool("data-checksums", false, "keep a CRC-32C of every data block and check it on read")
	noReflink := fl.Bool("no-reflink", false, "files cannot share blocks (clones fail, copies copy)")
	force := fl.Bool("force", false, "replace an existing image (its data is lost)")
	backend := fl.String("backend", holefs.BackendExtent, "`backend` the image is for: extent, or ext2 (indirect blocks on the device; no reflink, no data checksums, at most 16 TiB)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs mkfs PATH [flags]\n\n"+
			"Creates a holefs image at PATH, a directory holding the sparse data file (block 0\n"+
			"the superblock) and meta.db. An existing image is replaced only with --force;\n"+
			"a directory holding anything else is never touched.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	path, err := parseOne(fl, args, stdout, stderr, "image path")
	if err != nil {
		return err
	}
	n, err := parseByteSize(*size)
	if err == nil && n == 0 {
		err = errors.New("an image cannot have size 0 (leave --size out for the default, 64G)")
	}
	if err != nil {
		fmt.Fprintf(stderr, "holefs mkfs: --size: %v\n", err)
		return errUsage
	}
	opts := holefs.MkfsOptions{SizeBytes: n, BlockSize: *blockSize, DataChecksums: *sums, NoReflink: *noReflink, Force: *force, Backend: *backend}
	if err := holefs.Mkfs(path, opts); err != nil {
		return err
	}
	img, err := meta.Open(path, meta.OpenOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("made %s, but it does not open: %w", path, err)
	}
	defer img.Close()
	sb := img.SB
	fmt.Fprintf(stdout, "made holefs image %s\n", path)
	fmt.Fprintf(stdout, "  size      %s: %d blocks of %d bytes, block 0 the superblock (the data file is sparse)\n",
		formatBytes(sb.Blocks*int64(sb.BlockSize)), sb.Blocks, sb.BlockSize)
	fmt.Fprintf(stdout, "  uuid      %s\n", formatUUID(sb.UUID))
	fmt.Fprintf(stdout, "  features  %s\n", featureNames(sb))
	fmt.Fprintf(stdout, "  format    version %d\n", sb.Version)
	return nil
}

// formatBytes writes a size with a binary unit: 64 GiB, 1.5 MiB, 100 B.
func formatBytes(n int64) string {
	const units = "KMGTP"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	i, d := 0, int64(1024)
	for i < len(units)-1 && n >= d*1024 {
		i, d = i+1, d*1024
	}
	if n%d == 0 {
		return fmt.Sprintf("%d %ciB", n/d, units[i])
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(d), units[i])
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// featureNames names the features a superblock enables.
func featureNames(sb meta.Superblock) string {
	var names []string
	incompat := sb.Incompat
	for _, f := range []struct {
		name string
		bit  uint64
	}{{"data-checksums", meta.IncompatDataChecksums}, {"reflink", meta.IncompatReflink}, {"special-files", meta.IncompatSpecialFiles}, {"ext2", meta.IncompatExt2}} {
		if incompat&f.bit != 0 {
			names = append(names, f.name)
			incompat &^= f.bit
		}
	}
	compat := sb.Compat
	if compat&meta.CompatCommitSeq != 0 {
		names = append(names, "commit-record")
		compat &^= meta.CompatCommitSeq
	}
	for _, f := range []struct {
		kind string
		bits uint64
	}{{"incompat", incompat}, {"ro_compat", sb.ROCompat}, {"compat", compat}} {
		if f.bits != 0 {
			names = append(names, fmt.Sprintf("%s=%#x", f.kind, f.bits))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
