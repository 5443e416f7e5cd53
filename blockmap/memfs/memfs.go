// Package memfs is the tmpfs-like backend: there is no block device, the
// page cache pages are the storage. Its block map only records which pages
// of a file are allocated (written or fallocated), so that space is
// accounted against the filesystem's size (ENOSPC, like tmpfs's size=),
// SEEK_DATA finds them and stat counts them; every allocated page reads
// back as Kind Memory and the page cache keeps such pages unevictable.
//
// The allocation bookkeeping is extentfs's extent map with its block
// numbers ignored: the same tree, splits and merges, and the same
// all-or-nothing ENOSPC.
package memfs

import (
	"github.com/holefs/holefs/blockmap"
	"github.com/holefs/holefs/blockmap/extentfs"
)

// FS is a memory filesystem's space: up to capacity pages.
type FS struct {
	ext *extentfs.FS
}

// New returns a memory filesystem store of capacity pages.
func New(capacity int64) *FS { return &FS{ext: extentfs.New(capacity)} }

// NewFile returns an empty file.
func (f *FS) NewFile(ino uint64) blockmap.File { return file{f.ext.NewFile(ino)} }

// Statfs returns the capacity and free pages.
func (f *FS) Statfs() (total, free int64) { return f.ext.Statfs() }

// CheckInvariants verifies the space accounting (see extentfs).
func (f *FS) CheckInvariants() error { return f.ext.CheckInvariants() }

// file reports every allocated page as Memory: its data lives in the page
// cache, and a page not cached there was never written and reads as zeros.
type file struct {
	blockmap.File
}

func (f file) Lookup(index, max int64) (blockmap.Extent, error) {
	e, err := f.File.Lookup(index, max)
	if err == nil && e.Kind != blockmap.Hole {
		e.Kind, e.Block = blockmap.Memory, 0
	}
	return e, err
}

// MarkWritten has nothing to record: memory pages are never written back.
func (f file) MarkWritten(index, n int64) error { return nil }

// NextData returns the first allocated page at or after index, or -1.
func (f file) NextData(index int64) (int64, error) {
	span := maxPages - index
	if span <= 0 {
		return -1, nil
	}
	e, err := f.File.Lookup(index, span)
	switch {
	case err != nil:
		return -1, err
	case e.Kind != blockmap.Hole:
		return index, nil
	case e.Count == span:
		return -1, nil
	}
	return e.End(), nil
}

// maxPages bounds file offsets, in pages (vfs.MaxFileSize).
const maxPages = int64(1) << 30
