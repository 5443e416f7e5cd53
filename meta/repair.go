package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// errChanged fails a Repair whose image was committed to after it read
// the records.
var errChanged = fmt.Errorf("meta: the image changed while fsck checked it (is it in use?): %w", syscall.EAGAIN)

// commit writes the model's changes in one transaction: the damaged
// records (the state record among them) go first, so that a record fsck
// rewrites under the same key survives.
func (c *fsck) commit() error {
	c.progress("commit", 0, 0)
	if c.img.SB.Compat&CompatCommitSeq != 0 {
		// Ahead of the transaction, as every commit does (see detectRollback).
		if err := c.img.writeRecord(c.seq + 1); err != nil {
			return fmt.Errorf("fsck %s: commit: write the commit record: %w", c.img.Dir, err)
		}
	}
	err := c.img.db.Update(func(tx *bbolt.Tx) error {
		bucket := func(name string) *bbolt.Bucket { return tx.Bucket([]byte(name)) }
		super := bucket(bucketSuper)
		if !bytes.Equal(super.Get([]byte(keyState)), c.stateRaw) {
			return errChanged
		}
		for _, p := range c.bad {
			if err := deleteKey(bucket(p.Bucket), p.Key); err != nil {
				return err
			}
		}
		inodes, extents, xattrs, dirents := bucket(bucketInodes), bucket(bucketExtents), bucket(bucketXattrs), bucket(bucketDirents)
		for _, ino := range slices.Sorted(maps.Keys(c.dirtyInodes)) {
			in, ok := c.inodes[ino]
			var err error
			if ok {
				err = inodes.Put(encodeInode(in))
			} else {
				err = inodes.Delete(inoKey(ino))
			}
			if err != nil {
				return err
			}
		}
		for _, ino := range slices.Sorted(maps.Keys(c.dirtyExtents)) {
			if err := deletePrefix(extents, inoKey(ino)); err != nil {
				return err
			}
			for _, x := range c.extents[ino] {
				if err := extents.Put(encodeExtent(ino, x)); err != nil {
					return err
				}
			}
		}
		for _, ino := range slices.Sorted(maps.Keys(c.dirtyXattrs)) {
			if err := deletePrefix(xattrs, inoKey(ino)); err != nil {
				return err
			}
			for _, x := range c.xattrs[ino] {
				k := xattrKey(ino, x.Name)
				if err := xattrs.Put(k, sealed(k, x.Value)); err != nil {
					return err
				}
			}
		}
		for ref := range c.dirtyDirents {
			ino, ok := c.dirs[ref.dir][ref.name]
			var err error
			if ok {
				err = dirents.Put(encodeDirent(ref.dir, ref.name, ino))
			} else {
				err = dirents.Delete(direntKey(ref.dir, ref.name))
			}
			if err != nil {
				return err
			}
		}
		return super.Put([]byte(keyState), encodeState(state{Seq: c.seq + 1, Owned: c.rep.Owned - c.mapOwned, Inodes: c.rep.Inodes}))
	})
	if err != nil {
		if errors.Is(err, errChanged) {
			return err
		}
		return fmt.Errorf("fsck %s: commit: %w", c.img.Dir, ioErr(err))
	}
	c.img.seq, c.img.seqErr = c.seq+1, nil
	c.img.rec, c.img.recErr = c.seq+1, nil
	return c.img.refreshStore()
}

// deleteKey deletes a record, or a nested bucket where a record belongs.
func deleteKey(b *bbolt.Bucket, k []byte) error {
	if b.Bucket(k) != nil {
		return b.DeleteBucket(k)
	}
	return b.Delete(k)
}

// Precheck verifies what Open requires of the image at dir: block 0 of
// the data file and meta.db's copy of the superblock decode and agree,
// the data file is as long as they say, and meta.db has its buckets. With
// repair it fixes what it can tell how to: a damaged copy is rewritten
// from the valid one, a short data file is extended (sparse: the missing
// blocks read as zeros), missing buckets are made empty (Repair then
// rebuilds what it can). Copies that are both valid but disagree cannot
// be told apart; they are reported and left. Run it when Open fails with
// EUCLEAN.
//
// An error means no check or repair was possible: the image is in use
// (EBUSY), a copy needs a newer holefs (EOPNOTSUPP), neither copy is
// valid (EUCLEAN: not an image, or both damaged), or a file cannot be
// read or extended (EFBIG: the filesystem holding the image cannot hold
// the size the superblock says).
func Precheck(dir string, repair bool) ([]Finding, error) {
	perr := func(err error) error { return &fs.PathError{Op: "fsck", Path: dir, Err: err} }
	flag := os.O_RDONLY
	if repair {
		flag = os.O_RDWR
	}
	df, err := os.OpenFile(filepath.Join(dir, DataFile), flag, 0)
	if err != nil {
		return nil, perr(err)
	}
	defer df.Close()
	block := make([]byte, BlockSize)
	n, err := df.ReadAt(block, 0)
	if err != nil && err != io.EOF {
		return nil, perr(err)
	}
	dsb, derr := DecodeSuperblock(block[:n])
	st, err := df.Stat()
	if err != nil {
		return nil, perr(err)
	}

	var found []Finding
	report := func(kind Kind, problem, fix string) {
		found = append(found, Finding{Severity: Error, Kind: kind, Page: -1, Problem: problem, Fix: fix})
	}
	metaPath := filepath.Join(dir, MetaFile)
	if _, err := lockedCheckStore(metaPath, !repair, 100*time.Millisecond); err != nil {
		if !errors.Is(err, syscall.EUCLEAN) {
			return nil, perr(err)
		}
		// bbolt cannot read such a meta.db safely, and fsck repairs
		// through bbolt.
		report(KindStore, strings.TrimSuffix(err.Error(), ": "+syscall.EUCLEAN.Error()), "")
		return found, nil
	}
	db, err := openDB(metaPath, !repair)
	if err != nil {
		return nil, perr(err)
	}
	defer db.Close()
	var msb Superblock
	var merr error
	var missing []string
	var seq uint64
	err = db.View(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if tx.Bucket([]byte(b)) == nil {
				missing = append(missing, b)
			}
		}
		if sup := tx.Bucket([]byte(bucketSuper)); sup != nil {
			msb, merr = DecodeSuperblock(sup.Get([]byte(keySB)))
			if st, err := decodeState(sup.Get([]byte(keyState))); err == nil {
				seq = st.Seq
			}
		} else {
			merr = corrupt("superblock: no copy (bucket %q is missing)", bucketSuper)
		}
		return nil
	})
	if err != nil {
		return nil, perr(ioErr(err))
	}

	for _, e := range []error{derr, merr} {
		if errors.Is(e, syscall.EOPNOTSUPP) {
			return nil, perr(e)
		}
	}
	good, writeData, writeMeta := dsb, false, false
	switch {
	case derr != nil && merr != nil:
		return nil, perr(fmt.Errorf("neither superblock copy is valid (not a holefs image, or both are damaged): %s block 0: %v; %s copy: %w", DataFile, derr, MetaFile, merr))
	case derr != nil:
		good, writeData = msb, true
		report(KindSuperblock, DataFile+" block 0: "+derr.Error(), "rewrite it from "+MetaFile+"'s copy")
	case merr != nil:
		writeMeta = true
		report(KindSuperblock, MetaFile+" copy: "+merr.Error(), "rewrite it from "+DataFile+" block 0")
	case dsb != msb:
		report(KindSuperblock, fmt.Sprintf("the copies disagree (fsck cannot tell which is right): %s block 0: %v; %s copy: %v", DataFile, dsb, MetaFile, msb), "")
	}
	size := good.Blocks * BlockSize
	extend := st.Size() < size && (derr != nil || merr != nil || dsb == msb)
	if extend {
		report(KindSuperblock, fmt.Sprintf("%s is %d bytes, the superblock says %d blocks (%d bytes)", DataFile, st.Size(), good.Blocks, size),
			fmt.Sprintf("extend it, sparse: bytes from %d on read as zeros", st.Size()))
	}
	if len(missing) > 0 {
		report(KindStore, fmt.Sprintf("%s: buckets %q missing", MetaFile, missing), "create them empty")
	}
	if !repair {
		return found, nil
	}
	if writeData || extend {
		// Extend first: where the filesystem cannot hold the size
		// (EFBIG), block 0 stays as it was.
		if extend {
			if err := df.Truncate(size); err != nil {
				return found, perr(err)
			}
		}
		if writeData {
			// The superblock is rewritten, the commit record kept if
			// it is intact: it may be the one witness of a rollback.
			// A damaged record gets meta.db's sequence, for want of a
			// better one.
			if rec, err := decodeCommitRecord(block[:n]); err == nil {
				seq = rec
			}
			if _, err := df.WriteAt(good.block0(seq), 0); err != nil {
				return found, perr(err)
			}
		}
		if err := df.Sync(); err != nil {
			return found, perr(err)
		}
	}
	if writeMeta || len(missing) > 0 {
		err := db.Update(func(tx *bbolt.Tx) error {
			for _, b := range missing {
				if _, err := tx.CreateBucket([]byte(b)); err != nil {
					return err
				}
			}
			if !writeMeta {
				return nil
			}
			sup := tx.Bucket([]byte(bucketSuper))
			if err := deleteKey(sup, []byte(keySB)); err != nil {
				return err
			}
			return sup.Put([]byte(keySB), good.Encode()[:superblockSize])
		})
		if err != nil {
			return found, perr(ioErr(err))
		}
	}
	for i := range found {
		found[i].Fixed = found[i].Fix != ""
	}
	return found, nil
}

// openDB opens meta.db as Open does, for Precheck, which must get past
// what makes Open fail.
func openDB(path string, readOnly bool) (*bbolt.DB, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	var db *bbolt.DB
	err := safely("open", func() (err error) {
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond, ReadOnly: readOnly,
			OpenFile:       func(p string, _ int, m os.FileMode) (*os.File, error) { return os.OpenFile(p, flag, m) },
			NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
		return err
	})
	if err == nil {
		return db, nil
	}
	if errors.Is(err, syscall.EUCLEAN) {
		return nil, err
	}
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, errBusy(path)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return nil, fmt.Errorf("%s: %w", MetaFile, err)
	}
	return nil, fmt.Errorf("%s: %v: %w", MetaFile, err, syscall.EUCLEAN)
}
