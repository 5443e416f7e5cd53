package holefs

import (
	"fmt"
	"io/fs"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
)

// MkfsOptions configure Mkfs.
type MkfsOptions struct {
	// SizeBytes is the device size; default 64 GiB. The data file is
	// sparse: it costs disk space only where written.
	SizeBytes int64
	// BlockSize must be 0 or 4096, the only block size holefs has.
	BlockSize int
	// DataChecksums keeps a CRC-32C of every data block and checks it on
	// read (a mismatch is EIO).
	DataChecksums bool
	// NoReflink makes an image whose files cannot share blocks (Clone
	// returns EOPNOTSUPP, CopyRange copies), as an older holefs made.
	NoReflink bool
	// Zoned, if set, makes a zoned image for BackendZonefs instead: a
	// file-backed zoned device of this geometry (blockdev.ZonedOptions),
	// whose zone report is all the metadata zonefs has. SizeBytes,
	// DataChecksums and NoReflink do not apply.
	Zoned *blockdev.ZonedOptions
	// Backend is BackendExtent (default) or BackendExt2: the backend the
	// image is for, fixed at mkfs (an ext2 image has the ext2 incompat
	// feature, so a holefs without it refuses the image). ext2 images
	// have no reflink and no data checksums, and at most 2^32 blocks.
	Backend string
	// NoLog makes an image without the write-ahead log (meta.IncompatWAL),
	// as an older holefs made: each commit is a meta.db transaction.
	// ext2 images never have a log.
	NoLog bool
	// LogBytes is the log's size, a multiple of 8 KiB; default 4 MiB
	// (meta.DefaultWALBlocks). The data file holds it past SizeBytes.
	LogBytes int64
	// Force replaces an existing image, unless a process has it open
	// (mounted, or opened by Open or fsck): that fails with EBUSY and
	// leaves the image as it is.
	Force bool
}

// DefaultImageSize is the device size Mkfs uses when none is given.
const DefaultImageSize = 64 << 30

// Mkfs creates an image at path, a directory holding the sparse data file
// and the metadata database. It refuses to replace an existing image unless
// opts.Force is set and no process has the image open, and never touches a
// directory holding anything else.
func Mkfs(path string, opts MkfsOptions) error {
	_, err := mkfs(path, opts)
	return err
}

func mkfs(path string, opts MkfsOptions) (meta.Superblock, error) {
	if opts.Zoned != nil {
		return meta.Superblock{}, mkfsZoned(path, *opts.Zoned, opts.Force)
	}
	if opts.SizeBytes == 0 {
		opts.SizeBytes = DefaultImageSize
	}
	if opts.BlockSize != 0 && opts.BlockSize != meta.BlockSize {
		return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
			Err: fmt.Errorf("block size %d is not supported (holefs blocks are %d bytes): %w", opts.BlockSize, meta.BlockSize, syscall.EINVAL)}
	}
	if opts.SizeBytes%meta.BlockSize != 0 || opts.SizeBytes < 2*meta.BlockSize {
		return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
			Err: fmt.Errorf("size %d is not a multiple of %d of at least 2 blocks: %w", opts.SizeBytes, meta.BlockSize, syscall.EINVAL)}
	}
	var incompat uint64
	switch opts.Backend {
	case "", BackendExtent:
		if !opts.NoReflink {
			incompat |= meta.IncompatReflink
		}
	case BackendExt2:
		if opts.DataChecksums {
			return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
				Err: fmt.Errorf("ext2 images have no data checksums: %w", syscall.EINVAL)}
		}
		if n := opts.SizeBytes / meta.BlockSize; n > ext2fs.MaxBlocks {
			return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
				Err: fmt.Errorf("ext2 image of %d blocks: 32-bit block pointers address at most %d: %w", n, ext2fs.MaxBlocks, syscall.EFBIG)}
		}
		// No reflink: ext2 has none, Clone returns EOPNOTSUPP.
		incompat |= meta.IncompatExt2
	default:
		return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
			Err: fmt.Errorf("images use the %s or %s backend, not %q: %w", BackendExtent, BackendExt2, opts.Backend, syscall.EINVAL)}
	}
	if opts.DataChecksums {
		incompat |= meta.IncompatDataChecksums
	}
	// Always: an image that can hold FIFOs, sockets and devices is one an
	// older holefs must not open (it would call their records damaged).
	incompat |= meta.IncompatSpecialFiles
	// The log's records carry no ext2 indirect blocks: ext2 images
	// commit to meta.db at every commit.
	if !opts.NoLog && opts.Backend != BackendExt2 {
		incompat |= meta.IncompatWAL
	}
	if opts.LogBytes%(2*meta.BlockSize) != 0 || opts.LogBytes < 0 {
		return meta.Superblock{}, &fs.PathError{Op: "mkfs", Path: path,
			Err: fmt.Errorf("log size %d is not a multiple of %d: %w", opts.LogBytes, 2*meta.BlockSize, syscall.EINVAL)}
	}
	sb, err := meta.Create(path, meta.CreateOptions{Blocks: opts.SizeBytes / meta.BlockSize, Incompat: incompat, Force: opts.Force,
		WALBlocks: opts.LogBytes / meta.BlockSize})
	if err != nil {
		return meta.Superblock{}, err // a *fs.PathError naming path
	}
	return sb, nil
}
