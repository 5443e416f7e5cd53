package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holefs/holefs"
)

// TestFstrim: holefs fstrim gives back the free space of an image used
// without discard, says so, and refuses an image in use.
func TestFstrim(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsAt(t, img)
	fsys, err := holefs.Open(img, holefs.Options{NoDiscard: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create("big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("x"), 512<<10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("big"); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"fstrim", img}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "in use by this process: unmount it") {
		t.Errorf("fstrim of an open image: exit %d, %q", code, errb.String())
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(img, "data")
	before, err := diskBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"fstrim", img}, &out, &errb); code != 0 {
		t.Fatalf("fstrim: exit %d: %s", code, errb.String())
	}
	after, err := diskBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if before-after < 512<<10 || !strings.Contains(out.String(), img+": trimmed ") {
		t.Errorf("fstrim: data file %d -> %d bytes on disk, stdout %q", before, after, out.String())
	}
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"fstrim"}, "missing the image path"},
		{[]string{"fstrim", img, img}, "unexpected argument"},
	} {
		errb.Reset()
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%q: exit %d, %q; want 2, %q", tc.args, code, errb.String(), tc.stderr)
		}
	}
}
