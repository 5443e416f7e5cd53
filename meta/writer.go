package meta

import (
	"bytes"
	"errors"
	"syscall"

	"go.etcd.io/bbolt"
)

// writer applies a commit to a meta.db transaction.
type writer struct {
	inodes, dirents, extents, xattrs, super *bbolt.Bucket
	st                                      state
}

func newWriter(tx *bbolt.Tx) (*writer, error) {
	w := &writer{
		inodes:  tx.Bucket([]byte(bucketInodes)),
		dirents: tx.Bucket([]byte(bucketDirents)),
		extents: tx.Bucket([]byte(bucketExtents)),
		xattrs:  tx.Bucket([]byte(bucketXattrs)),
		super:   tx.Bucket([]byte(bucketSuper)),
	}
	if w.inodes == nil || w.dirents == nil || w.extents == nil || w.xattrs == nil || w.super == nil {
		return nil, corrupt("meta.db: a bucket is missing")
	}
	st, err := decodeState(w.super.Get([]byte(keyState)))
	if err != nil {
		return nil, err
	}
	w.st = st
	return w, nil
}

func (w *writer) finish() error {
	w.st.Seq++
	return w.super.Put([]byte(keyState), encodeState(w.st))
}

func (w *writer) getInode(ino uint64) (Inode, bool, error) {
	k := inoKey(ino)
	v := w.inodes.Get(k)
	if v == nil {
		return Inode{}, false, nil
	}
	in, err := DecodeInode(k, v)
	return in, err == nil, err
}

func (w *writer) putInode(in Inode) error {
	k, v := encodeInode(in)
	return w.inodes.Put(k, v)
}

func (w *writer) apply(r record) error {
	switch r.kind {
	case recInode:
		in, ok, err := w.getInode(r.static.Ino)
		if err != nil {
			return err
		}
		if !ok {
			w.st.Inodes++
			in = Inode{Ino: r.static.Ino}
		}
		s := r.static
		in.Mode, in.UID, in.GID, in.Nlink, in.Target, in.Rdev = s.Mode, s.UID, s.GID, s.Nlink, s.Target, s.Rdev
		return w.putInode(in)
	case recDirent:
		if r.ino == 0 {
			return w.dirents.Delete(direntKey(r.dir, r.name))
		}
		k, v := encodeDirent(r.dir, r.name, r.ino)
		return w.dirents.Put(k, v)
	case recDrop:
		return w.drop(r.dir)
	case recXattr:
		k := xattrKey(r.dir, r.name)
		if r.value == nil {
			return w.xattrs.Delete(k)
		}
		return w.xattrs.Put(k, sealed(k, r.value))
	}
	return errors.New("meta: unknown log record")
}

func (w *writer) drop(ino uint64) error {
	k := inoKey(ino)
	if w.inodes.Get(k) != nil {
		if err := w.inodes.Delete(k); err != nil {
			return err
		}
		w.st.Inodes--
	}
	if err := w.setExtents(ino, nil); err != nil {
		return err
	}
	return deletePrefix(w.xattrs, k)
}

// update writes an inode's snapshot, unless its record is gone (dropped in
// this commit, or its creation is in a later one).
func (w *writer) update(s snapshot) error {
	in, ok, err := w.getInode(s.ino)
	if err != nil || !ok {
		return err
	}
	in.Size, in.Atime, in.Mtime, in.Ctime = s.dyn.Size, s.dyn.Atime, s.dyn.Mtime, s.dyn.Ctime
	if isFile(in) {
		in.IBlock = s.dyn.IBlock
	}
	if err := w.putInode(in); err != nil {
		return err
	}
	if !s.hasExtents {
		return nil
	}
	return w.setExtents(s.ino, s.extents)
}

// setExtents replaces an inode's extent records, keeping the owned-block
// count of the state record exact.
func (w *writer) setExtents(ino uint64, xs []Extent) error {
	prefix := inoKey(ino)
	var keys [][]byte
	c := w.extents.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) >= 8 {
			w.st.Owned -= int64(be.Uint64(v))
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := w.extents.Delete(k); err != nil {
			return err
		}
	}
	for _, x := range xs {
		k, v := encodeExtent(ino, x)
		if err := w.extents.Put(k, v); err != nil {
			return err
		}
		w.st.Owned += x.Count
	}
	return nil
}

// putChecksums stores data block checksums (images with data checksums).
func (w *writer) putChecksums(tx *bbolt.Tx, sums map[int64]uint32) error {
	if len(sums) == 0 {
		return nil
	}
	b := tx.Bucket([]byte(bucketCsums))
	if b == nil {
		return corrupt("meta.db: bucket %q is missing", bucketCsums)
	}
	for block, c := range sums {
		k := be.AppendUint64(nil, uint64(block))
		if err := b.Put(k, sealed(k, be.AppendUint32(nil, c))); err != nil {
			return err
		}
	}
	return nil
}

func deletePrefix(b *bbolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ioErr keeps a syscall errno from below (ENOSPC, EIO) and calls anything
// else from the store EIO.
func ioErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return err
	}
	return errors.Join(err, syscall.EIO)
}
