package holefs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/meta"
	"github.com/holefs/holefs/vfs"
)

func mkImage(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	if err := holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: size}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openImage(t *testing.T, dir string) *holefs.FS {
	t.Helper()
	fsys, err := holefs.Open(dir, holefs.Options{CommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// crashCopy copies an open image's files as they are on disk now: what a
// crash would leave (everything written so far, a superset of what was
// flushed; the recording-device tests in internal/crash enumerate subsets).
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "crash")
	must(t, os.Mkdir(dst, 0o755))
	for _, name := range []string{"data", "meta.db"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dst, name), b, 0o600))
	}
	return dst
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fsys *holefs.FS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fsys.Create(name)
	must(t, err)
	_, err = f.WriteAt(data, 0)
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

func TestImageRoundTrip(t *testing.T) {
	dir := mkImage(t, 64<<20)
	fsys := openImage(t, dir)
	data := bytes.Repeat([]byte("holefs!\n"), 3000)
	must(t, fsys.Mkdir("d", 0o750))
	f, err := fsys.Create("d/f")
	must(t, err)
	_, err = f.WriteAt(data, 0)
	must(t, err)
	must(t, f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 4096))
	must(t, f.Close())
	must(t, fsys.Symlink("e/f", "link"))
	must(t, fsys.Link("d/f", "hard"))
	must(t, fsys.Chmod("d/f", 0o600))
	must(t, fsys.Chown("d/f", 1000, 1001))
	must(t, fsys.Setxattr("d/f", "user.color", []byte("blue"), 0))
	must(t, fsys.Setxattr("d/f", "user.empty", nil, 0))
	must(t, fsys.Setxattr("d/f", "user.gone", []byte("x"), 0))
	must(t, fsys.Removexattr("d/f", "user.gone"))
	atime := time.Unix(1_000_000_000, 0)
	must(t, fsys.Chtimes("d/f", atime, time.Unix(1_100_000_000, 0)))
	writeFile(t, fsys, "gone", data, false)
	must(t, fsys.Remove("gone"))
	must(t, fsys.Rename("d", "e"))
	must(t, fsys.Close())

	fsys = openImage(t, dir)
	defer fsys.Close()
	want := append([]byte(nil), data...)
	clear(want[4096:8192])
	for _, name := range []string{"e/f", "link", "hard"} {
		got, err := fsys.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs after reopen", name)
		}
	}
	st, err := fsys.Stat("e/f")
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	a := st.Sys().(*vfs.Attr)
	if a.Nlink != 2 || a.Blocks != 5*8 {
		t.Errorf("nlink %d, 512-byte blocks %d; want 2 and 40 (5 of 6 pages, one punched)", a.Nlink, a.Blocks)
	}
	if a.Uid != 1000 || a.Gid != 1001 || !a.Atime.Equal(atime) || !st.ModTime().Equal(time.Unix(1_100_000_000, 0)) {
		t.Errorf("owner %d:%d, atime %v, mtime %v after reopen", a.Uid, a.Gid, a.Atime, st.ModTime())
	}
	buf := make([]byte, 64)
	if n, err := fsys.Getxattr("e/f", "user.color", buf); err != nil || string(buf[:n]) != "blue" {
		t.Errorf("xattr after reopen: %q %v", buf[:n], err)
	}
	if n, err := fsys.Getxattr("e/f", "user.empty", buf); err != nil || n != 0 {
		t.Errorf("empty xattr after reopen: %d %v", n, err)
	}
	if _, err := fsys.Getxattr("e/f", "user.gone", buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("removed xattr after reopen: %v, want ENODATA", err)
	}
	if dst, err := fsys.Stat("e"); err != nil || dst.Mode().Perm() != 0o750 || !dst.IsDir() {
		t.Errorf("directory e: %v %v", dst, err)
	}
	for _, name := range []string{"gone", "d"} {
		if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want not exist", name, err)
		}
	}
	_, total, free := fsys.Statfs()
	if used := total - free; used != 5 {
		t.Errorf("%d blocks in use, want 5: the removed file's blocks must be free again", used)
	}
}

// TestImageFsyncSurvivesCrash: data and size of an fsynced file, and the
// entries of an fsynced directory, are in the image after a crash.
func TestImageFsyncSurvivesCrash(t *testing.T) {
	dir := mkImage(t, 64<<20)
	fsys := openImage(t, dir)
	defer fsys.Close()
	data := bytes.Repeat([]byte{0xab}, 3*4096+100)
	writeFile(t, fsys, "a", data, true)
	must(t, fsys.Mkdir("sub", 0o755))
	writeFile(t, fsys, "sub/b", data[:10], false)
	d, err := fsys.OpenFile("sub", os.O_RDONLY, 0)
	must(t, err)
	must(t, d.Sync())
	must(t, d.Close())

	img := openImage(t, crashCopy(t, dir))
	defer img.Close()
	got, err := img.ReadFile("a")
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("fsynced file: %d bytes back, want %d equal bytes", len(got), len(data))
	}
	if st, err := img.Stat("sub/b"); err != nil || st.Size() != 10 {
		t.Fatalf("entry of the fsynced directory: %v %v", st, err)
	}
}

// TestImageQuarantine: a block freed by a punch is not reused before the
// commit that freed it is durable, so a crash can never leave the punched
// file's durable map pointing at another file's new data; and a full
// device still finds the space by committing.
func TestImageQuarantine(t *testing.T) {
	dir := mkImage(t, 16*4096) // 15 data blocks
	fsys := openImage(t, dir)
	defer fsys.Close()
	secret := bytes.Repeat([]byte("A"), 4096)
	old := bytes.Repeat([]byte("o"), 8*4096)
	f, err := fsys.Create("victim")
	must(t, err)
	_, err = f.WriteAt(old, 0)
	must(t, err)
	must(t, f.Sync())
	// Punch without a commit: the durable map still owns the blocks.
	must(t, f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 8*4096))
	// A direct write reaches the device at once, with no commit.
	th, err := fsys.OpenFile("thief", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	must(t, err)
	_, err = th.WriteAt(bytes.Repeat(secret, 7), 0)
	must(t, err)
	must(t, th.Close())
	must(t, f.Close())

	// Before the punch commits, a crash leaves the victim's old blocks;
	// they must still hold the victim's data, not the thief's.
	img := openImage(t, crashCopy(t, dir))
	defer img.Close()
	got, err := img.ReadFile("victim")
	must(t, err)
	if bytes.Contains(got, secret[:16]) {
		t.Fatal("a crash image shows another file's data through the punched file")
	}
	// 15 blocks: victim held 8 (now quarantined, then freed by the
	// commit an allocation forces), thief 7; 8 more fit only after it.
	writeFile(t, fsys, "more", bytes.Repeat(secret, 8), false)
	must(t, fsys.Sync())
}

func TestImageInUse(t *testing.T) {
	dir := mkImage(t, 1<<20)
	fsys := openImage(t, dir)
	defer fsys.Close()
	if _, err := holefs.Open(dir, holefs.Options{}); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: %v, want EBUSY", err)
	}
}

func TestImageRefusesLockNone(t *testing.T) {
	dir := mkImage(t, 1<<20)
	if _, err := holefs.Open(dir, holefs.Options{LockMode: holefs.LockNone}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("open with lock mode none: %v, want EINVAL", err)
	}
	fsys, err := holefs.Open(dir, holefs.Options{LockMode: holefs.LockNone, UnsafeLockNone: true})
	must(t, err)
	must(t, fsys.Close())
}

// TestImageOrphan: a file unlinked while open is gone after a crash, and
// its blocks are free.
func TestImageOrphan(t *testing.T) {
	dir := mkImage(t, 1<<20)
	fsys := openImage(t, dir)
	defer fsys.Close()
	f, err := fsys.Create("tmp")
	must(t, err)
	_, err = f.WriteAt(make([]byte, 5*4096), 0)
	must(t, err)
	must(t, fsys.Remove("tmp"))
	must(t, f.Sync())

	img := openImage(t, crashCopy(t, dir))
	defer img.Close()
	if ents, err := img.ReadDir("."); err != nil || len(ents) != 0 {
		t.Fatalf("root after crash: %v %v, want empty", ents, err)
	}
	if _, total, free := img.Statfs(); total != free {
		t.Fatalf("%d of %d blocks free after the orphan was dropped", free, total)
	}
	must(t, f.Close())
}

// TestImageDataChecksums: a corrupted data block reads as EIO and is
// counted; an overwrite that reached the disk without its commit is no
// false alarm after a crash (every write moves: the committed map still
// points at the old block and its checksum).
func TestImageDataChecksums(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	must(t, holefs.Mkfs(dir, holefs.MkfsOptions{SizeBytes: 1 << 20, DataChecksums: true}))
	fsys := openImage(t, dir)
	old := bytes.Repeat([]byte("v1"), 2*4096)
	writeFile(t, fsys, "f", old, true)

	// Overwrite the first page: a direct write reaches the device with no
	// commit.
	d, err := fsys.OpenFile("f", os.O_RDWR|syscall.O_DIRECT, 0)
	must(t, err)
	_, err = d.WriteAt(bytes.Repeat([]byte("v2"), 2048), 0)
	must(t, err)
	must(t, d.Close())
	crash := openImage(t, crashCopy(t, dir))
	got, err := crash.ReadFile("f")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after a crash before the overwrite committed: %v, old content %v", err, bytes.Equal(got, old))
	}
	must(t, crash.Close())
	must(t, fsys.Close())

	// Flip a byte of every data block of the file on disk.
	data, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	must(t, err)
	buf := make([]byte, 4096)
	for b := int64(1); b < 256; b++ {
		if _, err := data.ReadAt(buf, b*4096); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(buf, []byte("v2v2")) {
			buf[100] ^= 0xff
			_, err = data.WriteAt(buf, b*4096)
			must(t, err)
		}
	}
	must(t, data.Close())
	fsys = openImage(t, dir)
	defer fsys.Close()
	f, err := fsys.Open("f")
	must(t, err)
	defer f.Close()
	_, err = f.(*holefs.File).ReadAt(buf, 0)
	if !errors.Is(err, syscall.EIO) || fsys.DataChecksumErrors() == 0 {
		t.Fatalf("read of a corrupted block: %v, %d checksum errors; want EIO and a count", err, fsys.DataChecksumErrors())
	}
	if _, err := f.(*holefs.File).ReadAt(buf, 4096); err != nil {
		t.Fatalf("read of an intact block: %v", err)
	}
}

// TestImageReflink: clones on an image share blocks durably: after a
// reopen the reference counts are rebuilt from the extents (a write copies,
// the other file keeps its data), fsck accepts the shared blocks, and an
// image made with NoReflink refuses clones before touching anything.
func TestImageReflink(t *testing.T) {
	dir := mkImage(t, 1<<20)
	fsys := openImage(t, dir)
	data := bytes.Repeat([]byte("shared!!"), 2*4096/8)
	writeFile(t, fsys, "a", data, true)
	a, err := fsys.OpenFile("a", os.O_RDWR, 0)
	must(t, err)
	b, err := fsys.Create("b")
	must(t, err)
	must(t, a.Clone(b, 0, 0, 0))
	must(t, b.Sync())
	_, total, free := fsys.Statfs()
	used := total - free
	must(t, a.Close())
	must(t, b.Close())

	img := openImage(t, crashCopy(t, dir)) // after the clone's commit
	for _, name := range []string{"a", "b"} {
		if got, err := img.ReadFile(name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("crash copy: %s: %v", name, err)
		}
	}
	must(t, img.Close())
	must(t, fsys.Close())

	fsys = openImage(t, dir)
	if _, total, free := fsys.Statfs(); total-free != used || used != 2 {
		t.Fatalf("%d blocks in use after reopen, want %d (2 shared)", total-free, used)
	}
	b, err = fsys.OpenFile("b", os.O_RDWR, 0)
	must(t, err)
	_, err = b.WriteAt([]byte("B"), 0)
	must(t, err)
	must(t, b.Close())
	if got, _ := fsys.ReadFile("a"); !bytes.Equal(got, data) {
		t.Fatal("a write to the clone changed the original after a reopen")
	}
	must(t, fsys.Close())
	rimg, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	must(t, err)
	rep, err := meta.Check(rimg, meta.CheckOptions{})
	must(t, err)
	if n := rep.Count(meta.Error); n != 0 {
		t.Fatalf("fsck of an image with shared blocks: %d errors: %v", n, rep.Findings)
	}
	must(t, rimg.Close())

	old := filepath.Join(t.TempDir(), "old")
	must(t, holefs.Mkfs(old, holefs.MkfsOptions{SizeBytes: 1 << 20, NoReflink: true}))
	o := openImage(t, old)
	defer o.Close()
	writeFile(t, o, "a", data, false)
	a, err = o.OpenFile("a", os.O_RDWR, 0)
	must(t, err)
	defer a.Close()
	if err := a.Clone(a, 0, 2*4096, 4096); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("clone on an image without reflink: %v, want EOPNOTSUPP", err)
	}
}
