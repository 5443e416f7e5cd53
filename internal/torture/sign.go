package torture

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// BlockSize is the unit the torture writes, reads and verifies: one page
// and one device block.
const BlockSize = 4096

// Layout of a signed block (little endian):
//
//	[0:4)    magic "hfsT"
//	[4:8)    CRC-32C of bytes [8:4096)
//	[8:16)   file id (the torture's, not the inode number)
//	[16:24)  block offset in the file the data was written for
//	[24:32)  generation: the start sequence number of the write
//	[32:4096) payload: a pseudo-random stream seeded by the three fields
//
// A block of all zeros is a hole. Anything else that fails the magic or the
// checksum is corrupt: a torn block (half of one write, half of another or
// of zeros) fails the checksum because the payloads differ.
const hdrSize = 32

var (
	magic      = [4]byte{'h', 'f', 's', 'T'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zeroBlock  [BlockSize]byte
)

// Sig is what a signed block says about itself.
type Sig struct {
	File uint64 // torture file id
	Off  int64  // block offset it was written for
	Gen  uint64 // generation (start sequence number of the writing op)
}

// BlockState classifies a block read back.
type BlockState uint8

const (
	// BlockZero is a block of zeros: a hole, an unwritten extent, data
	// removed by a punch.
	BlockZero BlockState = iota
	// BlockSigned is a block whose magic and checksum verify.
	BlockSigned
	// BlockCorrupt is anything else: torn, partly zeroed, garbage.
	BlockCorrupt
)

func (s BlockState) String() string {
	switch s {
	case BlockZero:
		return "zero"
	case BlockSigned:
		return "signed"
	}
	return "corrupt"
}

// SignBlock fills b (BlockSize bytes) with a block signed s.
func SignBlock(b []byte, s Sig) {
	_ = b[BlockSize-1]
	copy(b[0:4], magic[:])
	binary.LittleEndian.PutUint64(b[8:], s.File)
	binary.LittleEndian.PutUint64(b[16:], uint64(s.Off))
	binary.LittleEndian.PutUint64(b[24:], s.Gen)
	x := s.File*0x9E3779B97F4A7C15 ^ uint64(s.Off)*0xBF58476D1CE4E5B9 ^ s.Gen*0x94D049BB133111EB
	for i := hdrSize; i < BlockSize; i += 8 {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		binary.LittleEndian.PutUint64(b[i:], z^z>>31)
	}
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:BlockSize], castagnoli))
}

// ParseBlock classifies b (BlockSize bytes) and, if it is signed, returns
// its signature.
func ParseBlock(b []byte) (Sig, BlockState) {
	_ = b[BlockSize-1]
	if bytes.Equal(b[:BlockSize], zeroBlock[:]) {
		return Sig{}, BlockZero
	}
	if !bytes.Equal(b[0:4], magic[:]) ||
		binary.LittleEndian.Uint32(b[4:]) != crc32.Checksum(b[8:BlockSize], castagnoli) {
		return Sig{}, BlockCorrupt
	}
	return Sig{
		File: binary.LittleEndian.Uint64(b[8:]),
		Off:  int64(binary.LittleEndian.Uint64(b[16:])),
		Gen:  binary.LittleEndian.Uint64(b[24:]),
	}, BlockSigned
}
