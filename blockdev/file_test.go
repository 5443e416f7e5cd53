//go:build unix

package blockdev_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/holefs/holefs/blockdev"
)

var _ blockdev.Device = (*blockdev.File)(nil)

func TestFilePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	d, err := blockdev.OpenFile(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	writes := map[int64][]byte{0: pattern(1, 1), 7: pattern(2, 3), 31: pattern(3, 1)}
	for b, p := range writes {
		if err := d.WriteBlocks(p, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = blockdev.OpenFile(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for b, p := range writes {
		got := blocks(len(p) / blockdev.BlockSize)
		if err := d.ReadBlocks(got, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Errorf("blocks at %d not persisted", b)
		}
	}
	got := bytes.Repeat([]byte{0xAA}, 3*blockdev.BlockSize)
	if err := d.ReadBlocks(got, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blocks(3)) {
		t.Error("never-written blocks do not read as zeros after reopen")
	}
}

func TestFileSize(t *testing.T) {
	tests := []struct {
		name     string
		existing int64 // bytes in the file before OpenFile; -1: no file
		nblocks  int64
		wantSize int64
	}{
		{"new file", -1, 10, 10 * blockdev.BlockSize},
		{"empty file", 0, 10, 10 * blockdev.BlockSize},
		{"smaller file", 3*blockdev.BlockSize + 100, 10, 10 * blockdev.BlockSize},
		{"same size", 10 * blockdev.BlockSize, 10, 10 * blockdev.BlockSize},
		{"larger file keeps its size", 20*blockdev.BlockSize + 5, 10, 20*blockdev.BlockSize + 5},
		{"large sparse file", -1, 1 << 20, 1 << 20 * blockdev.BlockSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dev")
			var old []byte
			if tc.existing >= 0 {
				old = bytes.Repeat([]byte{0x77}, int(tc.existing))
				if err := os.WriteFile(path, old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d, err := blockdev.OpenFile(path, tc.nblocks)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := d.NumBlocks(); got != tc.nblocks {
				t.Errorf("NumBlocks() = %d, want %d", got, tc.nblocks)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != tc.wantSize {
				t.Errorf("file size = %d, want %d", fi.Size(), tc.wantSize)
			}
			// The device ends at nblocks even if the file does not.
			if err := d.ReadBlocks(blocks(1), tc.nblocks); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("read at block %d: error = %v, want EINVAL", tc.nblocks, err)
			}
			// Old content is kept.
			if len(old) >= blockdev.BlockSize {
				got := blocks(1)
				if err := d.ReadBlocks(got, 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, old[:blockdev.BlockSize]) {
					t.Error("existing content of block 0 lost")
				}
			}
		})
	}
}

func TestFileLargerFileTailUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	old := bytes.Repeat([]byte{0x77}, 8*blockdev.BlockSize)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := blockdev.OpenFile(path, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteBlocks(pattern(1, 4), 0); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteBlocks(pattern(1, 1), 4); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write past nblocks of a larger file: error = %v, want EINVAL", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:4*blockdev.BlockSize], pattern(1, 4)) {
		t.Error("device blocks not written")
	}
	if !bytes.Equal(got[4*blockdev.BlockSize:], old[4*blockdev.BlockSize:]) {
		t.Error("bytes past the device's end changed")
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		nblocks int64
		want    error
		msg     string
	}{
		{"zero blocks", filepath.Join(dir, "a"), 0, syscall.EINVAL, "not positive"},
		{"negative blocks", filepath.Join(dir, "a"), -1, syscall.EINVAL, "not positive"},
		{"size overflows", filepath.Join(dir, "a"), math.MaxInt64 / blockdev.BlockSize * 2, syscall.EINVAL, "too large"},
		{"missing directory", filepath.Join(dir, "no", "such"), 1, syscall.ENOENT, "no such file"},
		{"directory", dir, 1, syscall.EISDIR, "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := blockdev.OpenFile(tc.path, tc.nblocks)
			if err == nil {
				d.Close()
				t.Fatal("OpenFile succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name the path and contain %q", err, tc.msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Error("OpenFile with a bad size created the file")
	}
}

func TestFileTruncatedBehindItsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	d, err := blockdev.OpenFile(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Truncate(path, 2*blockdev.BlockSize+100); err != nil {
		t.Fatal(err)
	}
	err = d.ReadBlocks(blocks(2), 2)
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "unexpected end of file") {
		t.Errorf("read past a truncated end: error = %v, want EIO naming the end of file", err)
	}
	if err := d.ReadBlocks(blocks(2), 0); err != nil {
		t.Errorf("read before the truncated end: %v", err)
	}
}
