package holefs

import (
	"fmt"
	"io/fs"
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

// openZonefs builds the zonefs namespace over dev: the root, cnv/ (only
// if there are conventional zones, as zonefs) and seq/, directories of
// mode 0555 and files of mode 0640 (zonefs's defaults), each file sized
// from the zone report. A zone reported read-only or offline at mount has
// mode 0, as zonefs gives it.
func openZonefs(dev *blockdev.Zoned, opts Options, name string) (*FS, error) {
	perr := func(err error) error { return &fs.PathError{Op: "open", Path: name, Err: err} }
	errs, err := zonefs.ParseErrors(opts.ZoneErrors)
	if err != nil {
		return nil, perr(err)
	}
	store, err := zonefs.New(dev, errs)
	if err != nil {
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
