// Package zonefs is holefs's zonefs backend: every zone of a zoned device
// (blockdev.Zoned) is a file, as in Linux's zonefs
// (Documentation/filesystems/zonefs.rst; the rules below are Linux's, from
// fs/zonefs, written from knowledge of it). The namespace is fixed: cnv/
// holds the conventional zones and seq/ the sequential ones, each file
// named by its index among the zones of its type. There is no metadata
// but the device's zone report: a sequential file's size is its zone's
// write pointer, a conventional file's its capacity.
//
// The block map of a zone file is the zone itself (page i is block i of
// the zone): pages below the write pointer are Mapped, those from it to
// the capacity Unwritten (they read as zeros and a direct write at the
// write pointer fills them), and pages past the capacity a hole. The VFS
// applies zonefs's file rules through blockmap.Zone.
//
// Errors follow zonefs's errors= mount option (Errors): after an I/O
// error the zone is reported and the file's size and access set from the
// report and the option.
package zonefs

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/blockmap"
)

// FirstIno is the inode number of zone 0's file; zone i's is FirstIno+i.
// The root and the cnv/ and seq/ directories take the numbers before.
const FirstIno = 4

// Errors is the policy for I/O errors, zonefs's errors= mount option.
type Errors uint8

// The policies, as zonefs.rst's table of post-error states.
const (
	// ErrorsRemountRO (the default): the filesystem turns read-only
	// (EROFS); a file keeps the size it had unless its zone went offline
	// (size 0, no access).
	ErrorsRemountRO Errors = iota
	// ErrorsZoneRO: the zone's file turns read-only (EPERM on writes).
	ErrorsZoneRO
	// ErrorsZoneOffline: the zone's file turns inaccessible, size 0.
	ErrorsZoneOffline
	// ErrorsRepair: the file's size is fixed to the write pointer the
	// zone reports, and writing goes on from there.
	ErrorsRepair
)

var errorsNames = [...]string{"remount-ro", "zone-ro", "zone-offline", "repair"}

func (e Errors) String() string {
	if int(e) < len(errorsNames) {
		return errorsNames[e]
	}
	return "Errors(" + strconv.Itoa(int(e)) + ")"
}

// ParseErrors parses an errors= value: remount-ro, zone-ro, zone-offline
// or repair; "" is remount-ro.
func ParseErrors(s string) (Errors, error) {
	if s == "" {
		return ErrorsRemountRO, nil
	}
	for i, n := range errorsNames {
		if n == s {
			return Errors(i), nil
		}
	}
	return 0, fmt.Errorf("zonefs: errors=%q: want remount-ro, zone-ro, zone-offline or repair: %w", s, syscall.EINVAL)
}

// Mount is zonefs's mount options.
type Mount struct {
	// Errors is the errors= policy.
	Errors Errors
	// ExplicitOpen is the explicit-open option: opening a sequential file
	// for writing opens its zone explicitly (REQ_OP_ZONE_OPEN) and the
	// last close of a writer closes it; past the device's max-open limit,
	// such an open is EBUSY instead of a write failing later.
	ExplicitOpen bool
}

// FS is the block maps of a zoned device's zone files.
type FS struct {
	dev   *blockdev.Zoned
	mount Mount
	ro    atomic.Bool  // errors=remount-ro took effect
	wro   atomic.Int32 // sequential files open for writing (zonefs's s_wro_seq_files)
	files []*File      // by zone; immutable
}

// New returns the zone files of dev, their state taken from its zone
// report, with the mount options m.
func New(dev *blockdev.Zoned, m Mount) (*FS, error) {
	zones, err := dev.ReportZones(0, dev.NumZones())
	if err != nil {
		return nil, err
	}
	f := &FS{dev: dev, mount: m}
	var ncnv, nseq int
	for i, zn := range zones {
		zf := &File{fs: f, zone: i, seq: zn.Type == blockdev.ZoneSequential, capPages: zn.Capacity,
			start: zn.Start, len: zn.Len}
		if zf.seq {
			zf.index, nseq = nseq, nseq+1
		} else {
			zf.index, ncnv = ncnv, ncnv+1
		}
		switch zn.Cond {
		case blockdev.CondReadOnly:
			zf.readOnly = true
		case blockdev.CondOffline:
			zf.offline = true
		}
		f.files = append(f.files, zf)
	}
	return f, nil
}

// Device returns the zoned device.
func (f *FS) Device() *blockdev.Zoned { return f.dev }

// Files returns every zone's file, by zone.
func (f *FS) Files() []*File { return f.files }

// ReadOnly reports whether an error turned the filesystem read-only
// (errors=remount-ro).
func (f *FS) ReadOnly() bool { return f.ro.Load() }

// NewFile returns the file of the zone numbered ino-FirstIno. zonefs
// makes no other files: an inode number of no zone gets a file with no
// zone, whose every call fails with EIO, as a released one.
func (f *FS) NewFile(ino uint64) blockmap.File {
	if ino < FirstIno || ino-FirstIno >= uint64(len(f.files)) {
		return noZone{}
	}
	return f.files[ino-FirstIno]
}

// Statfs returns the blocks of every zone's capacity and, free, those
// still writable in sequential zones (zonefs's statfs: conventional
// zones count as used).
func (f *FS) Statfs() (total, free int64) {
	zones, err := f.dev.ReportZones(0, f.dev.NumZones())
	if err != nil {
		return 0, 0
	}
	for _, zn := range zones {
		total += zn.Capacity
		if zn.Type == blockdev.ZoneSequential && zn.Cond != blockdev.CondReadOnly && zn.Cond != blockdev.CondOffline {
			free += zn.Capacity - zn.Written()
		}
	}
	return total, free
}

// File is the block map of one zone's file.
type File struct {
	fs         *FS
	zone       int   // zone number on the device
	index      int   // number among the zones of its type: the file name
	seq        bool  // sequential write required
	capPages   int64 // capacity in pages (blocks)
	start, len int64 // the zone's first block and size

	// mu is a leaf but for the zone commands of OpenWrite, CloseWrite and
	// Reset, which the zoned device's locks serve below it.
	mu       sync.Mutex
	readOnly bool // +checklocks:mu
	offline  bool // +checklocks:mu
	writers  int  // handles open for writing; +checklocks:mu
	open     bool // explicitly opened by explicit-open (ZONEFS_ZONE_OPEN); +checklocks:mu
}

// Name returns the file's path: cnv/N or seq/N.
func (zf *File) Name() string {
	if zf.seq {
		return "seq/" + strconv.Itoa(zf.index)
	}
	return "cnv/" + strconv.Itoa(zf.index)
}

// Index returns the file's number among the zones of its type: its name
// in cnv/ or seq/.
func (zf *File) Index() int { return zf.index }

// Zone returns the file's zone number on the device.
func (zf *File) Zone() int { return zf.zone }

// Ino returns the file's inode number.
func (zf *File) Ino() uint64 { return FirstIno + uint64(zf.zone) }

// Sequential reports a sequential-write-required zone.
func (zf *File) Sequential() bool { return zf.seq }

// Capacity returns the zone capacity in bytes.
func (zf *File) Capacity() int64 { return zf.capPages * blockmap.PageSize }

// Condition reports whether the zone's file is read-only or offline,
// from the zone's condition at New or an error since.
func (zf *File) Condition() (readOnly, offline bool) {
	zf.mu.Lock()
	defer zf.mu.Unlock()
	return zf.readOnly, zf.offline
}

// Size returns the file size the zone report gives (zonefs's mount-time
// rule): the write pointer of a sequential zone, the capacity of a full
// or conventional one, 0 for an offline zone and for a sequential zone
// reported read-only (its write pointer is meaningless).
func (zf *File) Size() (int64, error) {
	zn, err := zf.fs.dev.Report(zf.zone)
	if err != nil {
		return 0, err
	}
	switch {
	case zn.Cond == blockdev.CondOffline:
		return 0, nil
	case zn.Cond == blockdev.CondReadOnly && zf.seq:
		return 0, nil
	}
	return zn.Written() * blockmap.PageSize, nil
}

// written returns the pages below the write pointer.
func (zf *File) written() (int64, error) {
	if !zf.seq {
		return zf.capPages, nil
	}
	zn, err := zf.fs.dev.Report(zf.zone)
	if err != nil {
		return 0, err
	}
	return zn.Written(), nil
}

// Lookup maps pages below the write pointer to the zone's blocks
// (Mapped), those up to the capacity as Unwritten, the rest as a hole.
func (zf *File) Lookup(index, max int64) (blockmap.Extent, error) {
	if index < 0 || max <= 0 {
		return blockmap.Extent{}, fmt.Errorf("zonefs: lookup of %d pages at %d: %w", max, index, syscall.EINVAL)
	}
	wp, err := zf.written()
	if err != nil {
		return blockmap.Extent{}, err
	}
	switch {
	case index < wp:
		return blockmap.Extent{Page: index, Count: min(max, wp-index), Kind: blockmap.Mapped, Block: index}, nil
	case index < zf.capPages:
		return blockmap.Extent{Page: index, Count: min(max, zf.capPages-index), Kind: blockmap.Unwritten, Block: index}, nil
	}
	return blockmap.Extent{Page: index, Count: max, Kind: blockmap.Hole, Block: -1}, nil
}

// Allocate has nothing to allocate: the zone is the storage. Past the
// capacity it is EFBIG.
func (zf *File) Allocate(index, n int64) error {
	if index < 0 || n < 0 || index+n > zf.capPages {
		return fmt.Errorf("zonefs: %s: pages [%d, %d) past the zone capacity of %d: %w", zf.Name(), index, index+n, zf.capPages, syscall.EFBIG)
	}
	return nil
}

// MarkWritten has nothing to record: the device moved the write pointer.
func (zf *File) MarkWritten(index, n int64) error { return nil }

func (zf *File) unsupported(op string) error {
	return fmt.Errorf("zonefs: %s of %s: zone files have no %s: %w", op, zf.Name(), op, syscall.EOPNOTSUPP)
}

// Punch is EOPNOTSUPP: zonefs has no fallocate.
func (zf *File) Punch(index, n int64) error { return zf.unsupported("punch") }

// ZeroRange is EOPNOTSUPP: zonefs has no fallocate.
func (zf *File) ZeroRange(index, n int64) error { return zf.unsupported("zero range") }

// Collapse is EOPNOTSUPP: zonefs has no fallocate.
func (zf *File) Collapse(index, n int64) error { return zf.unsupported("collapse") }

// Insert is EOPNOTSUPP: zonefs has no fallocate.
func (zf *File) Insert(index, n int64) error { return zf.unsupported("insert") }

// Truncate to page 0 resets a sequential zone and to its capacity
// finishes it; anything else, and any truncation of a conventional zone,
// is EPERM (zonefs_file_truncate).
func (zf *File) Truncate(index int64) error {
	switch {
	case !zf.seq:
	case index == 0:
		return zf.Reset()
	case index == zf.capPages:
		return zf.Finish()
	}
	return fmt.Errorf("zonefs: truncate %s to page %d: only 0 and the capacity (%d): %w", zf.Name(), index, zf.capPages, syscall.EPERM)
}

// Reset resets the zone (REQ_OP_ZONE_RESET); a zone explicit-open
// opened is opened again, empty, for its writers (zonefs_file_truncate).
func (zf *File) Reset() error {
	zf.mu.Lock()
	defer zf.mu.Unlock()
	if err := zf.fs.dev.ResetZone(zf.zone); err != nil {
		return err
	}
	if zf.open {
		// zonefs keeps the zone open flag after a failed re-open, so
		// the last writer's close still closes it (a no-op for an empty
		// zone).
		if err := zf.fs.dev.OpenZone(zf.zone); err != nil {
			return fmt.Errorf("zonefs: reset %s: %w: %w", zf.Name(), blockmap.ErrZoneReopen, err)
		}
	}
	return nil
}

// Finish finishes the zone (REQ_OP_ZONE_FINISH): full, it is open no
// more.
func (zf *File) Finish() error {
	zf.mu.Lock()
	defer zf.mu.Unlock()
	if err := zf.fs.dev.FinishZone(zf.zone); err != nil {
		return err
	}
	zf.open = false
	return nil
}

// OpenWrite accounts a handle of the file opened for writing. With
// explicit-open, the first one of a sequential file opens its zone
// explicitly, or is EBUSY when as many sequential files as the device
// has open zones are open for writing (zonefs_seq_file_write_open).
func (zf *File) OpenWrite() error {
	if !zf.seq {
		return nil
	}
	zf.mu.Lock()
	defer zf.mu.Unlock()
	if zf.writers == 0 {
		wro := zf.fs.wro.Add(1)
		if zf.fs.mount.ExplicitOpen {
			if max := zf.fs.dev.Options().MaxOpen; max > 0 && int(wro) > max {
				zf.fs.wro.Add(-1)
				return fmt.Errorf("zonefs: open %s for writing: %d sequential files open for writing, the device's max open zones: %w", zf.Name(), wro-1, syscall.EBUSY)
			}
			if zn, err := zf.fs.dev.Report(zf.zone); err != nil || zn.Cond != blockdev.CondFull {
				if err == nil {
					err = zf.fs.dev.OpenZone(zf.zone)
				}
				if err != nil {
					zf.fs.wro.Add(-1)
					return err
				}
				zf.open = true
			}
		}
	}
	zf.writers++
	return nil
}

// CloseWrite is the close of a handle OpenWrite accounted; the last one
// closes a zone explicit-open opened (zonefs_seq_file_write_close). A
// failed close is returned for the caller to handle as an I/O error; the
// zone stays accounted open, as in zonefs.
func (zf *File) CloseWrite() error {
	if !zf.seq {
		return nil
	}
	zf.mu.Lock()
	defer zf.mu.Unlock()
	if zf.writers--; zf.writers > 0 {
		return nil
	}
	if zf.open {
		if err := zf.fs.dev.CloseZone(zf.zone); err != nil {
			return err
		}
		zf.open = false
	}
	zf.fs.wro.Add(-1)
	return nil
}

// NextData returns index if it is below the write pointer, else -1.
func (zf *File) NextData(index int64) (int64, error) {
	wp, err := zf.written()
	if err != nil {
		return -1, err
	}
	if index < wp {
		return max(index, 0), nil
	}
	return -1, nil
}

// Blocks returns the blocks written: to the write pointer, or the whole
// capacity of a conventional zone.
func (zf *File) Blocks() int64 {
	wp, err := zf.written()
	if err != nil {
		return 0
	}
	return wp
}

// Release does nothing: a zone outlives its inode.
func (zf *File) Release() error { return nil }

// Device returns the zone as a device: block i is the zone's block i.
func (zf *File) Device() blockdev.Device { return zoneDevice{zf} }

// WritebackDevice returns the zone as a device: only conventional zones
// have dirty pages (zonefs refuses buffered writes and writable shared
// mappings of sequential files), and their size is the capacity.
func (zf *File) WritebackDevice(func() int64) blockdev.Device { return zoneDevice{zf} }

// CheckWrite returns EROFS after errors=remount-ro took effect, EPERM
// for a read-only or offline zone (an immutable file in zonefs).
func (zf *File) CheckWrite() error {
	if zf.fs.ro.Load() {
		return fmt.Errorf("zonefs: write to %s: the filesystem went read-only after an I/O error (errors=remount-ro): %w", zf.Name(), syscall.EROFS)
	}
	zf.mu.Lock()
	defer zf.mu.Unlock()
	switch {
	case zf.offline:
		return fmt.Errorf("zonefs: write to %s: the zone is offline: %w", zf.Name(), syscall.EPERM)
	case zf.readOnly:
		return fmt.Errorf("zonefs: write to %s: the zone is read-only: %w", zf.Name(), syscall.EPERM)
	}
	return nil
}

// CheckRead returns EPERM for an offline zone (zonefs_file_read_iter).
func (zf *File) CheckRead() error {
	zf.mu.Lock()
	defer zf.mu.Unlock()
	if zf.offline {
		return fmt.Errorf("zonefs: read of %s: the zone is offline: %w", zf.Name(), syscall.EPERM)
	}
	return nil
}

// IOError is zonefs_handle_io_error: it reports the zone and, by its
// condition and the errors= policy, returns the file's size and the
// permission bits to clear.
func (zf *File) IOError(write bool, size int64) (int64, uint32) {
	zn, err := zf.fs.dev.Report(zf.zone)
	if err != nil {
		return size, 0
	}
	zf.mu.Lock()
	defer zf.mu.Unlock()
	// The size the zone's data gives (zonefs_check_zone_condition).
	data := zn.Written() * blockmap.PageSize
	switch zn.Cond {
	case blockdev.CondOffline:
		zf.offline = true
	case blockdev.CondReadOnly:
		// Its write pointer is meaningless: the size stays as it was,
		// so that what was written can still be read.
		zf.readOnly = true
		if zf.seq {
			data = size
		}
	}
	if !zf.readOnly && !zf.offline && !write && size == data {
		return size, 0 // a plain read error: reported to the reader only
	}
	var clearBits uint32
	switch {
	case zf.offline || zf.fs.mount.Errors == ErrorsZoneOffline:
		zf.offline, data, clearBits = true, 0, 0o777
	case zf.readOnly || zf.fs.mount.Errors == ErrorsZoneRO:
		zf.readOnly, data, clearBits = true, size, 0o222
	case zf.fs.mount.Errors == ErrorsRemountRO && data > size:
		data = size // never expose what the file did not hold
	}
	if zf.fs.mount.Errors == ErrorsRemountRO {
		zf.fs.ro.Store(true)
	}
	return data, clearBits
}

// zoneDevice is one zone as a device of its own.
type zoneDevice struct{ zf *File }

func (d zoneDevice) check(op string, p []byte, block int64) error {
	n := int64(len(p) / blockdev.BlockSize)
	if block < 0 || len(p)%blockdev.BlockSize != 0 || block+n > d.zf.len {
		return fmt.Errorf("zonefs: %s of %d bytes at block %d of %s: outside the %d-block zone: %w", op, len(p), block, d.zf.Name(), d.zf.len, syscall.EINVAL)
	}
	return nil
}

// ReadBlocks reads from the zone.
func (d zoneDevice) ReadBlocks(p []byte, block int64) error {
	if err := d.check("read", p, block); err != nil {
		return err
	}
	return d.zf.fs.dev.ReadBlocks(p, d.zf.start+block)
}

// WriteBlocks writes to the zone, at its write pointer if sequential.
func (d zoneDevice) WriteBlocks(p []byte, block int64) error {
	if err := d.check("write", p, block); err != nil {
		return err
	}
	return d.zf.fs.dev.WriteBlocks(p, d.zf.start+block)
}

// Flush flushes the device, zone state included.
func (d zoneDevice) Flush() error { return d.zf.fs.dev.Flush() }

// NumBlocks returns the zone size.
func (d zoneDevice) NumBlocks() int64 { return d.zf.len }

// Close does nothing: the filesystem closes the zoned device.
func (d zoneDevice) Close() error { return nil }

// noZone is the file of an inode number that names no zone.
type noZone struct{}

var errNoZone = fmt.Errorf("zonefs: no zone has this inode: %w", syscall.EIO)

func (noZone) Lookup(int64, int64) (blockmap.Extent, error) { return blockmap.Extent{}, errNoZone }
func (noZone) Allocate(int64, int64) error                  { return errNoZone }
func (noZone) MarkWritten(int64, int64) error               { return errNoZone }
func (noZone) Punch(int64, int64) error                     { return errNoZone }
func (noZone) ZeroRange(int64, int64) error                 { return errNoZone }
func (noZone) Collapse(int64, int64) error                  { return errNoZone }
func (noZone) Insert(int64, int64) error                    { return errNoZone }
func (noZone) Truncate(int64) error                         { return errNoZone }
func (noZone) NextData(int64) (int64, error)                { return -1, errNoZone }
func (noZone) Blocks() int64                                { return 0 }
func (noZone) Release() error                               { return nil }
