package holefs

import (
	"fmt"
	"syscall"

	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
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
	_, dev, err := openImageData(img, opts)
	if err != nil {
		return nil, err
	}
	j := img.Journal(journalOptions(opts, dev, dev))
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
	// Orphans dropped and empty indirect blocks pruned by Restore are
	// committed there.
	v, err := restoreVFS(img, opts, snap, store, dev, j, storeFiles(store.File))
	if err != nil {
		return nil, err
	}
	return &FS{v: v, name: img.Dir, img: img}, nil
}
