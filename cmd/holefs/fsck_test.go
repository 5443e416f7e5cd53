package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/blockdev"
	"github.com/holefs/holefs/meta"
)

// TestFsck runs fsck, then fsck --repair, then fsck again on damaged
// images, checking e2fsck's exit statuses and what each run prints.
func TestFsck(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, img string)
		check  []string // stdout of the first fsck, exit 4
		repair []string // stdout of fsck --repair, exit 1
	}{
		{
			name:   "damaged state record",
			damage: func(t *testing.T, img string) { editMeta(t, img, flipValue("super", "state")) },
			check:  []string{"error [state]: state record: checksum", "    --repair would rewrite the state record from the records", "IMG: 1 error left uncorrected (run holefs fsck --repair)"},
			repair: []string{"error [state]", "    fixed: rewrite the state record", "IMG: 1 error fixed"},
		},
		{
			name: "dangling directory entry",
			damage: func(t *testing.T, img string) {
				editMeta(t, img, func(tx *bbolt.Tx) error {
					key := append(binary.BigEndian.AppendUint64(nil, meta.RootIno), "ghost"...)
					return tx.Bucket([]byte("dirents")).Put(key, seal(key, binary.BigEndian.AppendUint64(nil, 77)))
				})
			},
			check: []string{`error [dangling-entry] inode 1 "/ghost": entry names inode 77, which does not exist`, "--repair would remove the entry",
				"IMG: after --repair: 1 inode (1 directory, 0 files, 0 symlinks, 0 special files, 0 orphans), 0 extents"},
			repair: []string{"fixed: remove the entry", "IMG: 1 error fixed"},
		},
		{
			name: "damaged superblock",
			damage: func(t *testing.T, img string) {
				f, err := os.OpenFile(filepath.Join(img, meta.DataFile), os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteAt([]byte{0xff}, 30); err != nil {
					t.Fatal(err)
				}
			},
			check:  []string{"error [superblock]: data block 0: superblock: checksum", "--repair would rewrite it from meta.db's copy", "IMG: 1 error left uncorrected"},
			repair: []string{"fixed: rewrite it from meta.db's copy", "IMG: 1 error fixed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			mkfsAt(t, img)
			tt.damage(t, img)
			before := fileBytes(t, img)
			fsckRun(t, []string{"fsck", img}, 4, subst(tt.check, img), "")
			if after := fileBytes(t, img); after != before {
				t.Error("fsck without --repair changed the image")
			}
			fsckRun(t, []string{"fsck", "--repair", img}, 1, subst(tt.repair, img), "")
			fsckRun(t, []string{"fsck", img}, 0, []string{img + ": clean"}, "")
		})
	}
}

func TestFsckStatuses(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsAt(t, img)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "clean", args: []string{"fsck", "IMG"}, stdout: []string{"IMG: 1 MiB, 256 blocks of 4096 bytes, uuid ", "IMG: 1 inode (1 directory, 0 files, 0 symlinks, 0 special files, 0 orphans), 0 extents, 0 of 255 data blocks in use", "IMG: clean"}},
		{name: "clean, repair", args: []string{"fsck", "IMG", "--repair", "--quiet"}, stdout: []string{"IMG: clean"}},
		{name: "not an image", args: []string{"fsck", "IMG/.."}, code: 8, stderr: "no such file or directory"},
		{name: "no such path", args: []string{"fsck", "IMG/nothing"}, code: 8, stderr: "no such file or directory"},
		{name: "no path", args: []string{"fsck", "--repair"}, code: 16, stderr: "missing the image path"},
		{name: "two paths", args: []string{"fsck", "IMG", "IMG"}, code: 16, stderr: "unexpected argument"},
		{name: "unknown flag", args: []string{"fsck", "--fix", "IMG"}, code: 16, stderr: "flag provided but not defined: -fix"},
		{name: "help", args: []string{"fsck", "-h"}, stdout: []string{"Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsckRun(t, subst(tt.args, img), tt.code, subst(tt.stdout, img), tt.stderr)
		})
	}
}

// TestFsckBusy: fsck refuses an image another user has open for writing,
// with or without --repair.
func TestFsckBusy(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsAt(t, img)
	im, err := meta.Open(img, meta.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	for _, args := range [][]string{{"fsck", img}, {"fsck", "--repair", img}} {
		fsckRun(t, args, 8, nil, "the image is in use by this process: unmount it (holefs umount) or close it first: device or resource busy")
	}
}

func TestFsckNeitherSuperblock(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsAt(t, img)
	if err := os.WriteFile(filepath.Join(img, meta.DataFile), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	editMeta(t, img, flipValue("super", "sb"))
	for _, args := range [][]string{{"fsck", img}, {"fsck", "--repair", img}} {
		fsckRun(t, args, 8, nil, "neither superblock copy is valid (not a holefs image, or both are damaged)")
	}
}

func fsckRun(t *testing.T, args []string, code int, stdout []string, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if got := run(args, &out, &errb); got != code {
		t.Fatalf("%q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, code, out.String(), errb.String())
	}
	for _, s := range stdout {
		if !strings.Contains(out.String(), s) {
			t.Errorf("%q: stdout lacks %q:\n%s", args, s, out.String())
		}
	}
	if !strings.Contains(errb.String(), stderr) {
		t.Errorf("%q: stderr lacks %q:\n%s", args, stderr, errb.String())
	}
}

// editMeta applies fn to an image's meta.db directly.
func editMeta(t *testing.T, img string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(img, meta.MetaFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// flipValue damages a record's value.
func flipValue(bucket, key string) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		v := bytes.Clone(b.Get([]byte(key)))
		v[0] ^= 1
		return b.Put([]byte(key), v)
	}
}

// seal appends a record's checksum, as meta.db's format has it: the
// CRC-32C of the key and the value.
func seal(key, value []byte) []byte {
	tab := crc32.MakeTable(crc32.Castagnoli)
	return binary.BigEndian.AppendUint32(value, crc32.Update(crc32.Checksum(key, tab), tab, value))
}

// fileBytes returns the image's files' content, to tell whether a run
// wrote to it.
func fileBytes(t *testing.T, img string) string {
	t.Helper()
	var s strings.Builder
	for _, name := range []string{meta.DataFile, meta.MetaFile} {
		b, err := os.ReadFile(filepath.Join(img, name))
		if err != nil {
			t.Fatal(err)
		}
		s.Write(b)
	}
	return s.String()
}

// TestFsckRollback: a meta.db whose newer meta page is damaged fell back
// to the commit before, losing a file written and fsync'd last. fsck
// reports the rollback and, without --accept-rollback, leaves it (even
// with --repair: exit 4); mount's Open refuses it; --repair
// --accept-rollback accepts the loss (exit 1), and the image is clean
// after.
func TestFsckRollback(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsWith(t, img, "--no-log") // with a log, the log replays what meta.db lost
	fsys, err := holefs.Open(img, holefs.Options{CommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create("last")
	if err == nil {
		_, err = f.WriteAt([]byte("fsync'd"), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = fsys.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	// Damage the meta page with the higher txid: bbolt falls back to the
	// other, from before the fsync.
	mf, err := os.OpenFile(filepath.Join(img, meta.MetaFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	txid := func(page int64) uint64 {
		b := make([]byte, 8)
		if _, err := mf.ReadAt(b, page*ps+16+48); err != nil {
			t.Fatal(err)
		}
		return binary.NativeEndian.Uint64(b)
	}
	newer := int64(0)
	if txid(1) > txid(0) {
		newer = 1
	}
	if _, err := mf.WriteAt([]byte{0xee}, newer*ps+16+60); err != nil {
		t.Fatal(err)
	}
	mf.Close()

	lost := []string{"error [rollback]: rolled back from commit", "data fsynced since is lost (meta page"}
	fsckRun(t, []string{"fsck", img}, 4, append(lost, "fsck --repair --accept-rollback accepts the loss", img+": 0 errors fixed, 1 left uncorrected (fsck cannot repair them)\n"+img+": the rollback stays until accepted: holefs fsck --repair --accept-rollback "+img+"\n"), "")
	fsckRun(t, []string{"fsck", "--repair", img}, 4, append(lost, img+": 0 errors fixed, 1 left uncorrected", "the rollback stays until accepted"), "")
	fsckRun(t, []string{"fsck", "--accept-rollback", img}, 16, nil, "--accept-rollback needs --repair")
	if _, err := holefs.Open(img, holefs.Options{}); !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), "rolled back from commit") {
		t.Fatalf("holefs.Open: %v; want EUCLEAN naming the rollback", err)
	}
	fsckRun(t, []string{"fsck", "--repair", "--accept-rollback", img}, 1, append(lost, "    fixed: accept it: commit", img+": 1 error fixed"), "")
	fsckRun(t, []string{"fsck", img}, 0, []string{img + ": clean"}, "")
	fsys, err = holefs.Open(img, holefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if _, err := fsys.Stat("last"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat last after accepting the rollback: %v; want it lost", err)
	}
}

// TestFsckDamagedPage: a meta.db page bbolt would crash on is reported,
// naming the page, and left (fsck repairs through bbolt): exit 4 with or
// without --repair, the image unchanged.
func TestFsckDamagedPage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsAt(t, img)
	path := filepath.Join(img, meta.MetaFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	active := 0
	if binary.NativeEndian.Uint64(b[ps+16+48:]) > binary.NativeEndian.Uint64(b[16+48:]) {
		active = ps
	}
	root := int(binary.NativeEndian.Uint64(b[active+16+16:]))
	binary.NativeEndian.PutUint16(b[root*ps+8:], 0x10) // the root page claims to be the freelist
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, img)
	want := []string{fmt.Sprintf("error [meta.db]: meta.db page %d: type 0x10 where a branch or leaf page belongs", root), "(fsck cannot repair them)"}
	fsckRun(t, []string{"fsck", img}, 4, want, "")
	fsckRun(t, []string{"fsck", "--repair", img}, 4, want, "")
	if fileBytes(t, img) != before {
		t.Error("fsck changed a meta.db it cannot repair")
	}
}

// TestFsckZoned: fsck of a zoned image reports its zones and is clean; a
// damaged zone state is an uncorrected error (4); an image in use is
// EBUSY (8).
func TestFsckZoned(t *testing.T) {
	dir := t.TempDir() + "/z"
	var out bytes.Buffer
	if code := run([]string{"mkfs", dir, "--zoned", "--size", "8M", "--zone-size", "1M", "--conventional", "2"}, &out, &out); code != 0 {
		t.Fatalf("mkfs: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"fsck", "--quiet", dir}, &out, &out); code != fsckClean || !strings.Contains(out.String(), "8 zones of 1 MiB (2 conventional, 6 sequential)") {
		t.Fatalf("fsck of a new zoned image: exit %d\n%s", code, out.String())
	}
	dev, err := blockdev.OpenZonedFile(dir + "/data")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := (run([]string{"fsck", "--quiet", dir}, &out, &out)); code != fsckFailed {
		t.Errorf("fsck of an open zoned image: code %d, want %d\n%s", code, fsckFailed, out.String())
	}
	dev.Close()
	state := blockdev.ZoneStatePath(dir + "/data")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0xff // the last zone's record checksum
	if err := os.WriteFile(state, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := (run([]string{"fsck", "--quiet", dir}, &out, &out)); code != fsckLeft || !strings.Contains(out.String(), "zone 7") {
		t.Errorf("fsck of a damaged zone state: code %d, want %d\n%s", code, fsckLeft, out.String())
	}
}

// TestFsckExt2Summary: an ext2 image's summary counts what its block maps
// hold, data and indirect blocks, not extents it never has; an extent
// image's counts extents.
func TestFsckExt2Summary(t *testing.T) {
	tests := []struct {
		backend string
		want    string
	}{
		// 20 pages: 12 direct, 8 under the single-indirect block.
		{holefs.BackendExt2, "1 file, 0 symlinks, 0 special files, 0 orphans), 20 mapped blocks and 1 indirect block, 21 of 255 data blocks in use"},
		{holefs.BackendExtent, "1 file, 0 symlinks, 0 special files, 0 orphans), 1 extent, 20 of 255 data blocks in use"},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			if err := holefs.Mkfs(img, holefs.MkfsOptions{SizeBytes: 1 << 20, Backend: tc.backend}); err != nil {
				t.Fatal(err)
			}
			f, err := holefs.Open(img, holefs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			h, err := f.Create("f")
			if err == nil {
				_, err = h.WriteAt(bytes.Repeat([]byte{1}, 20*4096), 0)
			}
			if err == nil {
				err = h.Close()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			fsckRun(t, []string{"fsck", img}, 0, []string{tc.want, img + ": clean"}, "")
		})
	}
}

// TestFsckDamagedLog: on an image whose log holds fsync'd commits not yet
// in meta.db (a crash), a damaged record with later ones after it loses
// commits: fsck reports it as a rollback naming the log block, the mount
// refuses the image, and fsck --repair --accept-rollback replays what is
// intact and clears the log. An intact log is replayed and checked.
func TestFsckDamagedLog(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	mkfsWith(t, img, "--log-size", "64K")
	fsys, err := holefs.Open(img, holefs.Options{CommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		f, err := fsys.Create(name)
		if err == nil {
			_, err = f.WriteAt([]byte(name), 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The crash: the image as it is now, before Close checkpoints.
	crashed := filepath.Join(t.TempDir(), "crashed")
	if err := os.Mkdir(crashed, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{meta.DataFile, meta.MetaFile} {
		b, err := os.ReadFile(filepath.Join(img, name))
		if err == nil {
			err = os.WriteFile(filepath.Join(crashed, name), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	fsckRun(t, []string{"fsck", crashed}, 0, []string{"write-ahead log of 16 blocks after the data blocks: commits 2 to 4 not yet in meta.db, checked as replayed", crashed + ": clean"}, "")

	// Garble the second record (log block 1, 256 blocks of data before it).
	df, err := os.OpenFile(filepath.Join(crashed, meta.DataFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := df.WriteAt([]byte{0xee}, (256+1)*meta.BlockSize+40); err != nil {
		t.Fatal(err)
	}
	df.Close()
	lost := []string{"error [rollback]: rolled back from commit 4 to 2", "log record of commit 3 is missing or damaged, commit 4 is at log block 2 (log block 1: "}
	fsckRun(t, []string{"fsck", crashed}, 4, append(lost, "fsck --repair --accept-rollback accepts the loss"), "")
	if _, err := holefs.Open(crashed, holefs.Options{}); !errors.Is(err, syscall.EUCLEAN) || !strings.Contains(err.Error(), "log block 1") {
		t.Fatalf("holefs.Open: %v; want EUCLEAN naming the damaged log block", err)
	}
	fsckRun(t, []string{"fsck", "--repair", "--accept-rollback", crashed}, 1, append(lost, "    fixed: accept it: commit 2 is the latest now"), "")
	fsckRun(t, []string{"fsck", crashed}, 0, []string{"nothing to replay", crashed + ": clean"}, "")
	fsys, err = holefs.Open(crashed, holefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	for name, want := range map[string]bool{"a": true, "b": false, "c": false} {
		if _, err := fsys.Stat(name); (err == nil) != want {
			t.Errorf("stat %s after accepting the loss: %v; want it there: %v", name, err, want)
		}
	}
}
