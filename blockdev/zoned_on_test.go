package blockdev

import (
	"bytes"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
)

// TestZonedOn: a zoned device on a plain device keeps the file-backed
// device's rules and state format: reopened on the same device
// (OpenZonedOn) or written out as an image (WriteZonedImage, then
// OpenZonedFile), it reports the write pointers its flushes recorded and
// reads back the data below them; a device of the wrong size is EINVAL, a
// zone state of another geometry or none EUCLEAN.
func TestZonedOn(t *testing.T) {
	mem := NewMemory(ZonedOnBlocks(zonedTestOpts))
	z, err := NewZonedOn(keepOpenDev{mem}, zonedTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.WriteBlocks(blocks(3, 0x77), 8); err != nil {
		t.Fatal(err)
	}
	if err := z.WriteBlocks(blocks(2, 0x55), 16); err != nil {
		t.Fatal(err)
	}
	if err := z.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := z.WriteBlocks(blocks(1, 0x66), 11); err != nil { // not flushed: not recorded
		t.Fatal(err)
	}
	if err := z.WriteBlocks(blocks(1, 0x44), 0); err != nil { // conventional
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "data")
	if err := WriteZonedImage(mem, zonedTestOpts, img); err != nil {
		t.Fatal(err)
	}
	fromFile, err := OpenZonedFile(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	z.Close() // flushes: the reopened device has the fourth block
	again, err := OpenZonedOn(keepOpenDev{mem}, zonedTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for _, tc := range []struct {
		name string
		dev  *Zoned
		want [3]int64 // blocks written in zones 1, 2, 3
	}{
		{"image written before the close", fromFile, [3]int64{3, 2, 0}},
		{"reopened after the close", again, [3]int64{4, 2, 0}},
	} {
		for i, w := range tc.want {
			zn, err := tc.dev.Report(i + 1)
			if err != nil || zn.Written() != w {
				t.Errorf("%s: zone %d written to %d blocks (err %v), want %d", tc.name, i+1, zn.Written(), err, w)
			}
		}
		got := make([]byte, 4*BlockSize)
		if err := tc.dev.ReadBlocks(got, 8); err != nil {
			t.Fatal(err)
		}
		want := append(blocks(3, 0x77), blocks(1, 0x66)...)
		if tc.want[0] == 3 {
			want = append(blocks(3, 0x77), make([]byte, BlockSize)...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: zone 1 reads back other data", tc.name)
		}
	}

	for _, tc := range []struct {
		name string
		open func() error
		want syscall.Errno
	}{
		{"new on a device too small", func() error {
			_, err := NewZonedOn(NewMemory(ZonedOnBlocks(zonedTestOpts)-1), zonedTestOpts)
			return err
		}, syscall.EINVAL},
		{"open on a device too large", func() error {
			_, err := OpenZonedOn(NewMemory(ZonedOnBlocks(zonedTestOpts)+1), zonedTestOpts)
			return err
		}, syscall.EINVAL},
		{"open with no zone state", func() error {
			_, err := OpenZonedOn(NewMemory(ZonedOnBlocks(zonedTestOpts)), zonedTestOpts)
			return err
		}, syscall.EUCLEAN},
		{"open with another geometry", func() error {
			other := zonedTestOpts
			other.MaxOpen = 1
			_, err := OpenZonedOn(keepOpenDev{mem}, other)
			return err
		}, syscall.EUCLEAN},
		{"image of a device too small", func() error {
			return WriteZonedImage(NewMemory(8), zonedTestOpts, filepath.Join(t.TempDir(), "data"))
		}, syscall.EINVAL},
	} {
		if err := tc.open(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// keepOpenDev lets a test reopen a zoned device on the same memory.
type keepOpenDev struct{ Device }

func (keepOpenDev) Close() error { return nil }
