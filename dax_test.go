package holefs_test

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
)

// TestDAXRefused checks that Open refuses DAX, with EINVAL and a message
// saying why, wherever the device cannot expose its memory.
func TestDAXRefused(t *testing.T) {
	image := t.TempDir() + "/img"
	must(t, holefs.Mkfs(image, holefs.MkfsOptions{SizeBytes: 1 << 20}))
	cases := []struct {
		name, path string
		opts       holefs.Options
		why        string
	}{
		{"image", image, holefs.Options{}, "image"},
		{"memfs", "", holefs.Options{Backend: holefs.BackendMemory}, "backend memfs"},
		{"logfs", "", holefs.Options{Backend: holefs.BackendLog}, "backend logfs"},
		{"passthrough", "", holefs.Options{Backend: holefs.BackendPassthrough, BackingDir: t.TempDir()}, "backend passthrough"},
		{"faulty device", "", holefs.Options{Device: blockdev.NewFaulty(blockdev.NewMemory(64), blockdev.FaultOptions{})}, "cannot expose"},
		{"latency", "", holefs.Options{Latency: time.Microsecond}, "latency"},
	}
	for _, c := range cases {
		c.opts.DAX = true
		fsys, err := holefs.Open(c.path, c.opts)
		if err == nil {
			fsys.Close()
			t.Errorf("%s: Open with DAX succeeded", c.name)
			continue
		}
		if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: Open with DAX = %v, want EINVAL saying %q", c.name, err, c.why)
		}
	}
}

// TestDAXFile checks a DAX file through the library: stat says DAX, the
// cache holds no page of it, views, reads and writes are coherent with no
// sync, O_DIRECT takes any alignment, clone is refused and copy_file_range
// copies.
func TestDAXFile(t *testing.T) {
	dev := blockdev.NewMemory(256)
	fsys := newFS(t, holefs.Options{DAX: true, Device: dev})
	f := createWith(t, fsys, "f", fill('a', 4*pg))
	fi, err := f.Stat()
	must(t, err)
	if !fi.Sys().(*holefs.Attr).DAX {
		t.Error("stat of a DAX file does not say DAX")
	}
	v, err := f.Mmap(0, 4*pg, true)
	must(t, err)
	defer v.Unmap()
	_, err = v.WriteAt([]byte("view"), pg+1)
	must(t, err)
	got := make([]byte, 4)
	_, err = f.ReadAt(got, pg+1)
	must(t, err)
	if string(got) != "view" {
		t.Errorf("read after a view write = %q, want %q", got, "view")
	}

	d := openFile(t, fsys, "f", syscall.O_RDWR|syscall.O_DIRECT)
	_, err = d.WriteAt([]byte("direct"), 2*pg+3) // unaligned: DAX I/O is direct already
	must(t, err)
	got = make([]byte, 6)
	_, err = v.ReadAt(got, 2*pg+3)
	must(t, err)
	if string(got) != "direct" {
		t.Errorf("view read after an O_DIRECT write = %q, want %q", got, "direct")
	}

	g := create(t, fsys, "g")
	if err := f.Clone(g, 0, 0, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Clone of DAX files = %v, want EINVAL", err)
	}
	n, err := f.CopyRange(g, 0, 0, 4*pg)
	must(t, err)
	if n != 4*pg || !bytes.Equal(readAll(t, g), readAll(t, f)) {
		t.Errorf("CopyRange copied %d bytes; the copy differs: %v", n, !bytes.Equal(readAll(t, g), readAll(t, f)))
	}
	if st := fsys.CacheStats(); st.FillPages != 0 || st.WritebackPages != 0 {
		t.Errorf("DAX files filled %d and wrote back %d pages", st.FillPages, st.WritebackPages)
	}
	must(t, f.Sync())
}

// TestDAXRemoversUnmap checks that every block-removing operation unmaps
// the views of its range (their next access faults and finds the new map)
// and that truncation makes access past the new EOF fail with EFAULT.
func TestDAXRemoversUnmap(t *testing.T) {
	cases := []struct {
		name   string
		remove func(f *holefs.File) error
		want   []byte // page 1 read through the view afterwards; nil: EFAULT
	}{
		{"punch", func(f *holefs.File) error {
			return f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, pg, pg)
		}, make([]byte, pg)},
		{"zero", func(f *holefs.File) error { return f.Fallocate(unix.FALLOC_FL_ZERO_RANGE, pg, pg) }, make([]byte, pg)},
		{"collapse", func(f *holefs.File) error { return f.Fallocate(unix.FALLOC_FL_COLLAPSE_RANGE, pg, pg) }, fill('c', pg)},
		{"insert", func(f *holefs.File) error { return f.Fallocate(unix.FALLOC_FL_INSERT_RANGE, pg, pg) }, make([]byte, pg)},
		{"truncate", func(f *holefs.File) error { return f.Truncate(pg) }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := newFS(t, holefs.Options{DAX: true, SizeBytes: 1 << 20})
			f := create(t, fsys, "f")
			for i := range 4 {
				_, err := f.WriteAt(fill(byte('a'+i), pg), int64(i)*pg)
				must(t, err)
			}
			v, err := f.Mmap(0, 4*pg, false)
			must(t, err)
			defer v.Unmap()
			buf := make([]byte, 4*pg)
			_, err = v.ReadAt(buf, 0) // map every page
			must(t, err)
			must(t, c.remove(f))
			got := make([]byte, pg)
			_, err = v.ReadAt(got, pg)
			if c.want == nil {
				if !errors.Is(err, syscall.EFAULT) {
					t.Fatalf("view read past the new EOF = %v, want EFAULT", err)
				}
				return
			}
			must(t, err)
			if !bytes.Equal(got, c.want) {
				t.Fatalf("view reads page 1 as %q..., want %q...", got[:8], c.want[:8])
			}
		})
	}
}
