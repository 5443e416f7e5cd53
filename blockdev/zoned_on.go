//go:build unix

package blockdev

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// ZonedOnBlocks returns the size in blocks of the device NewZonedOn needs
// for geometry opts: the zones, then the zone state.
func ZonedOnBlocks(opts ZonedOptions) int64 {
	return opts.ZoneBlocks*int64(opts.Zones) + stateBlocks(opts.Zones)
}

func stateBlocks(zones int) int64 {
	return (zoneHeaderSize + zoneRecordSize*int64(zones) + BlockSize - 1) / BlockSize
}

// NewZonedOn makes a zoned device of geometry opts on dev, a plain device
// of ZonedOnBlocks(opts) blocks: the zones in its first blocks, then the
// zone state in the state file's format, every sequential zone empty. It
// is the file-backed device (CreateZonedFile) with both files on one
// device, so that a blockdev.Recorder under it logs the data and the zone
// state writes and flushes in one order: what crash enumeration needs
// (WriteZonedImage turns a replayed crash state into an image). It
// flushes dev once made; closing the device closes dev.
func NewZonedOn(dev Device, opts ZonedOptions) (*Zoned, error) {
	st, err := newDeviceState(dev, opts)
	if err != nil {
		return nil, err
	}
	data := st.first
	copy(st.buf, encodeZoneHeader(opts))
	z := newZoned(dev, st, opts, nil)
	for i, zn := range z.zones {
		copy(st.buf[zoneHeaderSize+i*zoneRecordSize:], encodeZoneRecord(zn))
	}
	if err := dev.WriteBlocks(st.buf, data); err != nil {
		return nil, err
	}
	if err := dev.Flush(); err != nil {
		return nil, err
	}
	return z, nil
}

// OpenZonedOn opens the zoned device of geometry opts that NewZonedOn
// made on dev, as its zone state describes it, open zones closed (as
// OpenZonedFile: a reopen is a power cycle). A zone state that is not
// one, or of another geometry, is EUCLEAN.
func OpenZonedOn(dev Device, opts ZonedOptions) (*Zoned, error) {
	st, err := newDeviceState(dev, opts)
	if err != nil {
		return nil, err
	}
	data := st.first
	if err := dev.ReadBlocks(st.buf, data); err != nil {
		return nil, err
	}
	got, zones, err := DecodeZoneState(st.buf)
	if err != nil {
		return nil, fmt.Errorf("blockdev: open zoned device: %w", err)
	}
	if got != opts {
		return nil, fmt.Errorf("blockdev: open zoned device: its zone state has geometry %+v, not %+v: %w", got, opts, syscall.EUCLEAN)
	}
	powerCycle(zones)
	return newZoned(dev, st, opts, zones), nil
}

// deviceState is the zone state kept in blocks [first, ...) of dev, with
// a copy in memory: a record's put rewrites the block holding it.
type deviceState struct {
	dev   Device
	first int64
	mu    sync.Mutex // leaf: buf
	buf   []byte     // +checklocks:mu
}

// newDeviceState checks that dev is the size ZonedOnBlocks gives for
// opts and returns its zone state, kept in the blocks after the zones'
// data, with an empty buffer.
func newDeviceState(dev Device, opts ZonedOptions) (*deviceState, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if want := ZonedOnBlocks(opts); dev.NumBlocks() != want {
		return nil, fmt.Errorf("blockdev: zoned device on a device of %d blocks, want %d: %w", dev.NumBlocks(), want, syscall.EINVAL)
	}
	data := opts.ZoneBlocks * int64(opts.Zones)
	return &deviceState{dev: dev, first: data, buf: make([]byte, stateBlocks(opts.Zones)*BlockSize)}, nil
}

func (s *deviceState) put(i int, zn Zone) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := zoneHeaderSize + i*zoneRecordSize
	copy(s.buf[off:], encodeZoneRecord(zn))
	b := off / BlockSize
	if err := s.dev.WriteBlocks(s.buf[b*BlockSize:(b+1)*BlockSize], s.first+int64(b)); err != nil {
		return fmt.Errorf("blockdev: zone %d state: %w", i, err)
	}
	return nil
}

func (s *deviceState) flush() error { return s.dev.Flush() }

// close leaves dev to the device, which closes it as its data.
func (s *deviceState) close() error { return nil }

// WriteZonedImage writes the content of dev, laid out as NewZonedOn lays
// it out for geometry opts, as a file-backed zoned device at path (the
// data file and its zone state file, both replaced), which
// OpenZonedFile opens: a crash state replayed from a recording becomes an
// image. Blocks of zeros are left holes.
func WriteZonedImage(dev Device, opts ZonedOptions, path string) error {
	if err := opts.check(); err != nil {
		return err
	}
	if want := ZonedOnBlocks(opts); dev.NumBlocks() != want {
		return fmt.Errorf("blockdev: zoned image from a device of %d blocks, want %d: %w", dev.NumBlocks(), want, syscall.EINVAL)
	}
	data := opts.ZoneBlocks * int64(opts.Zones)
	if err := removeData(path); err != nil {
		return err
	}
	out, err := OpenFile(path, data)
	if err != nil {
		return err
	}
	buf := make([]byte, BlockSize)
	for b := range data {
		if err := dev.ReadBlocks(buf, b); err != nil {
			out.Close()
			return err
		}
		if isZero(buf) {
			continue
		}
		if err := out.WriteBlocks(buf, b); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	st := make([]byte, stateBlocks(opts.Zones)*BlockSize)
	if err := dev.ReadBlocks(st, data); err != nil {
		return err
	}
	return os.WriteFile(ZoneStatePath(path), st[:zoneHeaderSize+zoneRecordSize*opts.Zones], 0o644)
}
