package holefs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

// restoreExt2Image opens an image made with MkfsOptions.Backend ext2: the
// files' block maps are their inode records' i_block roots and the
// indirect blocks below them on the data device (ext2fs.RestoreImage),
// committed by the same journal as extentfs images.
func restoreExt2Image(img *meta.Image, opts Options) (*FS, error) {
	snap, err := img.Load(nil)
	if err != nil {
		return nil, fmt.Errorf("%w (run holefs fsck)", err)
	}
	roots := make(map[uint64][ext2fs.NRoots]uint32)
	for ino, in := range snap.Inodes {
		// Orphans (no links) are dropped by vfs.Restore and their blocks
		// are free from the start: only linked files own blocks.
		if in.Mode&syscall.S_IFMT == syscall.S_IFREG && in.Nlink > 0 {
			roots[ino] = in.IBlock
		}
	}
	file, err := blockdev.OpenFile(img.DataPath(), img.SB.Blocks)
	if err != nil {
		return nil, err
	}
	dev := withLatency(file, opts)
	if opts.WrapDevice != nil {
		dev = opts.WrapDevice(dev)
	}
	raw := dev
	jopts := meta.JournalOptions{Flush: dev.Flush, Interval: opts.CommitInterval,
		WriteBlock0: func(p []byte) error { return raw.WriteBlocks(p, 0) }}
	if h := opts.Hooks; h != nil {
		jopts.BeforeCommit, jopts.AfterCommit = h.BeforeCommit, h.AfterCommit
	}
	j := img.Journal(jopts)
	store, err := ext2fs.RestoreImage(dev, roots, j)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%w (run holefs fsck)", err)
	}
	// A commit may record a map whose write-out preceded a truncate that
	// its size follows: drop what lies past each file's end, so that no
	// extension can later bring it back as data.
	for ino := range roots {
		f, _ := store.File(ino)
		end := (snap.Inodes[ino].Size + blockmap.PageSize - 1) / blockmap.PageSize
		if next, err := f.NextData(end); err == nil && next < 0 {
			continue // the usual case: nothing to drop, nothing to commit
		}
		if err := f.Truncate(end); err != nil {
			dev.Close()
			return nil, fmt.Errorf("inode %d: drop blocks past its size: %w (run holefs fsck)", ino, err)
		}
	}
	lookup := func(ino uint64) blockmap.File {
		if f, ok := store.File(ino); ok {
			return f
		}
		return nil
	}
	copts, vhooks := engineOptions(opts)
	backend := vfs.Backend{Store: store, Device: dev, Journal: j,
		NoSpecialFiles: img.SB.Incompat&meta.IncompatSpecialFiles == 0}
	v, err := vfs.Restore(backend, copts, vhooks, snap, lookup)
	if err != nil {
		dev.Close()
		return nil, err
	}
	j.Start(store)
	// Orphans dropped and empty indirect blocks pruned by Restore: make
	// that durable now.
	if err := j.Commit(); err != nil {
		return nil, errors.Join(err, v.Close())
	}
	return &FS{v: v, name: img.Dir, img: img}, nil
}
