package meta

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"syscall"
)

// Inode is an inode record.
type Inode struct {
	Ino    uint64
	Mode   uint32 // file type and permission bits, as st_mode
	UID    uint32
	GID    uint32
	Nlink  uint32
	Size   int64
	Atime  int64 // Unix nanoseconds
	Mtime  int64
	Ctime  int64
	Target string // symlink target
	Rdev   uint64 // device number of a character or block device (unix.Mkdev)
	// IBlock is i_block[15] of a regular file on an ext2 image: twelve
	// direct block pointers and the single-, double- and triple-indirect
	// blocks; all zero elsewhere.
	IBlock [NRoots]uint32
}

// NRoots is the number of block pointers of Inode.IBlock (EXT2_N_BLOCKS).
const NRoots = 15

// Static is the part of an inode that changes under the namespace lock and
// reaches the journal as a log record.
type Static struct {
	Ino    uint64
	Mode   uint32
	UID    uint32
	GID    uint32
	Nlink  uint32
	Target string
	Rdev   uint64
}

// Dynamic is the part of an inode read from the running filesystem at
// commit time.
type Dynamic struct {
	Size                int64
	Atime, Mtime, Ctime int64
	IBlock              [NRoots]uint32 // ext2 images: the block map roots as last written to the device
}

// Extent is a run of file pages stored in device blocks.
type Extent struct {
	Page      int64 // first file page
	Count     int64 // pages, > 0
	Block     int64 // device block of Page
	Unwritten bool  // allocated, no data yet: reads as zeros
}

// Limits of the format.
const (
	// MaxNameLen is the longest directory entry name (NAME_MAX).
	MaxNameLen = 255
	// MaxTargetLen is the longest symlink target (PATH_MAX - 1).
	MaxTargetLen = 4095
	// MaxFileSize is the largest file size (4 TiB) this format stores.
	MaxFileSize = int64(1) << 42
	maxPages    = MaxFileSize / BlockSize
)

// Type bits of Inode.Mode that a record may carry. The special files
// (FIFOs, sockets, devices) are on images with IncompatSpecialFiles.
const (
	modeDir  = syscall.S_IFDIR
	modeReg  = syscall.S_IFREG
	modeLink = syscall.S_IFLNK
	modeFIFO = syscall.S_IFIFO
	modeSock = syscall.S_IFSOCK
	modeChr  = syscall.S_IFCHR
	modeBlk  = syscall.S_IFBLK
)

var be = binary.BigEndian

func inoKey(ino uint64) []byte {
	k := make([]byte, 8)
	be.PutUint64(k, ino)
	return k
}

// sealed appends the CRC-32C of key and value to value.
func sealed(key, value []byte) []byte {
	c := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
	return be.AppendUint32(value, c)
}

// unseal checks and strips the CRC of a value.
func unseal(what string, key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, corrupt("%s: record of %d bytes, too short for its checksum", what, len(v))
	}
	body := v[:len(v)-4]
	c := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
	if got := be.Uint32(v[len(v)-4:]); got != c {
		return nil, corrupt("%s: checksum %08x, computed %08x", what, got, c)
	}
	return body, nil
}

const inodeFixed = 1 + 4*4 + 8*4 + 2

// encodeInode returns the bucket key and sealed value of an inode record.
// Version 1 is the fixed fields and the symlink target; version 2, written
// only for a device number other than 0, appends the device number, so
// that every other record stays as version 1 wrote it. Version 3, written
// only for a regular file with a block pointer in IBlock (ext2 images),
// appends the 15 pointers instead.
func encodeInode(in Inode) (key, value []byte) {
	key = inoKey(in.Ino)
	v := make([]byte, 0, inodeFixed+len(in.Target)+4*NRoots+4)
	version := byte(1)
	switch {
	case in.Rdev != 0:
		version = 2
	case in.IBlock != [NRoots]uint32{}:
		version = 3
	}
	v = append(v, version)
	v = be.AppendUint32(v, in.Mode)
	v = be.AppendUint32(v, in.UID)
	v = be.AppendUint32(v, in.GID)
	v = be.AppendUint32(v, in.Nlink)
	v = be.AppendUint64(v, uint64(in.Size))
	v = be.AppendUint64(v, uint64(in.Atime))
	v = be.AppendUint64(v, uint64(in.Mtime))
	v = be.AppendUint64(v, uint64(in.Ctime))
	v = be.AppendUint16(v, uint16(len(in.Target)))
	v = append(v, in.Target...)
	switch version {
	case 2:
		v = be.AppendUint64(v, in.Rdev)
	case 3:
		for _, b := range in.IBlock {
			v = be.AppendUint32(v, b)
		}
	}
	return key, sealed(key, v)
}

// DecodeInode parses an inode record and checks its fields.
func DecodeInode(key, value []byte) (Inode, error) {
	if len(key) != 8 {
		return Inode{}, corrupt("inode key %x: %d bytes, want 8", key, len(key))
	}
	ino := be.Uint64(key)
	what := "inode " + utoa(ino)
	if ino == 0 {
		return Inode{}, corrupt("%s: inode number 0 is invalid", what)
	}
	v, err := unseal(what, key, value)
	if err != nil {
		return Inode{}, err
	}
	if len(v) < inodeFixed {
		return Inode{}, corrupt("%s: record of %d bytes, want at least %d", what, len(v), inodeFixed)
	}
	rdevLen := 0
	switch v[0] {
	case 1:
	case 2:
		rdevLen = 8
	case 3:
		rdevLen = 4 * NRoots
	default:
		return Inode{}, corrupt("%s: record version %d, want 1, 2 or 3", what, v[0])
	}
	in := Inode{
		Ino:   ino,
		Mode:  be.Uint32(v[1:]),
		UID:   be.Uint32(v[5:]),
		GID:   be.Uint32(v[9:]),
		Nlink: be.Uint32(v[13:]),
		Size:  int64(be.Uint64(v[17:])),
		Atime: int64(be.Uint64(v[25:])),
		Mtime: int64(be.Uint64(v[33:])),
		Ctime: int64(be.Uint64(v[41:])),
	}
	n := int(be.Uint16(v[49:]))
	if len(v) != inodeFixed+n+rdevLen {
		return Inode{}, corrupt("%s: symlink target of %d bytes in a version %d record of %d", what, n, v[0], len(v))
	}
	in.Target = string(v[inodeFixed : inodeFixed+n])
	switch v[0] {
	case 2:
		// Version 2 exists for a device number: one of 0 is written as
		// version 1, and a record has one encoding.
		if in.Rdev = be.Uint64(v[inodeFixed+n:]); in.Rdev == 0 {
			return Inode{}, corrupt("%s: version 2 record with device number 0", what)
		}
	case 3:
		// Likewise version 3 exists for a block map: a regular file's,
		// with at least one pointer.
		for i := range in.IBlock {
			in.IBlock[i] = be.Uint32(v[inodeFixed+n+4*i:])
		}
		if in.Mode&syscall.S_IFMT != modeReg {
			return Inode{}, corrupt("%s: a %s with block pointers", what, typeName(in.Mode))
		}
		if in.IBlock == [NRoots]uint32{} {
			return Inode{}, corrupt("%s: version 3 record with no block pointer", what)
		}
	}
	switch in.Mode & syscall.S_IFMT {
	case modeDir, modeReg, modeFIFO, modeSock, modeChr, modeBlk:
		if n != 0 {
			return Inode{}, corrupt("%s: a %s with a symlink target", what, typeName(in.Mode))
		}
	case modeLink:
		if n == 0 || n > MaxTargetLen {
			return Inode{}, corrupt("%s: symlink target of %d bytes", what, n)
		}
	default:
		return Inode{}, corrupt("%s: unknown file type %#o", what, in.Mode&syscall.S_IFMT)
	}
	if in.Mode&^(syscall.S_IFMT|0o7777) != 0 {
		return Inode{}, corrupt("%s: mode %#o has unknown bits", what, in.Mode)
	}
	if in.Size < 0 || in.Size > MaxFileSize {
		return Inode{}, corrupt("%s: size %d out of range", what, in.Size)
	}
	return in, nil
}

func typeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case modeDir:
		return "directory"
	case modeReg:
		return "regular file"
	case modeLink:
		return "symlink"
	case modeFIFO:
		return "FIFO"
	case modeSock:
		return "socket"
	case modeChr:
		return "character device"
	case modeBlk:
		return "block device"
	}
	return "file of unknown type"
}

func direntKey(dir uint64, name string) []byte {
	k := make([]byte, 8, 8+len(name))
	be.PutUint64(k, dir)
	return append(k, name...)
}

func encodeDirent(dir uint64, name string, ino uint64) (key, value []byte) {
	key = direntKey(dir, name)
	return key, sealed(key, be.AppendUint64(nil, ino))
}

// Dirent is a directory entry record.
type Dirent struct {
	Dir  uint64
	Name string
	Ino  uint64
}

// DecodeDirent parses a directory entry record.
func DecodeDirent(key, value []byte) (Dirent, error) {
	if len(key) < 9 {
		return Dirent{}, corrupt("dirent key %x: %d bytes, want a directory and a name", key, len(key))
	}
	d := Dirent{Dir: be.Uint64(key), Name: string(key[8:])}
	what := "dirent " + utoa(d.Dir) + "/" + quote(d.Name)
	if d.Dir == 0 {
		return Dirent{}, corrupt("%s: directory inode 0 is invalid", what)
	}
	if err := CheckName(d.Name); err != nil {
		return Dirent{}, corrupt("%s: %v", what, err)
	}
	v, err := unseal(what, key, value)
	if err != nil {
		return Dirent{}, err
	}
	if len(v) != 8 {
		return Dirent{}, corrupt("%s: value of %d bytes, want 8", what, len(v))
	}
	d.Ino = be.Uint64(v)
	if d.Ino == 0 {
		return Dirent{}, corrupt("%s: names inode 0", what)
	}
	return d, nil
}

// CheckName reports whether name can be a directory entry.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > MaxNameLen {
		return errName(name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return errName(name)
		}
	}
	return nil
}

type errName string

func (e errName) Error() string { return "invalid name " + quote(string(e)) }

func extentKey(ino uint64, page int64) []byte {
	k := make([]byte, 16)
	be.PutUint64(k, ino)
	be.PutUint64(k[8:], uint64(page))
	return k
}

func encodeExtent(ino uint64, x Extent) (key, value []byte) {
	key = extentKey(ino, x.Page)
	v := make([]byte, 0, 17+4)
	v = be.AppendUint64(v, uint64(x.Count))
	v = be.AppendUint64(v, uint64(x.Block))
	flags := byte(0)
	if x.Unwritten {
		flags = 1
	}
	v = append(v, flags)
	return key, sealed(key, v)
}

// DecodeExtent parses an extent record and returns its inode and extent.
// It checks the extent against a device of nblocks blocks.
func DecodeExtent(key, value []byte, nblocks int64) (uint64, Extent, error) {
	if len(key) != 16 {
		return 0, Extent{}, corrupt("extent key %x: %d bytes, want 16", key, len(key))
	}
	ino := be.Uint64(key)
	x := Extent{Page: int64(be.Uint64(key[8:]))}
	what := "inode " + utoa(ino) + " extent at page " + itoa(x.Page)
	if ino == 0 {
		return 0, Extent{}, corrupt("%s: inode number 0 is invalid", what)
	}
	v, err := unseal(what, key, value)
	if err != nil {
		return 0, Extent{}, err
	}
	if len(v) != 17 {
		return 0, Extent{}, corrupt("%s: value of %d bytes, want 17", what, len(v))
	}
	x.Count = int64(be.Uint64(v))
	x.Block = int64(be.Uint64(v[8:]))
	switch v[16] {
	case 0:
	case 1:
		x.Unwritten = true
	default:
		return 0, Extent{}, corrupt("%s: unknown flags %#x", what, v[16])
	}
	if x.Page < 0 || x.Count <= 0 || x.Count > maxPages || x.Page > maxPages-x.Count {
		return 0, Extent{}, corrupt("%s: pages [%d, +%d) outside a file", what, x.Page, x.Count)
	}
	if x.Block < 1 || x.Block > math.MaxInt64-x.Count || x.Block+x.Count > nblocks {
		return 0, Extent{}, corrupt("%s: blocks [%d, +%d) outside the device's data blocks [1, %d)", what, x.Block, x.Count, nblocks)
	}
	return ino, x, nil
}

func xattrKey(ino uint64, name string) []byte { return direntKey(ino, name) }

// Xattr is an extended attribute record.
type Xattr struct {
	Ino   uint64
	Name  string
	Value []byte
}

// DecodeXattr parses an extended attribute record.
func DecodeXattr(key, value []byte) (Xattr, error) {
	if len(key) < 9 {
		return Xattr{}, corrupt("xattr key %x: %d bytes, want an inode and a name", key, len(key))
	}
	x := Xattr{Ino: be.Uint64(key), Name: string(key[8:])}
	what := "inode " + utoa(x.Ino) + " xattr " + quote(x.Name)
	if x.Ino == 0 {
		return Xattr{}, corrupt("%s: inode number 0 is invalid", what)
	}
	v, err := unseal(what, key, value)
	if err != nil {
		return Xattr{}, err
	}
	x.Value = append([]byte(nil), v...)
	return x, nil
}

// state is the commit record.
type state struct {
	Seq    uint64 // commits since mkfs
	Owned  int64  // blocks owned by extents
	Inodes int64  // inode records
}

func encodeState(s state) []byte {
	k := []byte(keyState)
	v := be.AppendUint64(nil, s.Seq)
	v = be.AppendUint64(v, uint64(s.Owned))
	v = be.AppendUint64(v, uint64(s.Inodes))
	return sealed(k, v)
}

func decodeState(value []byte) (state, error) {
	v, err := unseal("state record", []byte(keyState), value)
	if err != nil {
		return state{}, err
	}
	if len(v) != 24 {
		return state{}, corrupt("state record: %d bytes, want 24", len(v))
	}
	s := state{Seq: be.Uint64(v), Owned: int64(be.Uint64(v[8:])), Inodes: int64(be.Uint64(v[16:]))}
	if s.Owned < 0 || s.Inodes < 0 {
		return state{}, corrupt("state record: negative counts (%d blocks, %d inodes)", s.Owned, s.Inodes)
	}
	return s, nil
}
