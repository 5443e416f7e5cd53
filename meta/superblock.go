package meta

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"syscall"
)

// BlockSize is the only block size of this format version.
const BlockSize = 4096

// Version is the on-disk format version this package writes.
const Version = 1

// magic opens every superblock.
var magic = [8]byte{'h', 'o', 'l', 'e', 'f', 's', 0x1e, 0xf5}

// Feature flags. Compat features can be ignored by an older holefs; an
// unknown RO-compat feature forbids writing; an unknown incompat feature
// forbids mounting at all.
const (
	// IncompatDataChecksums: a CRC-32C of every written data block is kept
	// in meta.db and checked on read.
	IncompatDataChecksums uint64 = 1 << 0
	// IncompatReflink: written blocks may be mapped by several extents
	// (clones); a block's reference count is the number of extents that
	// map it, and no unwritten extent is shared.
	IncompatReflink uint64 = 1 << 1
	// IncompatSpecialFiles: inode records may be FIFOs, sockets and
	// character and block devices, whose records carry a device number
	// (record version 2); a holefs without it would call them damaged.
	IncompatSpecialFiles uint64 = 1 << 2
	// IncompatExt2: the image belongs to the ext2 backend. Regular files
	// have no extent records; their inode records carry i_block[15]
	// (record version 3) and their indirect blocks are on the data
	// device. A holefs without it would see every file empty.
	IncompatExt2 uint64 = 1 << 3
	// CompatCommitSeq: block 0 carries a commit record, the sequence
	// number of the latest meta.db commit, written ahead of each commit,
	// so that a meta.db that fell back to an older state is detected.
	CompatCommitSeq uint64 = 1 << 0

	// Compat features are never checked: a holefs that does not know
	// one may ignore it, which is what makes it compatible.
	knownROCompat uint64 = 0
	knownIncompat        = IncompatDataChecksums | IncompatReflink | IncompatSpecialFiles | IncompatExt2 | IncompatWAL
)

// superblockSize is the encoded size: the rest of block 0 is zero but for
// the commit record (commitRecordOff).
const superblockSize = 8 + 4 + 4 + 8 + 16 + 8*3 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Superblock describes an image.
type Superblock struct {
	Version   uint32
	BlockSize uint32
	Blocks    int64 // device size in blocks, block 0 included
	UUID      [16]byte
	Compat    uint64
	ROCompat  uint64
	Incompat  uint64
	Created   int64 // Unix nanoseconds
}

// NewSuperblock returns the superblock of a new image of nblocks blocks.
func NewSuperblock(nblocks int64, incompat uint64, created int64) (Superblock, error) {
	sb := Superblock{Version: Version, BlockSize: BlockSize, Blocks: nblocks, Incompat: incompat, Created: created}
	if _, err := rand.Read(sb.UUID[:]); err != nil {
		return Superblock{}, err
	}
	return sb, nil
}

// Encode returns the superblock as block 0: BlockSize bytes.
func (sb Superblock) Encode() []byte {
	b := make([]byte, BlockSize)
	copy(b, magic[:])
	be := binary.BigEndian
	be.PutUint32(b[8:], sb.Version)
	be.PutUint32(b[12:], sb.BlockSize)
	be.PutUint64(b[16:], uint64(sb.Blocks))
	copy(b[24:40], sb.UUID[:])
	be.PutUint64(b[40:], sb.Compat)
	be.PutUint64(b[48:], sb.ROCompat)
	be.PutUint64(b[56:], sb.Incompat)
	be.PutUint64(b[64:], uint64(sb.Created))
	be.PutUint32(b[72:], crc32.Checksum(b[:72], castagnoli))
	return b
}

// DecodeSuperblock parses and checks a superblock. Errors wrap EUCLEAN
// (damaged or not an image) or EOPNOTSUPP (a newer format or features this
// holefs does not know), and say which field is wrong.
func DecodeSuperblock(b []byte) (Superblock, error) {
	if len(b) < superblockSize {
		return Superblock{}, corrupt("superblock: %d bytes, want at least %d", len(b), superblockSize)
	}
	if !bytes.Equal(b[:8], magic[:]) {
		return Superblock{}, corrupt("superblock: bad magic %x: not a holefs image", b[:8])
	}
	be := binary.BigEndian
	if got, want := be.Uint32(b[72:]), crc32.Checksum(b[:72], castagnoli); got != want {
		return Superblock{}, corrupt("superblock: checksum %08x, computed %08x", got, want)
	}
	sb := Superblock{
		Version:   be.Uint32(b[8:]),
		BlockSize: be.Uint32(b[12:]),
		Blocks:    int64(be.Uint64(b[16:])),
		Compat:    be.Uint64(b[40:]),
		ROCompat:  be.Uint64(b[48:]),
		Incompat:  be.Uint64(b[56:]),
		Created:   int64(be.Uint64(b[64:])),
	}
	copy(sb.UUID[:], b[24:40])
	if sb.Version != Version {
		return Superblock{}, fmt.Errorf("superblock: format version %d, this holefs reads version %d: %w", sb.Version, Version, syscall.EOPNOTSUPP)
	}
	if sb.BlockSize != BlockSize {
		return Superblock{}, corrupt("superblock: block size %d, want %d", sb.BlockSize, BlockSize)
	}
	if sb.Blocks < 2 || sb.Blocks > maxBlocks {
		return Superblock{}, corrupt("superblock: device of %d blocks out of range [2, %d]", sb.Blocks, int64(maxBlocks))
	}
	if u := sb.Incompat &^ knownIncompat; u != 0 {
		return Superblock{}, fmt.Errorf("superblock: image uses incompatible features %#x this holefs does not know; use a newer holefs: %w", u, syscall.EOPNOTSUPP)
	}
	if u := sb.ROCompat &^ knownROCompat; u != 0 {
		return Superblock{}, fmt.Errorf("superblock: image uses features %#x this holefs cannot write; use a newer holefs: %w", u, syscall.EOPNOTSUPP)
	}
	return sb, nil
}

// maxBlocks bounds a device to 2^40 blocks (4 PiB), so byte offsets fit an
// int64 with room to spare.
const maxBlocks = 1 << 40

// String describes the superblock for humans (mkfs and fsck print it).
func (sb Superblock) String() string {
	return fmt.Sprintf("holefs v%d image, %d blocks of %d bytes (%d MiB), uuid %x, features compat=%#x ro_compat=%#x incompat=%#x",
		sb.Version, sb.Blocks, sb.BlockSize, sb.Blocks*int64(sb.BlockSize)>>20, sb.UUID, sb.Compat, sb.ROCompat, sb.Incompat)
}

// The commit record sits in block 0 at commitRecordOff, in the sector
// after the superblock's: a magic, the sequence number and a CRC-32C of
// both. Each commit rewrites the whole block, but the superblock's sector
// with the bytes it already holds, so a write torn between sectors leaves
// the superblock whole.
const (
	commitRecordOff  = 512
	commitRecordSize = 8 + 8 + 4
)

var commitMagic = [8]byte{'h', 'o', 'l', 'e', 'f', 's', 's', 'q'}

// block0 returns block 0 with the superblock and a commit record of seq.
func (sb Superblock) block0(seq uint64) []byte {
	b := sb.Encode()
	r := b[commitRecordOff:]
	copy(r, commitMagic[:])
	binary.BigEndian.PutUint64(r[8:], seq)
	binary.BigEndian.PutUint32(r[16:], crc32.Checksum(r[:16], castagnoli))
	return b
}

// decodeCommitRecord reads the commit record of block 0.
func decodeCommitRecord(block []byte) (uint64, error) {
	if len(block) < commitRecordOff+commitRecordSize {
		return 0, corrupt("%s: commit record: block 0 of %d bytes", DataFile, len(block))
	}
	r := block[commitRecordOff:]
	if !bytes.Equal(r[:8], commitMagic[:]) {
		return 0, corrupt("%s: commit record: bad magic %x", DataFile, r[:8])
	}
	be := binary.BigEndian
	if got, want := be.Uint32(r[16:]), crc32.Checksum(r[:16], castagnoli); got != want {
		return 0, corrupt("%s: commit record: checksum %08x, computed %08x", DataFile, got, want)
	}
	return be.Uint64(r[8:]), nil
}

// corrupt returns an EUCLEAN error ("structure needs cleaning", as ext4 and
// XFS report corrupt metadata).
// A byte-slice argument (a damaged key, whose length may be anything) is
// cut to its first 32 bytes: an error is one line of bounded length.
func corrupt(format string, args ...any) error {
	for i, a := range args {
		if b, ok := a.([]byte); ok && len(b) > 32 {
			args[i] = b[:32]
		}
	}
	return fmt.Errorf(format+": %w", append(args, syscall.EUCLEAN)...)
}
