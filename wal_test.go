package holefs_test

import (
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
	commitTwoAndDamageNewerMetaPage(t, dir)

	fsys, err := holefs.Open(dir, holefs.Options{})
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
