package meta

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// Snapshot is the durable state of an image, as read by Load.
type Snapshot struct {
	Inodes  map[uint64]Inode
	Dirents []Dirent            // in key order: by directory, then name
	Extents map[uint64][]Extent // by inode, in page order
	Xattrs  []Xattr             // in key order
	Seq     uint64              // commits since mkfs
	Owned   int64               // blocks owned by extents, as the state record says
	NInodes int64               // inode records, as the state record says
}

// Problem is a damaged record found by Load.
type Problem struct {
	Bucket string
	Key    []byte
	Err    error
}

func (p Problem) Error() string { return fmt.Sprintf("%s: %v", p.Bucket, p.Err) }

// Load reads every record of the image. A record that fails to decode is
// skipped and passed to bad, if set; otherwise Load stops at the first one
// with its error. Load checks each record alone; fsck checks how they fit
// together.
func (img *Image) Load(bad func(Problem)) (*Snapshot, error) {
	s := &Snapshot{Inodes: map[uint64]Inode{}, Extents: map[uint64][]Extent{}}
	err := safely("load", func() error {
		return img.db.View(func(tx *bbolt.Tx) error {
			report := func(bucket string, k []byte, err error) error {
				if bad == nil {
					return err
				}
				bad(Problem{Bucket: bucket, Key: append([]byte(nil), k...), Err: err})
				return nil
			}
			st, err := decodeState(tx.Bucket([]byte(bucketSuper)).Get([]byte(keyState)))
			if err != nil {
				if err := report(bucketSuper, []byte(keyState), err); err != nil {
					return err
				}
			}
			s.Seq, s.Owned, s.NInodes = st.Seq, st.Owned, st.Inodes
			err = tx.Bucket([]byte(bucketInodes)).ForEach(func(k, v []byte) error {
				in, err := DecodeInode(k, v)
				if err == nil {
					err = img.checkIBlock(in)
				}
				if err != nil {
					return report(bucketInodes, k, err)
				}
				s.Inodes[in.Ino] = in
				return nil
			})
			if err != nil {
				return err
			}
			err = tx.Bucket([]byte(bucketDirents)).ForEach(func(k, v []byte) error {
				d, err := DecodeDirent(k, v)
				if err != nil {
					return report(bucketDirents, k, err)
				}
				s.Dirents = append(s.Dirents, d)
				return nil
			})
			if err != nil {
				return err
			}
			err = tx.Bucket([]byte(bucketExtents)).ForEach(func(k, v []byte) error {
				ino, x, err := DecodeExtent(k, v, img.SB.Blocks)
				if err == nil && img.SB.Incompat&IncompatExt2 != 0 {
					err = corrupt("inode %d extent at page %d: an ext2 image has no extents", ino, x.Page)
				}
				if err != nil {
					return report(bucketExtents, k, err)
				}
				s.Extents[ino] = append(s.Extents[ino], x)
				return nil
			})
			if err != nil {
				return err
			}
			return tx.Bucket([]byte(bucketXattrs)).ForEach(func(k, v []byte) error {
				x, err := DecodeXattr(k, v)
				if err != nil {
					return report(bucketXattrs, k, err)
				}
				s.Xattrs = append(s.Xattrs, x)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", img.Dir, err)
	}
	return s, nil
}

// checkIBlock checks that only an ext2 image has block pointers. Where
// they point is fsck's to check (CheckOptions.BlockMaps), which can clear
// one bad pointer instead of dropping the whole record.
func (img *Image) checkIBlock(in Inode) error {
	if in.IBlock != [NRoots]uint32{} && img.SB.Incompat&IncompatExt2 == 0 {
		return corrupt("inode %d: block pointers on an image without the ext2 feature", in.Ino)
	}
	return nil
}
