package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
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
	noLog := fl.Bool("no-log", false, "no write-ahead log: every commit (fsync) is a meta.db transaction, as images\n"+
		"made before the log (images for --backend ext2 never have one)")
	logSize := fl.String("log-size", "4M", "size of the write-ahead log, a multiple of 8K, past --size in the data file")
	force := fl.Bool("force", false, "replace an existing image (its data is lost)")
	zoned := fl.Bool("zoned", false, "make a zoned image for the zonefs backend: a zoned device of --size, whose\n"+
		"zones are the files cnv/N and seq/N")
	zoneSize := fl.String("zone-size", "256M", "with --zoned: the size of a zone (SMR disks have 256 MiB)")
	zoneCap := fl.String("zone-capacity", "", "with --zoned: the writable part of a sequential zone (ZNS), default all of it")
	conv := fl.Int("conventional", 1, "with --zoned: how many of the first zones are conventional")
	maxOpen := fl.Int("max-open", 0, "with --zoned: the most zones open at once (0: no limit)")
	maxActive := fl.Int("max-active", 0, "with --zoned: the most zones active (open or closed) at once (0: no limit)")
	backend := fl.String("backend", holefs.BackendExtent, "`backend` the image is for: extent, or ext2 (indirect blocks on the device; no reflink, no data checksums, at most 16 TiB)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: holefs mkfs PATH [flags]\n\n"+
			"Creates a holefs image at PATH, a directory holding the sparse data file (block 0\n"+
			"the superblock) and meta.db. An existing image is replaced only with --force;\n"+
			"a directory holding anything else is never touched. With --zoned the image is a\n"+
			"zoned device for the zonefs backend instead: the zones' data and their state\n"+
			"(data.zones: write pointers and conditions), the files cnv/N and seq/N.\n\nFlags:\n")
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
	logBytes, err := parseByteSize(*logSize)
	if err == nil && (logBytes <= 0 || logBytes%(2*meta.BlockSize) != 0) {
		err = fmt.Errorf("%d is not a positive multiple of %d", logBytes, 2*meta.BlockSize)
	}
	if err != nil {
		fmt.Fprintf(stderr, "holefs mkfs: --log-size: %v\n", err)
		return errUsage
	}
	opts := holefs.MkfsOptions{SizeBytes: n, BlockSize: *blockSize, DataChecksums: *sums, NoReflink: *noReflink, Force: *force, Backend: *backend,
		NoLog: *noLog, LogBytes: logBytes}
	if *zoned {
		return mkfsZoned(path, opts, *zoneSize, *zoneCap, *conv, *maxOpen, *maxActive, stdout, stderr)
	}
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
	if n := img.WALBlocks(); n > 0 {
		fmt.Fprintf(stdout, "  log       %s: %d blocks after the data blocks (write-ahead log of commits)\n", formatBytes(n*meta.BlockSize), n)
	}
	fmt.Fprintf(stdout, "  format    version %d\n", sb.Version)
	return nil
}

// mkfsZoned makes a zoned image of opts.SizeBytes cut into zones of
// zoneSize and prints its geometry.
func mkfsZoned(path string, opts holefs.MkfsOptions, zoneSize, zoneCap string, conv, maxOpen, maxActive int, stdout, stderr io.Writer) error {
	zs, err := parseByteSize(zoneSize)
	if err == nil && (zs <= 0 || zs%blockdev.BlockSize != 0 || opts.SizeBytes < zs) {
		err = fmt.Errorf("%d is not a positive multiple of %d no larger than --size", zs, blockdev.BlockSize)
	}
	if err != nil {
		fmt.Fprintf(stderr, "holefs mkfs: --zone-size: %v\n", err)
		return errUsage
	}
	var zc int64
	if zoneCap != "" {
		if zc, err = parseByteSize(zoneCap); err == nil && (zc <= 0 || zc > zs || zc%blockdev.BlockSize != 0) {
			err = fmt.Errorf("%d is not a positive multiple of %d no larger than the zone size", zc, blockdev.BlockSize)
		}
		if err != nil {
			fmt.Fprintf(stderr, "holefs mkfs: --zone-capacity: %v\n", err)
			return errUsage
		}
	}
	geo := blockdev.ZonedOptions{ZoneBlocks: zs / blockdev.BlockSize, Zones: int(opts.SizeBytes / zs), Conventional: conv,
		CapacityBlocks: zc / blockdev.BlockSize, MaxOpen: maxOpen, MaxActive: maxActive}
	opts.Zoned = &geo
	if err := holefs.Mkfs(path, opts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "made zoned holefs image %s (backend zonefs)\n", path)
	fmt.Fprintf(stdout, "  zones     %d of %s: %d conventional (cnv/), %d sequential (seq/)\n",
		geo.Zones, formatBytes(zs), min(conv, geo.Zones), geo.Zones-min(conv, geo.Zones))
	if zc != 0 {
		fmt.Fprintf(stdout, "  capacity  %s writable per sequential zone\n", formatBytes(zc))
	}
	if maxOpen != 0 || maxActive != 0 {
		fmt.Fprintf(stdout, "  limits    %d open, %d active zones (0: none)\n", maxOpen, maxActive)
	}
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
	}{{"data-checksums", meta.IncompatDataChecksums}, {"reflink", meta.IncompatReflink}, {"special-files", meta.IncompatSpecialFiles}, {"ext2", meta.IncompatExt2}, {"wal", meta.IncompatWAL}} {
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
