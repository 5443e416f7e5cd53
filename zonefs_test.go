package holefs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs/blockdev"
)

// zonefsTestGeometry: 2 conventional and 3 sequential zones of 16 blocks,
// 12 of them writable.
var zonefsTestGeometry = blockdev.ZonedOptions{ZoneBlocks: 16, Zones: 5, Conventional: 2, CapacityBlocks: 12}

// zcap is a sequential zone's capacity, ccap a conventional one's (all
// of it: conventional zones have no capacity of their own).
const zcap, ccap = 12 * blockdev.BlockSize, 16 * blockdev.BlockSize

func openZonefsTest(t *testing.T, opts Options) (*FS, *blockdev.Zoned) {
	t.Helper()
	dev, err := blockdev.NewZoned(zonefsTestGeometry)
	if err != nil {
		t.Fatal(err)
	}
	opts.Backend, opts.Device = BackendZonefs, dev
	f, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, dev
}

func page(fill byte, n int) []byte { return bytes.Repeat([]byte{fill}, n*blockdev.BlockSize) }

// TestZonefsNamespace: the fixed tree, its modes and sizes.
func TestZonefsNamespace(t *testing.T) {
	f, _ := openZonefsTest(t, Options{})
	want := map[string]int64{"cnv/0": ccap, "cnv/1": ccap, "seq/0": 0, "seq/1": 0, "seq/2": 0}
	for _, dir := range []string{"cnv", "seq"} {
		ents, err := f.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			name := dir + "/" + e.Name()
			size, ok := want[name]
			if !ok || fi.Size() != size || fi.Mode() != 0o640 {
				t.Errorf("%s: size %d mode %v, want size %d mode 0640 (listed: %v)", name, fi.Size(), fi.Mode(), size, ok)
			}
			delete(want, name)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing files %v", want)
	}
	for _, d := range []string{".", "cnv", "seq"} {
		if fi, err := f.Stat(d); err != nil || fi.Mode() != fs.ModeDir|0o555 {
			t.Errorf("%s: %v %v, want a 0555 directory", d, fi.Mode(), err)
		}
	}
}

// TestZonefsErrnos: every zonefs rule and unsupported operation, with the
// errno Linux's zonefs (and its VFS) returns.
func TestZonefsErrnos(t *testing.T) {
	type env struct {
		f        *FS
		dev      *blockdev.Zoned
		seq, cnv *File // seq/0 opened O_RDWR|O_DIRECT, cnv/0 O_RDWR
	}
	tests := []struct {
		name string
		do   func(e env) error
		want syscall.Errno
	}{
		{"create", func(e env) error { _, err := e.f.Create("seq/9"); return err }, syscall.EACCES},
		{"mknod regular", func(e env) error { return e.f.Mknod("cnv/x", syscall.S_IFREG|0o644, 0) }, syscall.EACCES},
		{"mkdir", func(e env) error { return e.f.Mkdir("d", 0o755) }, syscall.EPERM},
		{"mkdir existing", func(e env) error { return e.f.Mkdir("seq", 0o755) }, syscall.EEXIST},
		{"mknod fifo", func(e env) error { return e.f.Mknod("p", syscall.S_IFIFO|0o644, 0) }, syscall.EPERM},
		{"symlink", func(e env) error { return e.f.Symlink("seq/0", "l") }, syscall.EPERM},
		{"link", func(e env) error { return e.f.Link("seq/0", "seq/9") }, syscall.EPERM},
		{"unlink", func(e env) error { return e.f.Remove("seq/0") }, syscall.EPERM},
		{"unlink missing", func(e env) error { return e.f.Remove("seq/9") }, syscall.ENOENT},
		{"rmdir", func(e env) error { return e.f.Remove("cnv") }, syscall.ENOTEMPTY},
		{"rename", func(e env) error { return e.f.Rename("seq/0", "seq/9") }, syscall.EPERM},
		{"chmod dir writable", func(e env) error { return e.f.Chmod("seq", 0o755) }, syscall.EPERM},
		{"chmod file", func(e env) error { return e.f.Chmod("seq/0", 0o600) }, 0},
		{"seq buffered write", func(e env) error {
			h, err := e.f.OpenFile("seq/1", os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer h.Close()
			_, err = h.WriteAt(page(1, 1), 0)
			return err
		}, syscall.EIO},
		{"seq direct write at wp", func(e env) error { _, err := e.seq.WriteAt(page(1, 2), 0); return err }, 0},
		{"seq direct write past wp", func(e env) error { _, err := e.seq.WriteAt(page(1, 1), blockdev.BlockSize); return err }, syscall.EINVAL},
		{"seq direct write before wp", func(e env) error {
			if _, err := e.seq.WriteAt(page(1, 2), 0); err != nil {
				return err
			}
			_, err := e.seq.WriteAt(page(1, 1), 0)
			return err
		}, syscall.EINVAL},
		{"seq direct write unaligned", func(e env) error { _, err := e.seq.WriteAt(make([]byte, 100), 0); return err }, syscall.EINVAL},
		{"seq write at capacity", func(e env) error { _, err := e.seq.WriteAt(page(1, 1), zcap); return err }, syscall.EFBIG},
		{"seq writable mmap", func(e env) error { _, err := e.seq.Mmap(0, 4096, true); return err }, syscall.EINVAL},
		{"seq read-only mmap", func(e env) error {
			v, err := e.seq.Mmap(0, 4096, false)
			if err == nil {
				v.Unmap()
			}
			return err
		}, 0},
		{"seq truncate middle", func(e env) error { return e.seq.Truncate(4096) }, syscall.EPERM},
		{"seq truncate reset", func(e env) error { return e.seq.Truncate(0) }, 0},
		{"seq truncate finish", func(e env) error { return e.seq.Truncate(zcap) }, 0},
		{"seq truncate past capacity", func(e env) error { return e.seq.Truncate(zcap + 4096) }, syscall.EPERM},
		{"fallocate", func(e env) error { return e.cnv.Fallocate(0, 0, 4096) }, syscall.EOPNOTSUPP},
		{"punch", func(e env) error {
			return e.cnv.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
		}, syscall.EOPNOTSUPP},
		{"cnv truncate", func(e env) error { return e.cnv.Truncate(0) }, syscall.EPERM},
		{"cnv open O_TRUNC", func(e env) error { _, err := e.f.OpenFile("cnv/1", os.O_RDWR|os.O_TRUNC, 0); return err }, syscall.EPERM},
		{"cnv buffered write", func(e env) error { _, err := e.cnv.WriteAt([]byte("x"), 7); return err }, 0},
		{"cnv write at capacity", func(e env) error { _, err := e.cnv.WriteAt([]byte("x"), ccap); return err }, syscall.EFBIG},
		{"cnv append", func(e env) error {
			h, err := e.f.OpenFile("cnv/1", os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer h.Close()
			_, err = h.Write([]byte("x"))
			return err
		}, syscall.EINVAL},
		{"clone", func(e env) error { return e.cnv.Clone(e.seq, 0, 0, 4096) }, syscall.EOPNOTSUPP},
		{"copy into seq", func(e env) error { _, err := e.cnv.CopyRange(e.seq, 0, 0, 4096); return err }, syscall.EIO},
		{"write read-only zone", func(e env) error {
			if err := e.dev.SetZoneCondition(2, blockdev.CondReadOnly); err != nil {
				return err
			}
			_, err := e.seq.WriteAt(page(1, 1), 0)
			return err
		}, syscall.EIO},
		// errors=remount-ro: EROFS comes first, as sb_permission's check
		// precedes IS_IMMUTABLE's in Linux's inode_permission.
		{"open offline zone for writing after error", func(e env) error {
			if err := e.dev.SetZoneCondition(2, blockdev.CondOffline); err != nil {
				return err
			}
			e.seq.ReadAt(make([]byte, 1), 0) // reads nothing: the size is 0
			e.seq.WriteAt(page(1, 1), 0)     // EIO, handled: the zone is offline
			_, err := e.f.OpenFile("seq/0", os.O_WRONLY, 0)
			return err
		}, syscall.EROFS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, dev := openZonefsTest(t, Options{})
			seq, err := f.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer seq.Close()
			cnv, err := f.OpenFile("cnv/0", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer cnv.Close()
			err = tc.do(env{f, dev, seq, cnv})
			if tc.want == 0 && err != nil || tc.want != 0 && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// TestZonefsSizes: a sequential file's size follows its write pointer
// through appends, reset and finish, and reads past it are EOF; data
// survives where it should.
func TestZonefsSizes(t *testing.T) {
	f, dev := openZonefsTest(t, Options{})
	w, err := f.OpenFile("seq/1", os.O_WRONLY|os.O_APPEND|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := f.OpenFile("seq/1", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	size := func() int64 {
		fi, err := f.Stat("seq/1")
		if err != nil {
			t.Fatal(err)
		}
		zn, _ := dev.Report(3)
		if wp := zn.Written() * blockdev.BlockSize; wp != fi.Size() {
			t.Fatalf("size %d, write pointer at %d", fi.Size(), wp)
		}
		return fi.Size()
	}
	for i := 1; i <= 3; i++ {
		if _, err := w.Write(page(byte(i), 1)); err != nil {
			t.Fatal(err)
		}
		if s := size(); s != int64(i)*4096 {
			t.Fatalf("after %d appends size %d", i, s)
		}
	}
	got := make([]byte, 4*4096)
	n, err := r.ReadAt(got, 0)
	if n != 3*4096 || err != io.EOF || got[0] != 1 || got[2*4096] != 3 {
		t.Fatalf("read %d %v", n, err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if s := size(); s != 0 {
		t.Fatalf("size after reset %d", s)
	}
	if n, err := r.ReadAt(got[:4096], 0); n != 0 || err != io.EOF {
		t.Fatalf("read after reset: %d %v", n, err)
	}
	if err := w.Truncate(zcap); err != nil {
		t.Fatal(err)
	}
	if s := size(); s != zcap {
		t.Fatalf("size after finish %d", s)
	}
	if n, err := r.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, make([]byte, len(got))) {
		t.Fatalf("read of a finished zone after a reset: %d %v, or not zeros", n, err)
	}
	if _, err := w.Write(page(1, 1)); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("append to a full zone: %v, want EFBIG", err)
	}
}

// TestZonefsErrorsOption: an I/O error on a zone is handled as zonefs's
// errors= option says (zonefs.rst's table).
func TestZonefsErrorsOption(t *testing.T) {
	tests := []struct {
		errors    string
		cond      blockdev.ZoneCond // injected before the failing write; 0: a write pointer moved behind the FS's back
		size      int64             // file size after
		writeErr  syscall.Errno     // a later write to another zone
		mode      fs.FileMode
		readFails bool
	}{
		{"remount-ro", blockdev.CondReadOnly, 2 * 4096, syscall.EROFS, 0o440, false},
		{"remount-ro", blockdev.CondOffline, 0, syscall.EROFS, 0, true},
		{"zone-ro", blockdev.CondReadOnly, 2 * 4096, 0, 0o440, false},
		{"zone-offline", blockdev.CondReadOnly, 0, 0, 0, true},
		{"repair", 0, 3 * 4096, 0, 0o640, false},
		{"remount-ro", 0, 2 * 4096, syscall.EROFS, 0o640, false},
	}
	for _, tc := range tests {
		t.Run(tc.errors+"/"+tc.cond.String(), func(t *testing.T) {
			f, dev := openZonefsTest(t, Options{ZoneErrors: tc.errors})
			w, err := f.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := w.WriteAt(page(7, 2), 0); err != nil {
				t.Fatal(err)
			}
			if tc.cond != 0 {
				if err := dev.SetZoneCondition(2, tc.cond); err != nil {
					t.Fatal(err)
				}
			} else if err := dev.WriteBlocks(page(8, 1), 2*16+2); err != nil {
				t.Fatal(err) // another writer moved the write pointer
			}
			if _, err := w.WriteAt(page(9, 1), 2*4096); err == nil {
				t.Fatal("the write after the zone failed succeeded")
			}
			fi, err := f.Stat("seq/0")
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != tc.size || fi.Mode().Perm() != tc.mode {
				t.Errorf("after the error: size %d mode %v, want %d %v", fi.Size(), fi.Mode().Perm(), tc.size, tc.mode)
			}
			_, err = w.ReadAt(make([]byte, 4096), 0)
			if failed := err != nil && err != io.EOF; failed != tc.readFails {
				t.Errorf("read after the error: %v, want failing %v", err, tc.readFails)
			}
			other, err := f.OpenFile("cnv/0", os.O_RDWR, 0)
			if err != nil && !errors.Is(err, tc.writeErr) || err == nil && tc.writeErr != 0 {
				t.Errorf("open of another zone for writing: %v, want %v", err, tc.writeErr)
			}
			if other != nil {
				other.Close()
			}
		})
	}
}

// TestZonefsImage: a zoned image keeps its files' data and sizes across
// close and reopen, and across a crash (its files copied while open): the
// zone report gives the sizes back. A second open is EBUSY; mkfs
// replaces it only with Force.
func TestZonefsImage(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/img"
	geo := zonefsTestGeometry
	if err := Mkfs(path, MkfsOptions{Zoned: &geo}); err != nil {
		t.Fatal(err)
	}
	if err := Mkfs(path, MkfsOptions{Zoned: &geo}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkfs over an image: %v, want EEXIST", err)
	}
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: %v, want EBUSY", err)
	}
	if err := Mkfs(path, MkfsOptions{Zoned: &geo, Force: true}); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("mkfs --force of an open image: %v, want EBUSY", err)
	}
	w, err := f.OpenFile("seq/1", os.O_WRONLY|os.O_APPEND|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(page('s', 3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	c, err := f.OpenFile("cnv/1", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteAt([]byte("conventional"), 100); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	s2, err := f.OpenFile("seq/2", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Truncate(zcap); err != nil { // finish
		t.Fatal(err)
	}
	// The crash: the image's files as they are now, the FS still open.
	crash := dir + "/crash"
	if err := os.Mkdir(crash, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data", "data.zones"} {
		b, err := os.ReadFile(path + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crash+"/"+name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	c.Close()
	s2.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, crash} {
		g, err := Open(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for name, size := range map[string]int64{"seq/0": 0, "seq/1": 3 * 4096, "seq/2": zcap, "cnv/1": ccap} {
			if fi, err := g.Stat(name); err != nil || fi.Size() != size {
				t.Errorf("%s: %s: size %v (%v), want %d", p, name, fi.Size(), err, size)
			}
		}
		b, err := g.ReadFile("seq/1")
		if err != nil || !bytes.Equal(b, page('s', 3)) {
			t.Errorf("%s: seq/1 after reopen: %v, or not its data", p, err)
		}
		b, err = g.ReadFile("cnv/1")
		if err != nil || string(b[100:112]) != "conventional" {
			t.Errorf("%s: cnv/1 after reopen: %v, or not its data", p, err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := Mkfs(path, MkfsOptions{Zoned: &geo, Force: true}); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if fi, err := g.Stat("seq/1"); err != nil || fi.Size() != 0 {
		t.Fatalf("seq/1 after mkfs --force: %v %v, want empty", fi, err)
	}
}

// TestZonefsOfflineMidRun: a zone going offline while files are in use
// loses nothing fsynced in other zones, in the open filesystem and after
// a reopen from the device's report, where the offline zone's file is
// empty with mode 0 (zonefs's mount-time rule).
func TestZonefsOfflineMidRun(t *testing.T) {
	data := t.TempDir() + "/data"
	dev, err := blockdev.CreateZonedFile(data, zonefsTestGeometry)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open("", Options{Backend: BackendZonefs, Device: dev, ZoneErrors: "zone-offline"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, flag int, p []byte, off int64) {
		h, err := f.OpenFile(name, os.O_RDWR|flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, err := h.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	write("seq/0", syscall.O_DIRECT, page('a', 2), 0)
	write("seq/1", syscall.O_DIRECT, page('b', 3), 0)
	write("cnv/1", 0, []byte("kept"), 4096)
	if err := dev.SetZoneCondition(2, blockdev.CondOffline); err != nil { // seq/0's zone
		t.Fatal(err)
	}
	h, err := f.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(page('c', 1), 2*4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write to the offline zone: %v, want EIO", err)
	}
	if _, err := h.ReadAt(make([]byte, 4096), 0); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("read after the zone went offline: %v, want EPERM", err)
	}
	h.Close()
	check := func(g *FS, when string) {
		t.Helper()
		if b, err := g.ReadFile("seq/1"); err != nil || !bytes.Equal(b, page('b', 3)) {
			t.Errorf("%s: seq/1: %v, or not its data", when, err)
		}
		if b, err := g.ReadFile("cnv/1"); err != nil || string(b[4096:4100]) != "kept" {
			t.Errorf("%s: cnv/1: %v, or not its data", when, err)
		}
		if fi, err := g.Stat("seq/0"); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0 {
			t.Errorf("%s: seq/0: %v %v, want size 0 mode 0", when, fi, err)
		}
	}
	check(f, "open")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dev, err = blockdev.OpenZonedFile(data)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Open("", Options{Backend: BackendZonefs, Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	check(g, "reopened")
}

// TestZonefsExplicitOpen: with explicit-open, opening a sequential file
// for writing opens its zone, the last writer's close closes it, and past
// the device's max-open limit such an open is EBUSY; without the option
// the device's limit shows at the write (ETOOMANYREFS) once explicitly
// open zones hold every open resource.
func TestZonefsExplicitOpen(t *testing.T) {
	geo := zonefsTestGeometry
	geo.MaxOpen = 2
	dev, err := blockdev.NewZoned(geo)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open("", Options{Backend: BackendZonefs, Device: dev, ZoneExplicitOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cond := func(zone int) blockdev.ZoneCond {
		zn, err := dev.Report(zone)
		if err != nil {
			t.Fatal(err)
		}
		return zn.Cond
	}
	open := func(name string, flag int) (*File, error) { return f.OpenFile(name, flag|syscall.O_DIRECT, 0) }
	a, err := open("seq/0", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := open("seq/0", os.O_RDWR) // a second writer of the same file takes nothing more
	if err != nil {
		t.Fatal(err)
	}
	if c := cond(2); c != blockdev.CondExplicitOpen {
		t.Fatalf("seq/0's zone after its open for writing: %s", c)
	}
	b, err := open("seq/1", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open("seq/2", os.O_WRONLY); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("third file open for writing with 2 open zones: %v, want EBUSY", err)
	}
	if r, err := open("seq/2", os.O_RDONLY); err != nil {
		t.Fatalf("open for reading is not limited: %v", err)
	} else {
		r.Close()
	}
	if _, err := a.WriteAt(page(1, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Truncate(0); err != nil { // reset: the zone stays open for its writers
		t.Fatal(err)
	}
	if c := cond(2); c != blockdev.CondExplicitOpen {
		t.Fatalf("seq/0's zone after a reset with writers: %s", c)
	}
	a.Close()
	if c := cond(2); c != blockdev.CondExplicitOpen {
		t.Fatalf("seq/0's zone with one writer left: %s", c)
	}
	a2.Close()
	if c := cond(2); c != blockdev.CondEmpty {
		t.Fatalf("seq/0's zone after its last writer closed: %s", c)
	}
	c, err := open("seq/2", os.O_WRONLY)
	if err != nil {
		t.Fatalf("open for writing once a writer closed: %v", err)
	}
	c.Close()
	b.Close()

	// Without the option: two zones explicitly open by hand, a write to a
	// third finds no open resource.
	dev2, err := blockdev.NewZoned(geo)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Open("", Options{Backend: BackendZonefs, Device: dev2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, z := range []int{2, 3} {
		if err := dev2.OpenZone(z); err != nil {
			t.Fatal(err)
		}
	}
	w, err := g.OpenFile("seq/2", os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt(page(1, 1), 0); !errors.Is(err, syscall.ETOOMANYREFS) {
		t.Fatalf("write with every open resource taken: %v, want ETOOMANYREFS", err)
	}
}

// TestZonefsWritebackError: a conventional zone gone read-only fails the
// writeback of its dirty pages; fsync reports EIO and the errors= policy
// applies (zone-ro: the file turns read-only).
func TestZonefsWritebackError(t *testing.T) {
	f, dev := openZonefsTest(t, Options{ZoneErrors: "zone-ro"})
	c, err := f.OpenFile("cnv/0", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteAt([]byte("dirty"), 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetZoneCondition(0, blockdev.CondReadOnly); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync after the zone went read-only: %v, want EIO", err)
	}
	if _, err := c.WriteAt([]byte("more"), 0); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("write after the error: %v, want EPERM (zone-ro)", err)
	}
	if fi, err := f.Stat("cnv/0"); err != nil || fi.Mode().Perm() != 0o440 || fi.Size() != ccap {
		t.Fatalf("after the error: %v %v, want mode 0440, size %d", fi.Mode(), err, ccap)
	}
}

// TestZonefsExplicitOpenTruncRefused: an O_TRUNC open that explicit-open
// refuses (EBUSY past the max-open limit) leaves the zone as it was. Linux
// runs ->open (zonefs_file_open) before the truncation O_TRUNC asks for
// (do_open's handle_truncate), so a refused open resets nothing.
func TestZonefsExplicitOpenTruncRefused(t *testing.T) {
	geo := zonefsTestGeometry
	geo.MaxOpen = 2
	dev, err := blockdev.NewZoned(geo)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open("", Options{Backend: BackendZonefs, Device: dev, ZoneExplicitOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	open := func(name string, flag int) (*File, error) { return f.OpenFile(name, flag|syscall.O_DIRECT, 0) }
	w, err := open("seq/2", os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(page(7, 1), 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, name := range []string{"seq/0", "seq/1"} {
		h, err := open(name, os.O_WRONLY)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
	}
	if _, err := open("seq/2", os.O_WRONLY|os.O_TRUNC); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("O_TRUNC open past the open-zone limit: %v, want EBUSY", err)
	}
	if fi, err := f.Stat("seq/2"); err != nil || fi.Size() != blockdev.BlockSize {
		t.Fatalf("seq/2 after a refused O_TRUNC open: %v, %v; want its %d bytes kept", fi, err, blockdev.BlockSize)
	}
	r, err := open("seq/2", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, blockdev.BlockSize)
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, page(7, 1)) {
		t.Fatalf("seq/2's data after a refused O_TRUNC open: %v, want it kept", err)
	}
}

// TestZonefsRemountROSetattr: once errors=remount-ro took effect, an
// attribute change of any zone file is EROFS, as a setattr on a read-only
// mount is on Linux (mnt_want_write), not only writes and truncation.
func TestZonefsRemountROSetattr(t *testing.T) {
	f, dev := openZonefsTest(t, Options{ZoneErrors: "remount-ro"})
	w, err := f.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := f.Chmod("cnv/0", 0o600); err != nil {
		t.Fatalf("chmod before any error: %v", err)
	}
	if err := dev.WriteBlocks(page(8, 1), 2*16); err != nil {
		t.Fatal(err) // another writer moved the write pointer
	}
	if _, err := w.WriteAt(page(9, 1), 0); err == nil {
		t.Fatal("the write at a stale write pointer succeeded")
	}
	if err := f.Chmod("cnv/0", 0o640); !errors.Is(err, syscall.EROFS) {
		t.Errorf("chmod after errors=remount-ro: %v, want EROFS", err)
	}
	if err := f.Chtimes("seq/1", time.Unix(1, 0), time.Unix(1, 0)); !errors.Is(err, syscall.EROFS) {
		t.Errorf("utimes after errors=remount-ro: %v, want EROFS", err)
	}
}

// TestZonefsResetReopenFails: with explicit-open, a reset whose re-open of
// the zone fails still empties the zone, so the file's size becomes 0 and
// the open's error is returned, as zonefs_file_truncate does; a file kept
// at its old size would read past an empty zone's write pointer.
func TestZonefsResetReopenFails(t *testing.T) {
	geo := zonefsTestGeometry
	fdev := blockdev.NewFaulty(blockdev.NewMemory(blockdev.ZonedOnBlocks(geo)), blockdev.FaultOptions{})
	dev, err := blockdev.NewZonedOn(fdev, geo)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open("", Options{Backend: BackendZonefs, Device: dev, ZoneExplicitOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := f.OpenFile("seq/0", os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt(page(3, 2), 0); err != nil {
		t.Fatal(err)
	}
	// The device operations of a reset of a zone holding as much: the
	// re-open after them is the first to fail.
	if err := dev.WriteBlocks(page(4, 2), 4*geo.ZoneBlocks); err != nil {
		t.Fatal(err)
	}
	ops := fdev.Ops()
	if err := dev.ResetZone(4); err != nil {
		t.Fatal(err)
	}
	fdev.FailAfter(fdev.Ops()-ops, syscall.EIO)
	err = w.Truncate(0)
	fdev.Clear()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reset whose re-open fails: %v, want EIO", err)
	}
	if zn, err := dev.Report(2); err != nil || zn.WP != zn.Start {
		t.Fatalf("seq/0's zone after the reset: %+v, %v; want its write pointer at its start", zn, err)
	}
	if fi, err := f.Stat("seq/0"); err != nil || fi.Size() != 0 {
		t.Fatalf("seq/0 after a reset whose re-open failed: %v, %v; want size 0", fi, err)
	}
	if _, err := w.WriteAt(page(5, 1), 0); err != nil {
		t.Fatalf("write at the reset zone's write pointer: %v", err)
	}
}

// TestZonefsFallocateImmutable: fallocate on a handle open for writing of
// a zone that went read-only or offline is EPERM, vfs_fallocate's
// IS_IMMUTABLE check, which precedes the EOPNOTSUPP of zonefs having no
// ->fallocate; a healthy zone's is EOPNOTSUPP.
func TestZonefsFallocateImmutable(t *testing.T) {
	tests := []struct {
		name   string
		errors string
		cond   blockdev.ZoneCond // 0: the zone stays healthy
		want   syscall.Errno
	}{
		{"healthy", "zone-ro", 0, syscall.EOPNOTSUPP},
		{"read-only", "zone-ro", blockdev.CondReadOnly, syscall.EPERM},
		{"offline", "zone-offline", blockdev.CondOffline, syscall.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, dev := openZonefsTest(t, Options{ZoneErrors: tc.errors})
			h, err := f.OpenFile("seq/0", os.O_RDWR|syscall.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if tc.cond != 0 {
				if err := dev.SetZoneCondition(2, tc.cond); err != nil {
					t.Fatal(err)
				}
				if _, err := h.WriteAt(page(1, 1), 0); !errors.Is(err, syscall.EIO) {
					t.Fatalf("write to a %s zone: %v, want EIO", tc.cond, err)
				}
			}
			if err := h.Fallocate(0, 0, 4096); !errors.Is(err, tc.want) {
				t.Fatalf("fallocate: %v, want %v", err, tc.want)
			}
		})
	}
}
