package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
	// WALBlocks is the size of the write-ahead log of an image with
	// IncompatWAL (an even count of at least 2 blocks); default
	// DefaultWALBlocks. The data file holds the log after its Blocks.
	WALBlocks int64
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
	if opts.Incompat&IncompatWAL == 0 {
		opts.WALBlocks = 0
	} else if opts.WALBlocks == 0 {
		opts.WALBlocks = DefaultWALBlocks
	}
	if opts.Incompat&IncompatWAL != 0 && (opts.WALBlocks < 2 || opts.WALBlocks%2 != 0 || opts.WALBlocks > maxWALBlocks) {
		return Superblock{}, mkfsErr(dir, fmt.Errorf("log of %d blocks: want an even count in [2, %d]: %w", opts.WALBlocks, maxWALBlocks, syscall.EINVAL))
	}
	if err := prepareDir(dir, opts.Force); err != nil {
		return Superblock{}, err
	}
	now := time.Now().UnixNano()
	sb, err := NewSuperblock(opts.Blocks, opts.Incompat, now)
	if err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	sb.Compat = CompatCommitSeq
	if err := writeData(filepath.Join(dir, DataFile), sb, opts.WALBlocks); err != nil {
		return Superblock{}, mkfsErr(dir, err)
	}
	tmp := filepath.Join(dir, MetaFile+".new")
	os.Remove(tmp)
	if err := writeMeta(tmp, sb, now, opts.WALBlocks); err != nil {
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
		// Without waiting: a holder keeps the image open until it is
		// told to close it. An image without a meta.db has no lock.
		unlock, err := flockMeta(filepath.Join(dir, MetaFile), syscall.LOCK_EX, 0)
		switch {
		case err == nil:
			defer unlock()
		case !errors.Is(err, fs.ErrNotExist):
			return mkfsErr(dir, err)
		}
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return mkfsErr(dir, err)
		}
	}
	return nil
}

func writeData(path string, sb Superblock, walBlocks int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(sb.Blocks * BlockSize); err != nil {
		return err
	}
	// The log is written with zeros, not left sparse: a commit then
	// overwrites allocated blocks, which changes no metadata of the
	// filesystem below, so the one fdatasync it makes writes no journal
	// of that filesystem's.
	if walBlocks > 0 {
		if _, err := f.WriteAt(make([]byte, walBlocks*BlockSize), sb.Blocks*BlockSize); err != nil {
			return err
		}
	}
	// writeMeta's transaction is commit 1: its record goes ahead of it.
	if _, err := f.WriteAt(sb.block0(1), 0); err != nil {
		return err
	}
	return f.Sync()
}

func writeMeta(path string, sb Superblock, now int64, walBlocks int64) error {
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
		if walBlocks > 0 {
			k := []byte(keyWAL)
			if err := sup.Put(k, sealed(k, be.AppendUint64(nil, uint64(walBlocks)))); err != nil {
				return err
			}
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

	// The fields below are what Open found. seq then follows the
	// commits (the journal's, under its commitMu, or Repair's, the
	// image's only user), and Repair's also set rec and recErr; the
	// others stay as Open set them.
	store    *storeInfo // meta.db's meta pages
	seq      uint64     // meta.db's commit sequence; the journal's commitMu
	seqErr   error      // the state record did not decode at Open
	rec      uint64     // block 0's commit record at Open
	recErr   error      // the commit record is damaged or absent (CompatCommitSeq images)
	rollback *Rollback  // meta.db fell back to an older commit; nil if not
	wal      *walScan   // the log as Open found it (images with IncompatWAL); nil without one

	replayed   [2]uint64 // the commits Open replayed from the log
	lockDB     *bbolt.DB // read-only with a replayed log: the image's meta.db, held open for its lock
	replayPath string    // and the copy db is, which Close removes

	walMu   sync.Mutex          // leaf
	dbSeq   uint64              // +checklocks:walMu; meta.db's commit: seq, or older while the log holds the rest
	walSums map[int64]loggedSum // +checklocks:walMu; data checksums in the log and not yet in meta.db
}

// OpenOptions configure Open.
type OpenOptions struct {
	// ReadOnly opens meta.db shared and read-only (fsck without repair).
	// A read-only open of a rolled-back image succeeds: Image.Rollback
	// reports it.
	ReadOnly bool
	// Wait is how long to wait for another process to close the image;
	// default 100 ms, after which Open fails with EBUSY.
	Wait time.Duration
	// AcceptRollback opens an image whose meta.db fell back to an older
	// commit (see Rollback) read-write anyway: the older state becomes the
	// latest, and what was committed after it is lost for good. Without
	// it such an open fails with a *RollbackError.
	AcceptRollback bool
}

// Rollback describes a meta.db that is older than its image's last
// commit: bbolt fell back to its previous meta page because the latest
// one is damaged, or the file was replaced by an older copy. Whatever was
// committed after commit To — files written and fsync'd among it — is
// gone from the metadata.
type Rollback struct {
	From, To uint64 // commit sequence numbers: the latest one, and meta.db's
	Accepted bool   // Open accepted it (OpenOptions.AcceptRollback)
	Why      string // how it was detected
}

// String says what was lost, as fsck reports it.
func (r Rollback) String() string {
	return fmt.Sprintf("rolled back from commit %d to %d: data fsynced since is lost (%s)", r.From, r.To, r.Why)
}

// RollbackError is Open's error for a rolled-back image. It wraps
// EUCLEAN.
type RollbackError struct{ Rollback }

// Error names the commits and the way to accept the loss.
func (e *RollbackError) Error() string {
	return MetaFile + " " + e.Rollback.String() + "; holefs fsck --repair --accept-rollback accepts the loss"
}

// Unwrap makes the error EUCLEAN.
func (e *RollbackError) Unwrap() error { return syscall.EUCLEAN }

// Open opens the image at dir and checks its superblocks and meta.db's
// page structure (before bbolt reads it: a damaged page is an EUCLEAN
// error naming it, never a crash). It locks meta.db (shared when
// read-only): a second writer gets EBUSY. A meta.db that fell back to an
// older commit is refused read-write unless opts.AcceptRollback.
func Open(dir string, opts OpenOptions) (*Image, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, openErr(dir, err)
	}
	if !st.IsDir() {
		return nil, openErr(dir, fmt.Errorf("not a directory (create an image with holefs mkfs): %w", syscall.ENOTDIR))
	}
	dataSB, block, err := readBlock0(filepath.Join(dir, DataFile))
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
	store, err := lockedCheckStore(metaPath, opts.ReadOnly, opts.Wait)
	if err != nil {
		return nil, openErr(dir, err)
	}
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	var db *bbolt.DB
	err = safely("open", func() (err error) {
		db, err = bbolt.Open(metaPath, 0o600, &bbolt.Options{Timeout: opts.Wait, ReadOnly: opts.ReadOnly,
			OpenFile:       func(p string, _ int, m os.FileMode) (*os.File, error) { return os.OpenFile(p, flag, m) },
			NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
		return err
	})
	if err != nil {
		if errors.Is(err, syscall.EUCLEAN) {
			return nil, openErr(dir, err)
		}
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, openErr(dir, errBusy(metaPath))
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return nil, openErr(dir, fmt.Errorf("%s: %w", MetaFile, err))
		}
		return nil, openErr(dir, fmt.Errorf("%s: %v: %w", MetaFile, err, syscall.EUCLEAN))
	}
	img := &Image{Dir: dir, SB: dataSB, db: db, store: store}
	if err := safely("read", img.checkSuperblockCopy); err != nil {
		db.Close()
		return nil, openErr(dir, err)
	}
	img.seq, img.seqErr = img.readSeq()
	img.dbSeq = img.seq
	if img.seqErr == nil {
		if err := safely("read", img.readWAL); err != nil {
			db.Close()
			return nil, openErr(dir, err)
		}
		img.seq = img.latest()
	}
	img.rec, img.recErr = uint64(0), errNoRecord
	if dataSB.Compat&CompatCommitSeq != 0 {
		img.rec, img.recErr = decodeCommitRecord(block)
	}
	img.rollback = img.detectRollback()
	if rb := img.rollback; rb != nil && !opts.ReadOnly {
		if !opts.AcceptRollback {
			db.Close()
			return nil, openErr(dir, &RollbackError{*rb})
		}
		// Accepting makes the state meta.db and the log's intact
		// records hold the latest: the log is replayed and cleared, and
		// the record says so before anything else is written.
		if err := img.replayWAL(); err != nil {
			db.Close()
			return nil, openErr(dir, err)
		}
		if err := img.zeroWAL(); err != nil {
			db.Close()
			return nil, openErr(dir, err)
		}
		if img.SB.Compat&CompatCommitSeq != 0 {
			if err := img.writeRecord(img.seq); err != nil {
				db.Close()
				return nil, openErr(dir, err)
			}
			img.rec, img.recErr = img.seq, nil
		}
		// A commit of nothing writes the next meta page over the
		// damaged one, which would otherwise still read as the newer.
		if img.store.other().err != nil {
			if err := img.db.Update(func(*bbolt.Tx) error { return nil }); err != nil {
				db.Close()
				return nil, openErr(dir, fmt.Errorf("%s: rewrite the damaged meta page: %w", MetaFile, ioErr(err)))
			}
			if err := img.refreshStore(); err != nil {
				db.Close()
				return nil, openErr(dir, err)
			}
		}
		rb.Accepted = true
	}
	replay := img.replayWAL
	if opts.ReadOnly {
		replay = func() error { return img.replayCopy(opts.Wait) }
	}
	if img.rollback == nil || img.rollback.Accepted {
		if err := safely("replay", replay); err != nil {
			img.Close()
			return nil, openErr(dir, err)
		}
	}
	return img, nil
}

// refreshStore reads the meta pages again after a commit of this
// process's (bbolt's lock is held: no one else writes).
func (img *Image) refreshStore() error {
	s, err := checkStore(filepath.Join(img.Dir, MetaFile))
	if err != nil {
		return err
	}
	img.store = s
	return nil
}

var errNoRecord = errors.New("no commit record (an image made before holefs kept one)")

// detectRollback compares meta.db with its meta pages and block 0's
// commit record. Each commit writes its sequence number to the record
// ahead of the data flush that precedes its meta.db transaction, so in any
// crash state the record is at most one ahead of meta.db: one ahead is a
// commit that did not complete, unless bbolt fell back from a damaged meta
// page (the damaged one's txid may itself be what is damaged, so any
// damaged meta page then counts); more is a rollback whatever the pages
// say. Without a record (older images, or a damaged one) the meta pages
// alone tell: the damaged one was the newer, as far as its txid can be read.
func (img *Image) detectRollback() *Rollback {
	if img.seqErr != nil {
		return nil
	}
	other := img.store.other()
	damaged := fmt.Sprintf("meta page %d is damaged: %v", other.index, other.err)
	m := img.seq
	if w := img.wal; w != nil {
		// With a log, meta.db lags the commits by design: a commit is
		// its log record, and meta.db catches up at checkpoints. Block
		// 0's record names the last checkpoint, written after its
		// transaction (or, by fsck and an accepted rollback, ahead of
		// theirs: one ahead at most). What is lost is a gap in the log,
		// or a record past the end of what meta.db and the log hold.
		switch {
		case w.lost != nil:
			return &Rollback{From: w.lost.seq, To: m, Why: w.damage(img.dbSeq)}
		case img.recErr == nil && img.rec > m+1:
			return &Rollback{From: img.rec, To: m, Why: "block 0 records commit " + utoa(img.rec)}
		case img.recErr == nil && img.rec == m+1 && other.err != nil:
			// One ahead is a meta.db writer that records first (a commit
			// too large for the log, fsck): with the newer meta page
			// damaged, its transaction is lost, as without a log.
			return &Rollback{From: img.rec, To: m, Why: damaged}
		case img.recErr != nil && img.store.fellBack() && len(w.chain) == 0:
			return &Rollback{From: m + 1, To: m, Why: damaged}
		}
		return nil
	}
	switch {
	case img.recErr != nil:
		if img.store.fellBack() {
			return &Rollback{From: m + 1, To: m, Why: damaged}
		}
	case img.rec > m+1:
		return &Rollback{From: img.rec, To: m, Why: "block 0 records commit " + utoa(img.rec)}
	case img.rec == m+1 && other.err != nil:
		return &Rollback{From: img.rec, To: m, Why: damaged}
	}
	return nil
}

// Rollback reports whether meta.db fell back to an older commit than the
// image's latest (see OpenOptions.AcceptRollback).
func (img *Image) Rollback() (Rollback, bool) {
	if img.rollback == nil {
		return Rollback{}, false
	}
	return *img.rollback, true
}

// readSeq reads the commit sequence of the state record.
func (img *Image) readSeq() (uint64, error) {
	var st state
	err := img.db.View(func(tx *bbolt.Tx) error {
		var err error
		st, err = decodeState(tx.Bucket([]byte(bucketSuper)).Get([]byte(keyState)))
		return err
	})
	return st.Seq, err
}

// writeRecord writes block 0 with a commit record of seq and makes it
// durable, for the writers of meta.db that have no device: Open accepting
// a rollback, and fsck.
func (img *Image) writeRecord(seq uint64) error {
	f, err := os.OpenFile(img.DataPath(), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(img.SB.block0(seq), 0); err != nil {
		return err
	}
	return f.Sync()
}

// lockedCheckStore runs checkStore under meta.db's lock (flockMeta;
// shared when read-only), so that it never reads a meta.db another
// process is writing; the lock is dropped before bbolt takes its own.
func lockedCheckStore(path string, readOnly bool, wait time.Duration) (*storeInfo, error) {
	how := syscall.LOCK_EX
	if readOnly {
		how = syscall.LOCK_SH
	}
	unlock, err := flockMeta(path, how, wait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return checkStore(path)
}

// safely runs fn, which reads meta.db through bbolt, and turns a panic
// into an EUCLEAN error. checkStore is meant to leave bbolt nothing to
// panic on; should it miss something, the caller gets an error rather
// than losing its process (a panic in one of bbolt's own goroutines
// cannot be caught: checkStore must leave those none).
func safely(what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("%s: %s: bbolt panicked: %s", MetaFile, what, clip(fmt.Sprint(r)))
		}
	}()
	return fn()
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
	sb, _, err := readBlock0(path)
	return sb, err
}

// readBlock0 reads and checks the superblock of the data file at path,
// and returns block 0 (for its commit record).
func readBlock0(path string) (Superblock, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return Superblock{}, nil, err
	}
	defer f.Close()
	b := make([]byte, BlockSize)
	n, err := f.ReadAt(b, 0)
	if n < superblockSize {
		if err == nil {
			err = errors.New("short read")
		}
		return Superblock{}, nil, corrupt("%s: cannot read the superblock (%v)", DataFile, err)
	}
	sb, err := DecodeSuperblock(b)
	if err != nil {
		return Superblock{}, nil, fmt.Errorf("%s: %w", DataFile, err)
	}
	st, err := f.Stat()
	if err != nil {
		return Superblock{}, nil, err
	}
	if st.Size() < sb.Blocks*BlockSize {
		return Superblock{}, nil, corrupt("%s: %d bytes, the superblock says %d blocks (%d bytes): truncated", DataFile, st.Size(), sb.Blocks, sb.Blocks*BlockSize)
	}
	return sb, b, nil
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
	if c, ok := img.loggedChecksum(block); ok {
		return c, true
	}
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

// ReadOnly reports whether the image is open read-only.
func (img *Image) ReadOnly() bool { return img.db != nil && img.db.IsReadOnly() }

// Close closes meta.db and releases its lock.
func (img *Image) Close() error {
	if img.db == nil {
		return nil
	}
	err := img.db.Close()
	img.db = nil
	if img.lockDB != nil {
		if cerr := img.lockDB.Close(); err == nil {
			err = cerr
		}
		os.Remove(img.replayPath)
		img.lockDB = nil
	}
	return err
}

// DataPath returns the path of the image's data file.
func (img *Image) DataPath() string { return filepath.Join(img.Dir, DataFile) }
