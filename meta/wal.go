package meta

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// IncompatWAL: the image has a write-ahead log after its last data block
// (see the package documentation). A holefs without it would ignore the
// commits the log holds and not yet meta.db.
const IncompatWAL uint64 = 1 << 4

// DefaultWALBlocks is the log size mkfs gives an image: 4 MiB, two halves
// of 512 blocks. A 4 KiB write+fsync logs one block, so a half holds
// hundreds of commits between checkpoints.
const DefaultWALBlocks = 1024

// keyWAL, in the super bucket of a WAL image, holds the log's size in
// blocks; the log starts at block SB.Blocks of the data file.
const keyWAL = "wal"

// walMagic opens every log record.
var walMagic = [8]byte{'h', 'o', 'l', 'e', 'f', 's', 'w', 'l'}

// walHeader is a record's header: magic, commit sequence, payload length,
// CRC-32C of the image's UUID, the header's first 20 bytes and the
// payload. The UUID in the checksum keeps a log copied from another
// image from replaying here.
const walHeader = 8 + 8 + 4 + 4

// walRecord is one decoded log record: everything the meta.db
// transaction of its commit applies.
type walRecord struct {
	seq   uint64
	log   []record
	snaps []snapshot
	sums  map[int64]uint32
}

// walBlocksFor returns the blocks a record with a payload of n bytes takes.
func walBlocksFor(n int) int64 { return int64(walHeader+n+BlockSize-1) / BlockSize }

// encodeWAL frames a record for the log: block-aligned, zero-padded.
func encodeWAL(uuid [16]byte, r walRecord) []byte {
	p := encodeWALPayload(r)
	b := make([]byte, walBlocksFor(len(p))*BlockSize)
	copy(b, walMagic[:])
	be.PutUint64(b[8:], r.seq)
	be.PutUint32(b[16:], uint32(len(p)))
	copy(b[walHeader:], p)
	be.PutUint32(b[20:], walSum(uuid, b[:20], p))
	return b
}

func walSum(uuid [16]byte, hdr, payload []byte) uint32 {
	c := crc32.Checksum(uuid[:], castagnoli)
	c = crc32.Update(c, castagnoli, hdr)
	return crc32.Update(c, castagnoli, payload)
}

// walFrame reads the header at the start of b (the rest of the log from
// there): the record's sequence and its length in blocks, or an error
// saying why it is no record.
func walFrame(uuid [16]byte, b []byte) (seq uint64, blocks int64, payload []byte, err error) {
	if len(b) < walHeader {
		return 0, 0, nil, corrupt("log record: %d bytes", len(b))
	}
	if !bytes.Equal(b[:8], walMagic[:]) {
		return 0, 0, nil, corrupt("log record: bad magic %x", b[:8])
	}
	n := int64(be.Uint32(b[16:]))
	blocks = walBlocksFor(int(n))
	if blocks*BlockSize > int64(len(b)) {
		return 0, 0, nil, corrupt("log record: %d bytes of payload run past the log", n)
	}
	payload = b[walHeader : walHeader+n]
	if got, want := be.Uint32(b[20:]), walSum(uuid, b[:20], payload); got != want {
		return 0, 0, nil, corrupt("log record: checksum %08x, computed %08x (torn or damaged)", got, want)
	}
	return be.Uint64(b[8:]), blocks, payload, nil
}

func encodeWALPayload(r walRecord) []byte {
	var b []byte
	str := func(s string) {
		b = be.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = be.AppendUint32(b, uint32(len(r.log)))
	for _, x := range r.log {
		b = append(b, byte(x.kind))
		switch x.kind {
		case recInode:
			s := x.static
			b = be.AppendUint64(b, s.Ino)
			b = be.AppendUint32(b, s.Mode)
			b = be.AppendUint32(b, s.UID)
			b = be.AppendUint32(b, s.GID)
			b = be.AppendUint32(b, s.Nlink)
			b = be.AppendUint64(b, s.Rdev)
			str(s.Target)
		case recDirent:
			b = be.AppendUint64(b, x.dir)
			str(x.name)
			b = be.AppendUint64(b, x.ino)
		case recDrop:
			b = be.AppendUint64(b, x.dir)
		case recXattr:
			b = be.AppendUint64(b, x.dir)
			str(x.name)
			if x.value == nil {
				b = append(b, 0)
			} else {
				b = append(b, 1)
				str(string(x.value))
			}
		}
	}
	b = be.AppendUint32(b, uint32(len(r.snaps)))
	for _, s := range r.snaps {
		b = be.AppendUint64(b, s.ino)
		for _, v := range []int64{s.dyn.Size, s.dyn.Atime, s.dyn.Mtime, s.dyn.Ctime} {
			b = be.AppendUint64(b, uint64(v))
		}
		for _, p := range s.dyn.IBlock {
			b = be.AppendUint32(b, p)
		}
		if !s.hasExtents {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = be.AppendUint32(b, uint32(len(s.extents)))
		for _, x := range s.extents {
			b = be.AppendUint64(b, uint64(x.Page))
			b = be.AppendUint64(b, uint64(x.Count))
			b = be.AppendUint64(b, uint64(x.Block))
			if x.Unwritten {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	}
	b = be.AppendUint32(b, uint32(len(r.sums)))
	for _, blk := range slices.Sorted(mapKeys(r.sums)) {
		b = be.AppendUint64(b, uint64(blk))
		b = be.AppendUint32(b, r.sums[blk])
	}
	return b
}

// walDecoder reads a payload; the first read past its end sets err.
type walDecoder struct {
	b   []byte
	err error
}

func (d *walDecoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		if d.err == nil {
			d.err = corrupt("log record: payload ends early")
		}
		// Zeros enough for u8, u32 and u64 to read; never n of them: a
		// damaged length may claim 4 GiB.
		return make([]byte, 8)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *walDecoder) u8() byte    { return d.take(1)[0] }
func (d *walDecoder) u32() uint32 { return be.Uint32(d.take(4)) }
func (d *walDecoder) u64() uint64 { return be.Uint64(d.take(8)) }
func (d *walDecoder) str() string { return string(d.take(int(d.u32()))) }

// flag reads a byte the encoder writes as 0 or 1; any other value is a
// record it did not write.
func (d *walDecoder) flag() bool {
	v := d.u8()
	if v > 1 && d.err == nil {
		d.err = corrupt("log record: flag byte %d", v)
	}
	return v == 1
}

// count reads an element count, bounded by what the rest of the payload
// can hold at min bytes per element, so a damaged count allocates nothing.
func (d *walDecoder) count(min int) int {
	n := int(d.u32())
	if d.err == nil && n > len(d.b)/min {
		d.err = corrupt("log record: %d elements in %d bytes", n, len(d.b))
	}
	if d.err != nil {
		return 0
	}
	return n
}

// decodeWALPayload parses a record's payload. Its checksum matched, so an
// error here is a record this holefs did not write (or a bug): it says
// what is wrong and never panics.
func decodeWALPayload(seq uint64, p []byte) (walRecord, error) {
	d := &walDecoder{b: p}
	r := walRecord{seq: seq}
	for i, n := 0, d.count(9); i < n && d.err == nil; i++ {
		x := record{kind: recKind(d.u8())}
		switch x.kind {
		case recInode:
			x.static = Static{Ino: d.u64(), Mode: d.u32(), UID: d.u32(), GID: d.u32(), Nlink: d.u32(), Rdev: d.u64()}
			x.static.Target = d.str()
		case recDirent:
			x.dir, x.name = d.u64(), d.str()
			x.ino = d.u64()
		case recDrop:
			x.dir = d.u64()
		case recXattr:
			x.dir, x.name = d.u64(), d.str()
			if d.flag() {
				x.value = []byte(d.str())
			}
		default:
			if d.err == nil {
				d.err = corrupt("log record %d: unknown change kind %d", seq, x.kind)
			}
		}
		r.log = append(r.log, x)
	}
	for i, n := 0, d.count(8+32+4*NRoots+1); i < n && d.err == nil; i++ {
		s := snapshot{ino: d.u64()}
		s.dyn.Size, s.dyn.Atime, s.dyn.Mtime, s.dyn.Ctime = int64(d.u64()), int64(d.u64()), int64(d.u64()), int64(d.u64())
		for k := range s.dyn.IBlock {
			s.dyn.IBlock[k] = d.u32()
		}
		if d.flag() {
			s.hasExtents = true
			for k, m := 0, d.count(25); k < m && d.err == nil; k++ {
				x := Extent{Page: int64(d.u64()), Count: int64(d.u64()), Block: int64(d.u64()), Unwritten: d.flag()}
				s.extents = append(s.extents, x)
			}
		}
		r.snaps = append(r.snaps, s)
	}
	if n := d.count(12); n > 0 {
		r.sums = make(map[int64]uint32, n)
		prev := int64(-1)
		for i := 0; i < n && d.err == nil; i++ {
			// The encoder writes them by ascending block, once each.
			b := int64(d.u64())
			if b <= prev && d.err == nil {
				d.err = corrupt("log record %d: checksum of block %d after block %d", seq, b, prev)
			}
			r.sums[b], prev = d.u32(), b
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = corrupt("log record %d: %d bytes after the payload", seq, len(d.b))
	}
	if d.err != nil {
		return walRecord{}, fmt.Errorf("%s: %w", DataFile, d.err)
	}
	return r, nil
}

// walPos is where a record sits: its first block in the log, its length,
// and its sequence.
type walPos struct {
	seq    uint64
	block  int64 // in the log, 0 = the log's first block
	blocks int64
}

// walScan is what Open found in the log.
type walScan struct {
	blocks  int64       // log size
	chain   []walPos    // the records to replay, in order: seq db+1, db+2, ...
	halves  [2][]walPos // each half's run: the records from its start, seq consecutive
	stop    [2]int64    // where each half's run stopped (log block), or -1 at the half's end
	why     [2]error    // why it stopped there
	lost    *walPos     // a valid record past the chain's end: damage lost the records between
	payload map[uint64][]byte
}

// end returns the last commit the log holds, or db when it holds none
// newer.
func (s *walScan) end(db uint64) uint64 {
	if len(s.chain) == 0 {
		return db
	}
	return s.chain[len(s.chain)-1].seq
}

// half returns the first log block and the block count of half h.
func walHalf(blocks int64, h int) (int64, int64) {
	n := blocks / 2
	return int64(h) * n, n
}

// scanWAL reads the log region b (the whole log) and finds the records
// newer than meta.db's commit db. Each half is a run of records with
// consecutive sequence numbers from its first block (a commit writes its
// record after the previous commit's flush, and a half is reused only
// once a checkpoint made all its records older than meta.db), so the
// records to replay are those of both runs newer than db, which must
// follow db without a gap.
func scanWAL(uuid [16]byte, b []byte, db uint64) *walScan {
	s := &walScan{blocks: int64(len(b)) / BlockSize, payload: map[uint64][]byte{}}
	for h := range 2 {
		start, n := walHalf(s.blocks, h)
		s.stop[h] = -1
		pos := start
		for pos < start+n {
			seq, blocks, p, err := walFrame(uuid, b[pos*BlockSize:(start+n)*BlockSize])
			if err == nil && len(s.halves[h]) > 0 && seq != s.halves[h][len(s.halves[h])-1].seq+1 {
				err = corrupt("log record: commit %d after commit %d (an older record)", seq, s.halves[h][len(s.halves[h])-1].seq)
			}
			if err != nil {
				s.stop[h], s.why[h] = pos, err
				break
			}
			s.halves[h] = append(s.halves[h], walPos{seq: seq, block: pos, blocks: blocks})
			s.payload[seq] = p
			pos += blocks
		}
	}
	var newer []walPos
	for h := range 2 {
		for _, r := range s.halves[h] {
			if r.seq > db {
				newer = append(newer, r)
			}
		}
	}
	slices.SortFunc(newer, func(a, b walPos) int { return cmpU64(a.seq, b.seq) })
	next := db + 1
	for _, r := range newer {
		if r.seq != next {
			break
		}
		s.chain = append(s.chain, r)
		next++
	}
	// A valid record newer than the chain anywhere in the log means the
	// commits between were durable once (each record is written after
	// the previous commit's flush): a record among them is damaged.
	end := s.end(db)
	for h := range 2 {
		start, n := walHalf(s.blocks, h)
		for pos := start; pos < start+n; pos++ {
			seq, blocks, _, err := walFrame(uuid, b[pos*BlockSize:(start+n)*BlockSize])
			if err == nil && seq > end && (s.lost == nil || seq > s.lost.seq) {
				s.lost = &walPos{seq: seq, block: pos, blocks: blocks}
			}
		}
	}
	return s
}

// damage describes a lost stretch of the log for a Rollback: where the
// record that should follow the chain was expected.
func (s *walScan) damage(db uint64) string {
	end := s.end(db)
	where := ""
	for h := range 2 {
		if s.stop[h] >= 0 && s.why[h] != nil {
			if where != "" {
				where += "; "
			}
			where += fmt.Sprintf("log block %d: %v", s.stop[h], s.why[h])
		}
	}
	return fmt.Sprintf("log record of commit %d is missing or damaged, commit %d is at log block %d (%s)", end+1, s.lost.seq, s.lost.block, where)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// readWALSize reads the log size from meta.db (0: the image has none).
func (img *Image) readWALSize() (int64, error) {
	if img.SB.Incompat&IncompatWAL == 0 {
		return 0, nil
	}
	var n int64
	err := img.db.View(func(tx *bbolt.Tx) error {
		k := []byte(keyWAL)
		v, err := unseal("log size record", k, tx.Bucket([]byte(bucketSuper)).Get(k))
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return corrupt("log size record: %d bytes, want 8", len(v))
		}
		n = int64(be.Uint64(v))
		if n < 2 || n%2 != 0 || n > maxWALBlocks {
			return corrupt("log size record: %d blocks, want an even count in [2, %d]", n, maxWALBlocks)
		}
		return nil
	})
	return n, err
}

// maxWALBlocks bounds the log (Open reads it whole): 256 MiB.
const maxWALBlocks = 1 << 16

// readWAL reads the log region of the data file and scans it against
// meta.db's commit.
func (img *Image) readWAL() error {
	n, err := img.readWALSize()
	if err != nil || n == 0 {
		return err
	}
	f, err := os.Open(img.DataPath())
	if err != nil {
		return err
	}
	defer f.Close()
	// A data file cut short in the log reads as zeros there: the records
	// it lost are missing from the chain, and a commit record past its
	// end reports the loss as a rollback.
	b := make([]byte, n*BlockSize)
	if _, err := f.ReadAt(b, img.SB.Blocks*BlockSize); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: read the log (%d blocks at block %d): %w", DataFile, n, img.SB.Blocks, err)
	}
	img.wal = scanWAL(img.SB.UUID, b, img.seq)
	return nil
}

// WALBlocks returns the size of the image's log in blocks (0 without one).
// The data file holds SB.Blocks + WALBlocks blocks: the device the store
// allocates from, then the log.
func (img *Image) WALBlocks() int64 {
	if img.wal == nil {
		return 0
	}
	return img.wal.blocks
}

// Seq returns the image's latest commit: meta.db's, or the last one its
// log holds.
func (img *Image) Seq() uint64 { return img.latest() }

func (img *Image) latest() uint64 {
	if img.wal == nil {
		return img.seq
	}
	return img.wal.end(img.seq)
}

// replayWAL applies the log's records newer than meta.db in one
// transaction. Replaying is idempotent: the transaction sets meta.db's
// commit to the last record's, so a crash before it commits replays the
// same records again, and after it skips them.
func (img *Image) replayWAL() error {
	s := img.wal
	if s == nil || len(s.chain) == 0 {
		return nil
	}
	recs := make([]walRecord, 0, len(s.chain))
	for _, p := range s.chain {
		r, err := decodeWALPayload(p.seq, s.payload[p.seq])
		if err != nil {
			return fmt.Errorf("replay the log: record at log block %d: %w", p.block, err)
		}
		recs = append(recs, r)
	}
	if err := img.applyWAL(recs, nil); err != nil {
		return fmt.Errorf("replay the log: %w", err)
	}
	img.replayed = [2]uint64{s.chain[0].seq, s.chain[len(s.chain)-1].seq}
	s.chain = nil
	return nil
}

// Replayed returns the commits Open replayed from the log into meta.db
// (first and last; zero if none). A read-only open replays them into a
// private copy of meta.db, so that fsck checks the image as the next
// mount sees it without writing to it.
func (img *Image) Replayed() (first, last uint64) { return img.replayed[0], img.replayed[1] }

// replayCopy replays the log for a read-only open: into a copy of
// meta.db in the temporary directory, which the image reads from then on
// (Close removes it). The original stays open, read-only, for its lock.
func (img *Image) replayCopy(wait time.Duration) (err error) {
	if img.wal == nil || len(img.wal.chain) == 0 {
		return nil
	}
	src, err := os.Open(filepath.Join(img.Dir, MetaFile))
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp("", "holefs-replay-*.db")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	opts := &bbolt.Options{Timeout: wait, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
	db, err := bbolt.Open(tmp.Name(), 0o600, opts)
	if err != nil {
		return fmt.Errorf("%s: copy to replay the log into: %v: %w", MetaFile, err, syscall.EIO)
	}
	orig := img.db
	img.db = db
	err = img.replayWAL()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	img.db = orig
	if err != nil {
		return err
	}
	opts.ReadOnly = true
	ro, err := bbolt.Open(tmp.Name(), 0o600, opts)
	if err != nil {
		return fmt.Errorf("%s: copy to replay the log into: %v: %w", MetaFile, err, syscall.EIO)
	}
	img.lockDB, img.db, img.replayPath = orig, ro, tmp.Name()
	return nil
}

// applyWAL writes records to meta.db in one transaction whose commit is
// the last record's: a replay at Open, or a checkpoint.
func (img *Image) applyWAL(recs []walRecord, hooks *JournalOptions) error {
	if len(recs) == 0 {
		return nil
	}
	if hooks != nil && hooks.BeforeCheckpoint != nil {
		hooks.BeforeCheckpoint()
	}
	if hooks != nil && hooks.AfterCheckpoint != nil {
		defer hooks.AfterCheckpoint()
	}
	last := recs[len(recs)-1].seq
	err := img.db.Update(func(tx *bbolt.Tx) error {
		w, err := newWriter(tx)
		if err != nil {
			return err
		}
		if w.st.Seq >= last {
			return nil // applied already
		}
		for _, r := range recs {
			if r.seq <= w.st.Seq {
				continue
			}
			for _, x := range r.log {
				if err := w.apply(x); err != nil {
					return err
				}
			}
			for _, sn := range r.snaps {
				if err := w.update(sn); err != nil {
					return err
				}
			}
			if err := w.putChecksums(tx, r.sums); err != nil {
				return err
			}
		}
		w.st.Seq = last - 1 // finish counts the transaction's commit
		return w.finish()
	})
	if err != nil {
		return ioErr(err)
	}
	img.ckpt(last)
	return nil
}

// ckpt notes that meta.db holds commit seq, and so the data checksums
// logged up to it.
func (img *Image) ckpt(seq uint64) {
	img.walMu.Lock()
	defer img.walMu.Unlock()
	img.dbSeq = seq
	for b, s := range img.walSums {
		if s.seq <= seq {
			delete(img.walSums, b)
		}
	}
}

// loggedSum is a data checksum committed to the log by commit seq.
type loggedSum struct {
	crc uint32
	seq uint64
}

// logSums notes the data checksums commit seq made durable in the log:
// until a checkpoint puts them in meta.db, Checksum finds them here.
func (img *Image) logSums(sums map[int64]uint32, seq uint64) {
	if len(sums) == 0 {
		return
	}
	img.walMu.Lock()
	defer img.walMu.Unlock()
	if img.walSums == nil {
		img.walSums = map[int64]loggedSum{}
	}
	for b, c := range sums {
		img.walSums[b] = loggedSum{crc: c, seq: seq}
	}
}

func (img *Image) loggedChecksum(block int64) (uint32, bool) {
	img.walMu.Lock()
	defer img.walMu.Unlock()
	s, ok := img.walSums[block]
	return s.crc, ok
}

// checkpointed returns meta.db's commit.
func (img *Image) checkpointed() uint64 {
	img.walMu.Lock()
	defer img.walMu.Unlock()
	return img.dbSeq
}

// zeroWAL overwrites the log with zeros and syncs it: after a rollback
// is accepted, records newer than the accepted state must not replay.
func (img *Image) zeroWAL() error {
	if img.wal == nil {
		return nil
	}
	f, err := os.OpenFile(img.DataPath(), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, img.wal.blocks*BlockSize), img.SB.Blocks*BlockSize); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	img.wal = &walScan{blocks: img.wal.blocks, payload: map[uint64][]byte{}, stop: [2]int64{-1, -1}}
	return nil
}
