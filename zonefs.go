package holefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap/zonefs"
	"github.com/holefs/holefs/vfs"
)

// BackendZonefs is Linux's zonefs on a zoned device: the files cnv/N and
// seq/N are the device's conventional and sequential zones. Sequential
// files take only direct writes at their end (O_DIRECT), and truncate to
// 0 resets a zone, to its capacity finishes it. See package
// blockmap/zonefs and Options.Zoned.
const BackendZonefs = "zonefs"

// defaultZoned is the in-memory zoned device of BackendZonefs when
// Options.Zoned gives no geometry: 1 MiB zones over SizeBytes, the first
// four conventional.
func defaultZoned(o blockdev.ZonedOptions, size int64) blockdev.ZonedOptions {
	if o.ZoneBlocks == 0 {
		o.ZoneBlocks = (1 << 20) / blockdev.BlockSize
	}
	if o.Zones == 0 {
		o.Zones = int(max(size/(o.ZoneBlocks*blockdev.BlockSize), 1))
		if o.Conventional == 0 {
			o.Conventional = min(4, o.Zones/2)
		}
	}
	return o
}

// openZonefs builds the zonefs namespace over dev, which it closes on
// error: the root, cnv/ (only
// if there are conventional zones, as zonefs) and seq/, directories of
// mode 0555 and files of mode 0640 (zonefs's defaults), each file sized
// from the zone report. A zone reported read-only or offline at mount has
// mode 0, as zonefs gives it.
func openZonefs(dev *blockdev.Zoned, opts Options, name string) (*FS, error) {
	perr := func(err error) error { return &fs.PathError{Op: "open", Path: name, Err: err} }
	errs, err := zonefs.ParseErrors(opts.ZoneErrors)
	var store *zonefs.FS
	if err == nil {
		store, err = zonefs.New(dev, zonefs.Mount{Errors: errs, ExplicitOpen: opts.ZoneExplicitOpen})
	}
	if err != nil {
		dev.Close()
		return nil, perr(err)
	}
	copts, vhooks := engineOptions(opts)
	v := vfs.New(vfs.Backend{Store: store, Device: dev, FixedNamespace: true}, copts, vhooks)
	fail := func(err error) (*FS, error) {
		v.Close()
		return nil, perr(err)
	}
	root := v.Root()
	if err := root.Setattr(vfs.SetAttr{Valid: vfs.SetMode, Mode: 0o555}); err != nil {
		return fail(err)
	}
	dirs := map[bool]*vfs.Inode{}
	for _, d := range []struct {
		name string
		seq  bool
		ino  uint64
	}{{"cnv", false, 2}, {"seq", true, 3}} {
		if !slices.ContainsFunc(store.Files(), func(zf *zonefs.File) bool { return zf.Sequential() == d.seq }) {
			continue
		}
		in, err := v.AddFixed(root, d.name, syscall.S_IFDIR|0o555, d.ino, 0)
		if err != nil {
			return fail(err)
		}
		dirs[d.seq] = in
	}
	for _, zf := range store.Files() {
		size, err := zf.Size()
		if err != nil {
			return fail(err)
		}
		perm := uint32(0o640)
		if ro, off := zf.Condition(); ro || off {
			perm = 0
		}
		if _, err := v.AddFixed(dirs[zf.Sequential()], strconv.Itoa(zf.Index()), syscall.S_IFREG|perm, zf.Ino(), size); err != nil {
			return fail(fmt.Errorf("zone %d: %w", zf.Zone(), err))
		}
	}
	return &FS{v: v, name: name}, nil
}

// zonedData is the data file of a zoned image; blockdev.ZoneStatePath of
// it holds the zone state, the write pointers a disk would report.
const zonedData = "data"

// isZonedImage reports whether the image directory at path holds a zoned
// device.
func isZonedImage(path string) bool { return ZonedImageData(path) != "" }

// ZonedImageData returns the data file of the zoned device of the zoned
// image at path (holefs mkfs --zoned), which blockdev.OpenZonedFile
// opens, or "" if path is no zoned image: the one place that knows the
// layout, for tools that open the device themselves (holefs fsck).
func ZonedImageData(path string) string {
	data := filepath.Join(path, zonedData)
	if _, err := os.Stat(blockdev.ZoneStatePath(data)); err != nil {
		return ""
	}
	return data
}

// mkfsZoned makes a zoned image: the directory path holding a
// file-backed zoned device of geometry o, every sequential zone empty.
// It has no other metadata: zonefs's files and their sizes are the
// device's zone report. An existing zoned image is replaced only with
// force; a directory holding anything else is never touched.
func mkfsZoned(path string, o blockdev.ZonedOptions, force bool) error {
	perr := func(err error) error { return &fs.PathError{Op: "mkfs", Path: path, Err: err} }
	ents, err := os.ReadDir(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(path, 0o755); err != nil {
			return perr(err)
		}
	case err != nil:
		return perr(err)
	}
	data := filepath.Join(path, zonedData)
	for _, e := range ents {
		switch {
		case e.Name() != zonedData && e.Name() != filepath.Base(blockdev.ZoneStatePath(data)):
			return perr(fmt.Errorf("the directory holds %s, which is no part of a zoned image: %w", e.Name(), syscall.ENOTEMPTY))
		case !force:
			return perr(fmt.Errorf("an image exists there (--force replaces it): %w", syscall.EEXIST))
		}
	}
	if len(ents) > 0 {
		// Lock the old device first: one in use is EBUSY and kept.
		old, err := blockdev.OpenZonedFile(data)
		if err != nil && errors.Is(err, syscall.EBUSY) {
			return perr(err)
		}
		if err == nil {
			defer old.Close()
		}
		if err := os.Remove(blockdev.ZoneStatePath(data)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return perr(err)
		}
	}
	dev, err := blockdev.CreateZonedFile(data, o)
	if err != nil {
		return perr(err)
	}
	return pathErr("mkfs", path, dev.Close())
}

// openZonedImage opens a zoned image: the device, locked against other
// opens (EBUSY), its zone report making the files.
func openZonedImage(path string, opts Options) (*FS, error) {
	perr := func(err error) error { return &fs.PathError{Op: "open", Path: path, Err: err} }
	switch {
	case opts.Backend != "" && opts.Backend != BackendZonefs:
		return nil, perr(fmt.Errorf("a zoned image uses the %s backend, not %q: %w", BackendZonefs, opts.Backend, syscall.EINVAL))
	case opts.Device != nil:
		return nil, perr(fmt.Errorf("Options.Device and an image path are exclusive: %w", syscall.EINVAL))
	case opts.LockMode == LockNone && !opts.UnsafeLockNone:
		return nil, perr(fmt.Errorf("lock mode none lets reads cache removed data; "+
			"it opens an image only with Options.UnsafeLockNone: %w", syscall.EINVAL))
	}
	dev, err := blockdev.OpenZonedFile(filepath.Join(path, zonedData))
	if err != nil {
		return nil, perr(err)
	}
	return openZonefs(dev, opts, path)
}
