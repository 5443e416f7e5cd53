//go:build unix

package blockdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The zone state file of a file-backed zoned device: what a drive keeps
// in its own metadata and reports through report-zones. A header with the
// geometry, then one record per zone, each with its own checksum so that
// a torn record is detected, never read as a write pointer:
//
//	header (64 bytes): magic "HFSZONED", version u32, zone blocks u64,
//	  zones u32, conventional u32, capacity u64, max open u32,
//	  max active u32, crc32c of the bytes before it u32
//	record (16 bytes): write pointer relative to the zone start u64,
//	  condition u8, type u8, 2 zero bytes, crc32c of the 12 bytes before it
const (
	zoneMagic      = "HFSZONED"
	zoneVersion    = 1
	zoneHeaderSize = 64
	zoneRecordSize = 16
)

// zoneStore is where a zoned device records its zone state: the state
// file (zoneState), or blocks of a plain device (deviceState).
type zoneStore interface {
	// put writes zone i's record. The caller holds the device's mu.
	put(i int, zn Zone) error
	// flush makes the records put so far durable.
	flush() error
	close() error
}

// zoneState is the open state file.
type zoneState struct {
	mu   sync.Mutex // leaf: f
	f    *os.File   // nil once closed; +checklocks:mu
	path string
}

// ZoneStatePath returns the path of the zone state file of the zoned
// device whose data is at path.
func ZoneStatePath(path string) string { return path + ".zones" }

// CreateZonedFile makes a file-backed zoned device: its data in the file
// at path (sparse, created or emptied) and its zone state, every
// sequential zone empty, in ZoneStatePath(path), which must not exist
// (EEXIST).
func CreateZonedFile(path string, opts ZonedOptions) (*Zoned, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	sp := ZoneStatePath(path)
	f, err := os.OpenFile(sp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("blockdev: create zoned device: %w", err)
	}
	if err := lockState(f); err != nil {
		f.Close()
		return nil, err
	}
	z := newZoned(nil, &zoneState{f: f, path: sp}, opts, nil)
	if _, err := f.WriteAt(encodeZoneHeader(opts), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("blockdev: create zoned device: %w", err)
	}
	for i, zn := range z.zones {
		if err := z.state.put(i, zn); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := removeData(path); err != nil {
		f.Close()
		return nil, err
	}
	data, err := OpenFile(path, z.NumBlocks())
	if err != nil {
		f.Close()
		return nil, err
	}
	z.data = data
	if err := z.Flush(); err != nil {
		z.Close()
		return nil, err
	}
	return z, nil
}

// removeData empties the data of a device being created: its old blocks
// must not show through the zones' write pointers.
func removeData(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blockdev: create zoned device: %w", err)
	}
	return nil
}

// OpenZonedFile opens the file-backed zoned device at path as its zone
// state file describes it, open zones closed (a power cycle closes them). A state file that is not one, or a record
// whose checksum fails, is EUCLEAN.
func OpenZonedFile(path string) (*Zoned, error) {
	sp := ZoneStatePath(path)
	f, err := os.OpenFile(sp, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("blockdev: open zoned device: %w", err)
	}
	if err := lockState(f); err != nil {
		f.Close()
		return nil, err
	}
	buf, err := readAll(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	opts, zones, err := DecodeZoneState(buf)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blockdev: open zoned device %s: %w", sp, err)
	}
	powerCycle(zones)
	data, err := OpenFile(path, opts.ZoneBlocks*int64(opts.Zones))
	if err != nil {
		f.Close()
		return nil, err
	}
	return newZoned(data, &zoneState{f: f, path: sp}, opts, zones), nil
}

// powerCycle sets zones as a drive coming back from a power cycle reports
// them: no zone is open, the written ones are closed.
func powerCycle(zones []Zone) {
	for i, zn := range zones {
		if zn.Cond.open() {
			zones[i].Cond = CondClosed
			if zn.WP == zn.Start {
				zones[i].Cond = CondEmpty
			}
		}
	}
}

// lockState takes an exclusive flock on the state file, held until it is
// closed: a device open twice is EBUSY, as an exclusive open of a block
// device in use is on Linux.
func lockState(f *os.File) error {
	err := retryEINTR(func() error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) })
	switch {
	case err == unix.EWOULDBLOCK:
		return fmt.Errorf("blockdev: zoned device %s is open elsewhere: %w", f.Name(), syscall.EBUSY)
	case err != nil:
		return fmt.Errorf("blockdev: lock %s: %w", f.Name(), err)
	}
	return nil
}

func readAll(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blockdev: open zoned device: %w", err)
	}
	if st.Size() > zoneHeaderSize+zoneRecordSize*(1<<24) {
		return nil, fmt.Errorf("blockdev: open zoned device: zone state file %s of %d bytes is too large: %w", f.Name(), st.Size(), syscall.EUCLEAN)
	}
	buf := make([]byte, st.Size())
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("blockdev: open zoned device: %w", err)
	}
	return buf, nil
}

func encodeZoneHeader(o ZonedOptions) []byte {
	b := make([]byte, zoneHeaderSize)
	copy(b, zoneMagic)
	binary.LittleEndian.PutUint32(b[8:], zoneVersion)
	binary.LittleEndian.PutUint64(b[12:], uint64(o.ZoneBlocks))
	binary.LittleEndian.PutUint32(b[20:], uint32(o.Zones))
	binary.LittleEndian.PutUint32(b[24:], uint32(o.Conventional))
	binary.LittleEndian.PutUint64(b[28:], uint64(o.CapacityBlocks))
	binary.LittleEndian.PutUint32(b[36:], uint32(o.MaxOpen))
	binary.LittleEndian.PutUint32(b[40:], uint32(o.MaxActive))
	binary.LittleEndian.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
	return b
}

func encodeZoneRecord(zn Zone) []byte {
	b := make([]byte, zoneRecordSize)
	binary.LittleEndian.PutUint64(b, uint64(zn.WP-zn.Start))
	b[8], b[9] = byte(zn.Cond), byte(zn.Type)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

// DecodeZoneState decodes a zone state file: the geometry and every
// zone. Anything but a well-formed file of the current version is an
// error wrapping EUCLEAN that says what is wrong; it never panics.
func DecodeZoneState(b []byte) (ZonedOptions, []Zone, error) {
	var o ZonedOptions
	if len(b) < zoneHeaderSize || string(b[:8]) != zoneMagic {
		return o, nil, fmt.Errorf("not a zone state file: %w", syscall.EUCLEAN)
	}
	if crc32.Checksum(b[:44], castagnoli) != binary.LittleEndian.Uint32(b[44:]) {
		return o, nil, fmt.Errorf("zone state header checksum mismatch: %w", syscall.EUCLEAN)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != zoneVersion {
		return o, nil, fmt.Errorf("zone state version %d, want %d: %w", v, zoneVersion, syscall.EUCLEAN)
	}
	zb, nz, cap := binary.LittleEndian.Uint64(b[12:]), binary.LittleEndian.Uint32(b[20:]), binary.LittleEndian.Uint64(b[28:])
	if zb > 1<<40 || nz > 1<<24 || cap > zb {
		return o, nil, fmt.Errorf("zone state geometry %d zones of %d blocks (capacity %d) out of range: %w", nz, zb, cap, syscall.EUCLEAN)
	}
	o = ZonedOptions{ZoneBlocks: int64(zb), Zones: int(nz), Conventional: int(binary.LittleEndian.Uint32(b[24:])),
		CapacityBlocks: int64(cap), MaxOpen: int(binary.LittleEndian.Uint32(b[36:])), MaxActive: int(binary.LittleEndian.Uint32(b[40:]))}
	if o.MaxOpen > 1<<24 || o.MaxActive > 1<<24 || o.CapacityBlocks == 0 {
		return o, nil, fmt.Errorf("zone state limits out of range: %w", syscall.EUCLEAN)
	}
	if err := o.check(); err != nil {
		return o, nil, fmt.Errorf("zone state geometry: %v: %w", err, syscall.EUCLEAN)
	}
	if want := zoneHeaderSize + zoneRecordSize*int(nz); len(b) < want {
		return o, nil, fmt.Errorf("zone state file of %d bytes is short of its %d zones (%d bytes): %w", len(b), nz, want, syscall.EUCLEAN)
	}
	zones := make([]Zone, nz)
	for i := range zones {
		r := b[zoneHeaderSize+i*zoneRecordSize:][:zoneRecordSize]
		if crc32.Checksum(r[:12], castagnoli) != binary.LittleEndian.Uint32(r[12:]) {
			return o, nil, fmt.Errorf("zone %d: state record checksum mismatch: %w", i, syscall.EUCLEAN)
		}
		zn := Zone{Start: int64(i) * o.ZoneBlocks, Len: o.ZoneBlocks, Capacity: o.CapacityBlocks,
			Cond: ZoneCond(r[8]), Type: ZoneType(r[9])}
		wp := binary.LittleEndian.Uint64(r)
		conv := i < o.Conventional
		switch {
		case conv != (zn.Type == ZoneConventional) || (!conv && zn.Type != ZoneSequential):
			return o, nil, fmt.Errorf("zone %d: type %s disagrees with the geometry: %w", i, zn.Type, syscall.EUCLEAN)
		case !validCond(conv, zn.Cond):
			return o, nil, fmt.Errorf("zone %d: condition %s invalid for a %s zone: %w", i, zn.Cond, zn.Type, syscall.EUCLEAN)
		case wp > uint64(o.CapacityBlocks):
			return o, nil, fmt.Errorf("zone %d: write pointer %d past its capacity %d: %w", i, wp, o.CapacityBlocks, syscall.EUCLEAN)
		case zn.Cond == CondEmpty && wp != 0, zn.Cond == CondFull && wp != uint64(o.CapacityBlocks):
			return o, nil, fmt.Errorf("zone %d: %s with its write pointer at %d: %w", i, zn.Cond, wp, syscall.EUCLEAN)
		}
		if conv {
			zn.Capacity = o.ZoneBlocks
		}
		zn.WP = zn.Start + int64(wp)
		zones[i] = zn
	}
	return o, zones, nil
}

// validCond reports whether a zone, conventional or not, can be in
// condition c: a conventional zone has no write pointer, a sequential one
// does, and either can fail read-only or offline.
func validCond(conv bool, c ZoneCond) bool {
	switch c {
	case CondReadOnly, CondOffline:
		return true
	case CondNotWP:
		return conv
	case CondEmpty, CondImplicitOpen, CondExplicitOpen, CondClosed, CondFull:
		return !conv
	}
	return false
}

// put writes zone i's record. The caller holds the device's mu.
func (s *zoneState) put(i int, zn Zone) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosed("zone state write")
	}
	if _, err := s.f.WriteAt(encodeZoneRecord(zn), zoneHeaderSize+int64(i)*zoneRecordSize); err != nil {
		return fmt.Errorf("blockdev: zone %d state: %w", i, err)
	}
	return nil
}

func (s *zoneState) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosed("flush")
	}
	if err := retryEINTR(func() error { return datasync(int(s.f.Fd())) }); err != nil {
		return fmt.Errorf("blockdev: flush %s: %w", s.path, err)
	}
	return nil
}

func (s *zoneState) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosedTwice()
	}
	err := s.f.Close()
	s.f = nil
	return err
}
