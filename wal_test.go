package holefs_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
)

// TestWALHealsMetaFallback: on an image with a log, a damaged newest
// meta.db meta page (bbolt falls back to the state before the last
// checkpoint) loses nothing: the log still holds the commits since, and
// Open replays them. The same damage on an image without a log is a
// rollback (TestOpenRollback).
func TestWALHealsMetaFallback(t *testing.T) {
	dir := mkImage(t, 64*meta.BlockSize)
	fsys := openImage(t, dir)
	writeFile(t, fsys, "kept", []byte("kept"), true)
	writeFile(t, fsys, "last", []byte("fsync'd last"), true)
	must(t, fsys.Close())
	mf, err := os.OpenFile(filepath.Join(dir, meta.MetaFile), os.O_RDWR, 0)
	must(t, err)
	ps := int64(os.Getpagesize())
	var txid [2]uint64
	for i := range txid {
		var b [8]byte
		_, err := mf.ReadAt(b[:], int64(i)*ps+16+48)
		must(t, err)
		txid[i] = binary.NativeEndian.Uint64(b[:])
	}
	newer := int64(0)
	if txid[1] > txid[0] {
		newer = 1
	}
	_, err = mf.WriteAt([]byte{0x5a}, newer*ps+16+60)
	must(t, err)
	must(t, mf.Close())

	fsys, err = holefs.Open(dir, holefs.Options{})
	if err != nil {
		t.Fatalf("Open: %v; want the log to replay what meta.db lost", err)
	}
	defer fsys.Close()
	for name, want := range map[string]string{"kept": "kept", "last": "fsync'd last"} {
		if b, err := fsys.ReadFile(name); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
}
