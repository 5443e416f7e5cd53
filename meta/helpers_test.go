package meta

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// testBlocks is the size of the test images: 64 blocks, 256 KiB.
const testBlocks = 64

// newImage creates an empty image of testBlocks blocks.
func newImage(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	if _, err := Create(dir, CreateOptions{Blocks: testBlocks}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return dir
}

// testImage creates an image holding a small healthy tree:
//
//	/       1  directory
//	/a      2  directory
//	/a/f    3  file of 3 pages less 100 bytes: blocks 10-11 written, 12 unwritten; xattr user.x
//	/a/g2   5  second link of /g
//	/g      5  file of 100 bytes in block 20, 2 links
//	/s      4  symlink to a/f
func testImage(t testing.TB) string {
	t.Helper()
	dir := newImage(t)
	update(t, dir, func(tx *bbolt.Tx) error {
		now := time.Now().UnixNano()
		for _, in := range []Inode{
			{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 3},
			{Ino: 2, Mode: syscall.S_IFDIR | 0o755, Nlink: 2},
			{Ino: 3, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: 3*BlockSize - 100},
			{Ino: 4, Mode: syscall.S_IFLNK | 0o777, Nlink: 1, Target: "a/f"},
			{Ino: 5, Mode: syscall.S_IFREG | 0o600, Nlink: 2, Size: 100},
		} {
			in.Atime, in.Mtime, in.Ctime = now, now, now
			putInode(tx, in)
		}
		putDirent(tx, 1, "a", 2)
		putDirent(tx, 2, "f", 3)
		putDirent(tx, 2, "g2", 5)
		putDirent(tx, 1, "g", 5)
		putDirent(tx, 1, "s", 4)
		putExtent(tx, 3, Extent{Page: 0, Count: 2, Block: 10})
		putExtent(tx, 3, Extent{Page: 2, Count: 1, Block: 12, Unwritten: true})
		putExtent(tx, 5, Extent{Page: 0, Count: 1, Block: 20})
		putXattr(tx, 3, "user.x", []byte("value"))
		return nil
	})
	return dir
}

// update applies fn to the image's meta.db directly (Open refuses some
// damage), then rewrites the state record from what decodes, so that a
// test sees only the damage it made.
func update(t testing.TB, dir string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	raw(t, dir, func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		resealState(tx)
		return nil
	})
}

// raw applies fn to the image's meta.db directly.
func raw(t testing.TB, dir string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, MetaFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("update meta.db: %v", err)
	}
}

// resealState sets the state record's counts to those of the records
// that decode, keeping its commit sequence.
func resealState(tx *bbolt.Tx) {
	var st state
	super := tx.Bucket([]byte(bucketSuper))
	if super == nil {
		return
	}
	if old, err := decodeState(super.Get([]byte(keyState))); err == nil {
		st.Seq = old.Seq
	}
	if b := tx.Bucket([]byte(bucketInodes)); b != nil {
		b.ForEach(func(k, v []byte) error {
			if _, err := DecodeInode(k, v); err == nil {
				st.Inodes++
			}
			return nil
		})
	}
	if b := tx.Bucket([]byte(bucketExtents)); b != nil {
		b.ForEach(func(k, v []byte) error {
			if _, x, err := DecodeExtent(k, v, testBlocks); err == nil {
				st.Owned += x.Count
			}
			return nil
		})
	}
	put(super, []byte(keyState), encodeState(st))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func bucket(tx *bbolt.Tx, name string) *bbolt.Bucket { return tx.Bucket([]byte(name)) }

// put stores a record, replacing a nested bucket the fuzzer may have
// made under its key.
func put(b *bbolt.Bucket, k, v []byte) {
	must(deleteKey(b, k))
	must(b.Put(k, v))
}

func putInode(tx *bbolt.Tx, in Inode) {
	k, v := encodeInode(in)
	put(bucket(tx, bucketInodes), k, v)
}

func putDirent(tx *bbolt.Tx, dir uint64, name string, ino uint64) {
	k, v := encodeDirent(dir, name, ino)
	put(bucket(tx, bucketDirents), k, v)
}

func putExtent(tx *bbolt.Tx, ino uint64, x Extent) {
	k, v := encodeExtent(ino, x)
	put(bucket(tx, bucketExtents), k, v)
}

func putXattr(tx *bbolt.Tx, ino uint64, name string, value []byte) {
	k := xattrKey(ino, name)
	put(bucket(tx, bucketXattrs), k, sealed(k, value))
}

// damage flips a bit of a record's value, breaking its checksum.
func damage(tx *bbolt.Tx, b string, key []byte) {
	v := bytes.Clone(bucket(tx, b).Get(key))
	if v == nil {
		panic("damage: no record " + b + "/" + string(key))
	}
	v[0] ^= 0x40
	put(bucket(tx, b), key, v)
}

// openImage opens an image, closed when the test ends.
func openImage(t testing.TB, dir string, readOnly bool) *Image {
	t.Helper()
	img, err := Open(dir, OpenOptions{ReadOnly: readOnly})
	if err != nil {
		t.Fatalf("Open(%s, read-only %v): %v", dir, readOnly, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// patchData overwrites bytes of the data file at off.
func patchData(t testing.TB, dir string, off int64, b ...byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, DataFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(dir string, size int64) error { return os.Truncate(filepath.Join(dir, DataFile), size) }

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readSB returns the image's superblock, from block 0.
func readSB(t testing.TB, dir string) Superblock {
	t.Helper()
	sb, err := readSuperblock(filepath.Join(dir, DataFile))
	if err != nil {
		t.Fatal(err)
	}
	return sb
}
