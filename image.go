package holefs

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/extentfs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

// openImage opens an image made by Mkfs.
func openImage(path string, opts Options) (*FS, error) {
	if isZonedImage(path) {
		return openZonedImage(path, opts)
	}
	perr := func(err error) error { return &fs.PathError{Op: "open", Path: path, Err: err} }
	switch {
	case opts.Backend != "" && opts.Backend != BackendExtent && opts.Backend != BackendExt2:
		return nil, perr(fmt.Errorf("images use the %s or %s backend, not %q: %w", BackendExtent, BackendExt2, opts.Backend, syscall.EINVAL))
	case opts.Device != nil:
		return nil, perr(fmt.Errorf("Options.Device and an image path are exclusive: %w", syscall.EINVAL))
	case opts.LockMode == LockNone && !opts.UnsafeLockNone:
		return nil, perr(fmt.Errorf("lock mode none lets reads cache freed blocks and writeback scribble on them; "+
			"it opens an image only with Options.UnsafeLockNone: %w", syscall.EINVAL))
	}
	img, err := meta.Open(path, meta.OpenOptions{AcceptRollback: opts.AcceptRollback})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, perr(err)
	}
	// The backend is the image's: Options.Backend may only agree.
	backend := BackendExtent
	if img.SB.Incompat&meta.IncompatExt2 != 0 {
		backend = BackendExt2
	}
	if opts.Backend != "" && opts.Backend != backend {
		img.Close()
		return nil, perr(fmt.Errorf("the image was made for the %s backend, not %s: %w", backend, opts.Backend, syscall.EINVAL))
	}
	restore := restoreImage
	if backend == BackendExt2 {
		restore = restoreExt2Image
	}
	fsys, err := restore(img, opts)
	if err != nil {
		img.Close()
		return nil, perr(err)
	}
	return fsys, nil
}

func restoreImage(img *meta.Image, opts Options) (*FS, error) {
	snap, err := img.Load(nil)
	if err != nil {
		return nil, fmt.Errorf("%w (run holefs fsck)", err)
	}
	files := make(map[uint64][]meta.Extent, len(snap.Extents))
	var orphans []meta.Extent
	for ino, xs := range snap.Extents {
		rec, ok := snap.Inodes[ino]
		switch {
		case !ok:
			return nil, fmt.Errorf("extents of inode %d, which does not exist (run holefs fsck): %w", ino, syscall.EUCLEAN)
		case rec.Mode&syscall.S_IFMT != syscall.S_IFREG:
			return nil, fmt.Errorf("extents of inode %d, which is not a regular file (run holefs fsck): %w", ino, syscall.EUCLEAN)
		case rec.Nlink == 0:
			// An orphan: vfs.Restore drops it and the commit below makes
			// that durable before anything can allocate its blocks.
			orphans = append(orphans, xs...)
			continue
		}
		files[ino] = xs
	}
	file, dev, err := openImageData(img, opts)
	if err != nil {
		return nil, err
	}
	// Block 0 is written below the checksums: it is no data block.
	raw := dev
	var sums *blockdev.Checksummed
	withSums := img.SB.Incompat&meta.IncompatDataChecksums != 0
	if withSums {
		sums = blockdev.NewChecksummed(dev, img.Checksum)
		dev = sums
	}
	jopts := journalOptions(opts, dev, raw)
	if withSums {
		jopts.Checksums = sums
	}
	j := img.Journal(jopts)
	store, err := extentfs.Restore(img.SB.Blocks, files, j, withSums, img.SB.Incompat&meta.IncompatReflink != 0)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%w (run holefs fsck)", err)
	}
	if !opts.NoDiscard {
		store.SetDiscard(file.Discard)
	}
	// Orphans (files unlinked while open when the image was last used)
	// are dropped by Restore and committed there, so their blocks are free.
	v, err := restoreVFS(img, opts, snap, store, dev, j, storeFiles(store.File))
	if err != nil {
		return nil, err
	}
	if !opts.NoDiscard && len(orphans) > 0 {
		// Their blocks were free from the start, so no commit releases
		// them: they are discarded here, before anyone can allocate them.
		// A failure costs space only, as in Release.
		_, _ = store.TrimExtents(orphans, file.Discard)
	}
	return &FS{v: v, name: img.Dir, img: img, sums: sums, store: store, data: file}, nil
}

// openImageData opens an image's data file and returns it (for discards)
// and the device the backend writes through: the file with Options'
// latency and WrapDevice, the same for every image backend.
func openImageData(img *meta.Image, opts Options) (*blockdev.File, blockdev.Device, error) {
	// The device holds the log past the store's blocks: its writes and
	// flushes go through the same device (and Options.WrapDevice).
	file, err := blockdev.OpenFile(img.DataPath(), img.SB.Blocks+img.WALBlocks())
	if err != nil {
		return nil, nil, err
	}
	dev := withLatency(file, opts)
	if opts.WrapDevice != nil {
		dev = opts.WrapDevice(dev)
	}
	return file, dev, nil
}

// journalOptions are an image journal's options: dev is flushed at each
// commit, raw takes the superblock (block 0, below any checksums), and
// Options' commit interval and hooks apply.
func journalOptions(opts Options, dev, raw blockdev.Device) meta.JournalOptions {
	jopts := meta.JournalOptions{Flush: dev.Flush, Interval: opts.CommitInterval,
		WriteBlock0: func(p []byte) error { return raw.WriteBlocks(p, 0) },
		WriteLog:    raw.WriteBlocks}
	if h := opts.Hooks; h != nil {
		jopts.BeforeCommit, jopts.AfterCommit = h.BeforeCommit, h.AfterCommit
		jopts.BeforeCheckpoint, jopts.AfterCheckpoint = h.BeforeCheckpoint, h.AfterCheckpoint
	}
	return jopts
}

// storeFiles adapts a store's File method to the lookup vfs.Restore
// takes, where a missing file must be a nil blockmap.File, not a typed nil
// pointer.
func storeFiles[F blockmap.File](file func(ino uint64) (F, bool)) func(ino uint64) blockmap.File {
	return func(ino uint64) blockmap.File {
		if f, ok := file(ino); ok {
			return f
		}
		return nil
	}
}

// restoredStore is a backend restored from an image: it maps the files and
// keeps freed blocks quarantined until the journal commits.
type restoredStore interface {
	blockmap.Store
	meta.Quarantine
}

// restoreVFS builds the vfs of a restored image over store (files gives
// each inode's block map), starts its journal and commits at once what
// Restore changed (orphans dropped, and what the backend pruned), so that
// none of it is left for a crash to bring back. It closes dev if the vfs
// cannot be built.
func restoreVFS(img *meta.Image, opts Options, snap *meta.Snapshot, store restoredStore, dev blockdev.Device,
	j *meta.Journal, files func(ino uint64) blockmap.File) (*vfs.FS, error) {
	copts, vhooks := engineOptions(opts)
	backend := vfs.Backend{Store: store, Device: dev, Journal: j,
		NoSpecialFiles: img.SB.Incompat&meta.IncompatSpecialFiles == 0}
	v, err := vfs.Restore(backend, copts, vhooks, snap, files)
	if err != nil {
		dev.Close()
		return nil, err
	}
	j.Start(store)
	if err := j.Commit(); err != nil {
		return nil, errors.Join(err, v.Close())
	}
	return v, nil
}

// Discarded returns how many freed blocks of an image were punched out of
// its data file since Open (not counting Trim), and how many punches
// failed (each costs only the space it would have given back); zero
// without an image.
func (f *FS) Discarded() (blocks, failed int64) {
	if f.store == nil {
		return 0, 0
	}
	return f.store.Discarded()
}

// Trim punches every free block out of an image's data file, as fstrim(8)
// does for a mounted filesystem, whether or not Options.NoDiscard is set,
// and returns the bytes of free space it trimmed (some may have been holes
// already). It syncs first, so that the blocks freed since the last commit
// are free, not quarantined. A filesystem without an image has nothing to
// trim, and an ext2 image cannot yet: EOPNOTSUPP.
func (f *FS) Trim() (int64, error) {
	if f.store == nil {
		return 0, pathErr("trim", f.name, syscall.EOPNOTSUPP)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	n, err := f.store.Trim(f.data.Discard)
	return n * blockdev.BlockSize, pathErr("trim", f.name, err)
}
