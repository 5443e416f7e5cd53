package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// File names inside an image directory.
const (
	DataFile = "data"
	MetaFile = "meta.db"
)

const (
	bucketSuper   = "super"
	bucketInodes  = "inodes"
	bucketDirents = "dirents"
	bucketExtents = "extents"
	bucketXattrs  = "xattrs"
	bucketCsums   = "csums" // images with IncompatDataChecksums: block -> CRC-32C
	keySB         = "sb"
	keyState      = "state"
)

var buckets = []string{bucketSuper, bucketInodes, bucketDirents, bucketExtents, bucketXattrs}

// RootIno is the root directory's inode number.
const RootIno = 1

// CreateOptions configure Create.
type CreateOptions struct {
	// Blocks is the device size in 4 KiB blocks, block 0 (the
	// superblock) included; at least 2.
	Blocks int64
	// Incompat are the incompatible features to enable.
	Incompat uint64
	// Force replaces an existing image at the path, unless it is open
	// (EBUSY): its meta.db lock is taken for the replacement.
	Force bool
}

// Create makes a new image directory at dir: a sparse data file of
// opts.Blocks blocks with the superblock in block 0, and a meta.db holding
// an empty root directory. An existing image is replaced only with Force;
// a path that holds anything else is never touched. meta.db is written
// under a temporary name and renamed last, so a crash during Create leaves
// no image that looks valid.
func Create(dir string, opts CreateOptions) (Superblock, error) {
	if opts.Blocks < 2 || opts.Blocks > maxBlocks {
		return Superblock{}, mkfsErr(dir, fmt.Errorf("size of %d blocks out of range [2, %d]: %w", opts.Blocks, int64(maxBlocks), syscall.EINVAL))
	}
	if u := opts.Incompat &^ knownIncompat; u != 0 {
		return Superblock{}, mkfsErr(dir, fmt.Errorf("unknown features %#x: %w", u, syscall.EINVAL))
	}
	if err := prepareDir(dir, opts.Force); err != nil {
		return Superblock{}, err
	}
	now := time.Now().UnixNano()
	sb, err := NewSuperblock(opts.Blocks, opts.Incompat, now)
	if err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	if err := writeData(filepath.Join(dir, DataFile), sb); err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	tmp := filepath.Join(dir, MetaFile+".new")
	os.Remove(tmp)
	if err := writeMeta(tmp, sb, now); err != nil {
		os.Remove(tmp)
		return Superblock{}, mkfsErr(dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, MetaFile)); err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	if err := syncDir(dir); err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	return sb, nil
}

// mkfsErr names the image in a Create error, the way os functions name
// their file.
func mkfsErr(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == dir {
		return err
	}
	return &fs.PathError{Op: "mkfs", Path: dir, Err: err}
}

// prepareDir makes dir, or checks that it may be (re)used: empty, or an
// image and force.
func prepareDir(dir string, force bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return mkfsErr(dir, err)
		}
		return nil
	}
	if err != nil {
		return mkfsErr(dir, err)
	}
	if !st.IsDir() {
		return mkfsErr(dir, fmt.Errorf("exists and is not a directory (an image is a directory): %w", syscall.ENOTDIR))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return mkfsErr(dir, err)
	}
	image := false
	for _, e := range ents {
		switch e.Name() {
		case DataFile, MetaFile, MetaFile + ".new":
			image = true
		default:
			return mkfsErr(dir, fmt.Errorf("directory holds %q, which is not part of an image; refusing to touch it: %w", e.Name(), syscall.ENOTEMPTY))
		}
	}
	if image && !force {
		return mkfsErr(dir, fmt.Errorf("an image exists there; use --force to replace it (its data is lost): %w", syscall.EEXIST))
	}
	if image {
		unlock, err := lockIdle(dir)
		if err != nil {
			return mkfsErr(dir, err)
		}
		defer unlock()
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return mkfsErr(dir, err)
		}
	}
	return nil
}

func writeData(path string, sb Superblock) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(sb.Blocks * BlockSize); err != nil {
		return err
	}
	if _, err := f.WriteAt(sb.Encode(), 0); err != nil {
		return err
	}
	return f.Sync()
}

func writeMeta(path string, sb Superblock, now int64) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		if sb.Incompat&IncompatDataChecksums != 0 {
			if _, err := tx.CreateBucket([]byte(bucketCsums)); err != nil {
				return err
			}
		}
		sup := tx.Bucket([]byte(bucketSuper))
		if err := sup.Put([]byte(keySB), sb.Encode()[:superblockSize]); err != nil {
			return err
		}
		if err := sup.Put([]byte(keyState), encodeState(state{})); err != nil {
			return err
		}
		w, err := newWriter(tx)
		if err != nil {
			return err
		}
		root := Inode{Ino: RootIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2,
			Atime: now, Mtime: now, Ctime: now}
		if err := w.putInode(root); err != nil {
			return err
		}
		w.st.Inodes = 1
		return w.finish()
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Image is an open image: its superblock and meta.db. The data file is
// opened by the caller as a block device of SB.Blocks blocks.
type Image struct {
	Dir string
	SB  Superblock
	db  *bbolt.DB
}

// OpenOptions configure Open.
type OpenOptions struct {
	// ReadOnly opens meta.db shared and read-only (fsck without repair).
	ReadOnly bool
	// Wait is how long to wait for another process to close the image;
	// default 100 ms, after which Open fails with EBUSY.
	Wait time.Duration
}

// Open opens the image at dir and checks its superblocks. It locks meta.db
// (shared when read-only): a second writer gets EBUSY.
func Open(dir string, opts OpenOptions) (*Image, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, openErr(dir, err)
	}
	if !st.IsDir() {
		return nil, openErr(dir, fmt.Errorf("not a directory (create an image with holefs mkfs): %w", syscall.ENOTDIR))
	}
	dataSB, err := readSuperblock(filepath.Join(dir, DataFile))
	if err != nil {
		return nil, openErr(dir, err)
	}
	metaPath := filepath.Join(dir, MetaFile)
	if _, err := os.Stat(metaPath); err != nil {
		return nil, openErr(dir, err)
	}
	if opts.Wait <= 0 {
		opts.Wait = 100 * time.Millisecond
	}
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	db, err := bbolt.Open(metaPath, 0o600, &bbolt.Options{Timeout: opts.Wait, ReadOnly: opts.ReadOnly,
		OpenFile:       func(p string, _ int, m os.FileMode) (*os.File, error) { return os.OpenFile(p, flag, m) },
		NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, openErr(dir, fmt.Errorf("in use by another process (close it, or unmount it, first): %w", syscall.EBUSY))
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return nil, openErr(dir, fmt.Errorf("%s: %w", MetaFile, err))
		}
		return nil, openErr(dir, fmt.Errorf("%s: %v: %w", MetaFile, err, syscall.EUCLEAN))
	}
	img := &Image{Dir: dir, SB: dataSB, db: db}
	if err := img.checkSuperblockCopy(); err != nil {
		db.Close()
		return nil, openErr(dir, err)
	}
	return img, nil
}

// openErr names the image in an Open error, the way os.Open names its file.
func openErr(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == dir {
		return err
	}
	return &fs.PathError{Op: "open image", Path: dir, Err: err}
}

func readSuperblock(path string) (Superblock, error) {
	f, err := os.Open(path)
	if err != nil {
		return Superblock{}, err
	}
	defer f.Close()
	b := make([]byte, BlockSize)
	n, err := f.ReadAt(b, 0)
	if n < superblockSize {
		if err == nil {
			err = errors.New("short read")
		}
		return Superblock{}, corrupt("%s: cannot read the superblock (%v)", DataFile, err)
	}
	sb, err := DecodeSuperblock(b)
	if err != nil {
		return Superblock{}, fmt.Errorf("%s: %w", DataFile, err)
	}
	st, err := f.Stat()
	if err != nil {
		return Superblock{}, err
	}
	if st.Size() < sb.Blocks*BlockSize {
		return Superblock{}, corrupt("%s: %d bytes, the superblock says %d blocks (%d bytes): truncated", DataFile, st.Size(), sb.Blocks, sb.Blocks*BlockSize)
	}
	return sb, nil
}

func (img *Image) checkSuperblockCopy() error {
	return img.db.View(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if tx.Bucket([]byte(b)) == nil {
				return corrupt("%s: bucket %q is missing", MetaFile, b)
			}
		}
		v := tx.Bucket([]byte(bucketSuper)).Get([]byte(keySB))
		sb, err := DecodeSuperblock(v)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaFile, err)
		}
		if !bytes.Equal(sb.Encode(), img.SB.Encode()) {
			return corrupt("%s belongs to image %x, %s to image %x: the files of two images are mixed", MetaFile, sb.UUID, DataFile, img.SB.UUID)
		}
		return nil
	})
}

// Checksum returns the committed checksum of a data block, on an image
// with data checksums.
func (img *Image) Checksum(block int64) (uint32, bool) {
	var c uint32
	ok := false
	_ = img.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketCsums))
		if b == nil {
			return nil
		}
		k := be.AppendUint64(nil, uint64(block))
		v, err := unseal("checksum of block "+itoa(block), k, b.Get(k))
		if err == nil && len(v) == 4 {
			c, ok = be.Uint32(v), true
		}
		return nil
	})
	return c, ok
}

// Close closes meta.db and releases its lock.
func (img *Image) Close() error {
	if img.db == nil {
		return nil
	}
	err := img.db.Close()
	img.db = nil
	return err
}

// DataPath returns the path of the image's data file.
func (img *Image) DataPath() string { return filepath.Join(img.Dir, DataFile) }
