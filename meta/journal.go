package meta

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/holefs/holefs/internal/lockcheck"
)

// Source is an inode of the running filesystem, read by a commit.
type Source interface {
	// Snapshot returns the inode's size and times and, for an inode with
	// a block map, its extents (hasExtents). ok is false once the inode's
	// blocks are released: its durable records then stay as they are
	// until its drop record commits.
	Snapshot() (d Dynamic, extents []Extent, hasExtents, ok bool)
}

// Quarantine holds freed blocks until the commit that freed them is
// durable (see the package documentation).
type Quarantine interface {
	// Seal closes the current generation of freed blocks and returns its
	// number.
	Seal() uint64
	// Release makes the blocks of every generation <= gen allocatable.
	Release(gen uint64)
}

// Preparer is a Quarantine whose store keeps metadata on the data device
// that a commit must write first (ext2's indirect blocks): PrepareCommit
// runs in each commit after the dirty inodes are taken and before their
// snapshots and the data flush, so that what it writes is flushed before
// the meta.db transaction that points at it. An error fails the commit.
type Preparer interface {
	PrepareCommit() error
}

// Entry is an inode's handle in the journal: Dirty queues it for the next
// commit.
type Entry struct {
	j      *Journal
	ino    uint64
	queued atomic.Bool // in j.dirty; set and cleared under j.mu
	src    Source      // set by SetSource before the first Dirty; immutable after

	// What the last commit wrote of the inode (images with a log): a
	// commit that maps no block anew and grows no file needs no flush
	// ahead of its log record (see walCommit).
	known     bool     // +checklocks:j.commitMu
	size      int64    // +checklocks:j.commitMu
	committed []Extent // +checklocks:j.commitMu
}

// SetSource sets what a commit reads. Call it once, before Dirty.
func (e *Entry) SetSource(s Source) {
	if e != nil {
		e.src = s
	}
}

// Dirty queues the inode so that the next commit writes its size, times
// and extents. It costs one atomic load when the inode is already queued,
// so it can be called on every write. A nil Entry (a filesystem without an
// image) does nothing.
func (e *Entry) Dirty() {
	if e == nil || e.queued.Load() {
		return
	}
	j := e.j
	j.mu.Lock()
	if !e.queued.Load() {
		e.queued.Store(true)
		j.dirty = append(j.dirty, e)
	}
	n := len(j.dirty) + len(j.log)
	j.mu.Unlock()
	j.pressure(n)
}

type recKind uint8

const (
	recInode recKind = iota + 1
	recDirent
	recDrop
	recXattr
)

// record is one namespace change of the log.
type record struct {
	kind   recKind
	static Static // recInode
	dir    uint64 // recDirent: directory; recDrop, recXattr: the inode
	name   string // recDirent, recXattr
	ino    uint64 // recDirent: child, 0 to remove the entry
	value  []byte // recXattr; nil removes
}

// JournalOptions configure a Journal.
type JournalOptions struct {
	// Flush makes the data device's completed writes durable; a commit
	// calls it before the metadata that points at them.
	Flush func() error
	// Interval commits in the background at least this often while
	// anything is dirty; default 5 s, negative disables the timer.
	Interval time.Duration
	// MaxPending starts a background commit when this many records and
	// dirty inodes are queued, bounding the journal's memory; default 8192.
	MaxPending int
	// Checksums, on an image with data checksums, hands over the
	// checksums of the blocks written since the last commit.
	Checksums interface {
		Take() map[int64]uint32
		Untake(map[int64]uint32)
	}
	// WriteBlock0, if set, writes block 0 of the data device (no flush).
	// On images with CompatCommitSeq each commit writes its sequence
	// number there, in the commit record, before the data flush that
	// precedes its meta.db transaction: the flush the commit makes anyway
	// makes it durable, and a meta.db that later falls back to an older
	// commit is detected by Open. Unset, the record lags (nothing is
	// detected that the meta pages alone do not show).
	WriteBlock0 func(p []byte) error
	// BeforeCommit and AfterCommit, if set, run around each metadata
	// transaction, after the data flush (test hooks: a crash test copies
	// meta.db there; between the two a crash may leave either state).
	// On an image with a log they run around the commit point instead:
	// BeforeCommit once the log record is written, AfterCommit once the
	// flush that makes it durable returned.
	BeforeCommit, AfterCommit func()
	// WriteLog writes blocks of the data device (no flush), below any
	// checksums: a commit's log record, at the log's blocks past the
	// store's. Required on images with a log.
	WriteLog func(p []byte, block int64) error
	// BeforeCheckpoint and AfterCheckpoint, if set, run around each
	// meta.db transaction of an image with a log (a checkpoint, or a
	// commit too large for the log): test hooks, as BeforeCommit.
	BeforeCheckpoint, AfterCheckpoint func()
}

// Journal batches changes and commits them to an image's meta.db.
type Journal struct {
	img        *Image
	opts       JournalOptions
	quarantine Quarantine // set by Start; nil for a backend that frees nothing

	// commitMu serializes commits. It ranks between the page lock and
	// the extent-map lock: a commit may start from an allocation that
	// found only quarantined space, under page locks, and it reads extent
	// maps.
	commitMu lockcheck.Mutex

	mu      sync.Mutex        // leaf: taken under the namespace and extent-map locks
	log     []record          // +checklocks:mu
	dirty   []*Entry          // +checklocks:mu
	entries map[uint64]*Entry // +checklocks:mu
	commits uint64            // +checklocks:commitMu; successful commits
	failed  error             // +checklocks:commitMu; the last commit's error, nil after a success

	// Group commit: each commit takes a number when it takes the queued
	// changes, and a caller of Commit needs the commit numbered one past
	// the last taken when it called; if one that number or later
	// succeeded while it waited for commitMu, its changes are durable.
	taken   uint64 // +checklocks:mu; commits that took the queue
	durable uint64 // +checklocks:commitMu; the latest successful commit's number

	wal *walLog // nil on images without a log

	kick    chan struct{}
	ckpt    chan struct{} // a half of the log is filling: checkpoint
	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	closed  atomic.Bool
}

// Journal returns the image's journal. Entries and log records can be
// added at once; Start it before the first commit. Close the journal
// before the image.
func (img *Image) Journal(opts JournalOptions) *Journal {
	if opts.Interval == 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 8192
	}
	j := &Journal{img: img, opts: opts, entries: map[uint64]*Entry{},
		kick: make(chan struct{}, 1), ckpt: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	j.commitMu.Init(lockcheck.RankCommit)
	if img.wal != nil {
		j.wal = newWALLog(img.wal.blocks)
	}
	return j
}

// Start sets the backend's quarantine (which needs the journal to exist
// first) and starts the background committer.
func (j *Journal) Start(q Quarantine) {
	j.quarantine = q
	j.started.Store(true)
	go j.committer()
}

// Entry returns the journal entry of inode ino, creating it.
func (j *Journal) Entry(ino uint64) *Entry {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.entries[ino]
	if e == nil {
		e = &Entry{j: j, ino: ino}
		j.entries[ino] = e
	}
	return e
}

func (j *Journal) append(r record) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.log = append(j.log, r)
	if r.kind == recDrop {
		delete(j.entries, r.dir)
	}
	n := len(j.dirty) + len(j.log)
	j.mu.Unlock()
	j.pressure(n)
}

// PutInode logs an inode's namespace attributes (created, or its mode,
// owner or link count changed). The caller holds the namespace lock, which
// orders the log.
func (j *Journal) PutInode(s Static) { j.append(record{kind: recInode, static: s}) }

// PutDirent logs a directory entry; ino 0 removes it. The caller holds the
// namespace lock.
func (j *Journal) PutDirent(dir uint64, name string, ino uint64) {
	j.append(record{kind: recDirent, dir: dir, name: name, ino: ino})
}

// DropInode logs that an inode is gone: its records, extents and xattrs
// are deleted. It must be logged before the inode's blocks are freed.
func (j *Journal) DropInode(ino uint64) { j.append(record{kind: recDrop, dir: ino}) }

// PutXattr logs an extended attribute; a nil value removes it.
func (j *Journal) PutXattr(ino uint64, name string, value []byte) {
	if value != nil {
		value = append([]byte{}, value...)
	}
	j.append(record{kind: recXattr, dir: ino, name: name, value: value})
}

func (j *Journal) pressure(n int) {
	if n >= j.opts.MaxPending {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
}

func (j *Journal) committer() {
	defer close(j.done)
	var tick <-chan time.Time
	if j.opts.Interval > 0 {
		t := time.NewTicker(j.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-j.stop:
			return
		case <-tick:
		case <-j.kick:
		case <-j.ckptKick():
			// A failed checkpoint leaves its records in the log;
			// the next one, or the commit that needs the space,
			// tries again.
			_ = j.checkpoint()
			continue
		}
		// A failed background commit keeps everything queued; the next
		// Commit (an fsync, say) returns the error to someone who can
		// act on it.
		if j.Commit() == nil && j.wal != nil {
			_ = j.checkpoint()
		}
	}
}

// Commits returns the number of successful commits of this journal.
func (j *Journal) Commits() uint64 {
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	return j.commits
}

// Commit makes every change logged or dirtied before it was called
// durable, in the order described in the package documentation. With
// nothing to commit it still flushes the data device, so data written in
// place since the last commit is durable when an fsync returns. On error
// nothing is lost: the changes stay queued for the next commit, and the
// sealed quarantine stays sealed.
//
// Concurrent callers share commits (group commit): a caller whose changes
// a commit in flight did not take waits for it, and then, if another
// caller's commit took them meanwhile, for that one instead of making its
// own.
func (j *Journal) Commit() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	need := j.taken + 1
	j.mu.Unlock()
	j.commitMu.Lock()
	defer j.commitMu.Unlock()
	if j.durable >= need {
		return nil
	}
	if j.img.db == nil {
		return errClosed
	}
	var gen uint64
	if j.quarantine != nil {
		gen = j.quarantine.Seal()
	}
	j.mu.Lock()
	log, dirty := j.log, j.dirty
	j.log, j.dirty = nil, nil
	for _, e := range dirty {
		e.queued.Store(false)
	}
	j.taken++
	num := j.taken
	j.mu.Unlock()
	if len(log) == 0 && len(dirty) == 0 && j.failed == nil {
		if j.quarantine != nil {
			j.quarantine.Release(gen)
		}
		// No metadata changed, but writeback may have overwritten
		// written blocks in place since the last commit, which dirties
		// nothing: an fsync returning now still needs them durable.
		err := j.flush()
		if err == nil {
			j.durable = num
		}
		return err
	}
	if p, ok := j.quarantine.(Preparer); ok {
		if err := p.PrepareCommit(); err != nil {
			err = fmt.Errorf("meta: commit: %w", err)
			j.requeue(log, dirty)
			j.failed = err
			return err
		}
	}
	snaps := make([]snapshot, 0, len(dirty))
	snapped := make([]*Entry, 0, len(dirty))
	for _, e := range dirty {
		if e.src == nil {
			continue
		}
		d, ext, has, ok := e.src.Snapshot()
		if ok {
			snaps = append(snaps, snapshot{ino: e.ino, dyn: d, extents: ext, hasExtents: has})
			snapped = append(snapped, e)
		}
	}
	var sums map[int64]uint32
	if j.opts.Checksums != nil {
		sums = j.opts.Checksums.Take()
	}
	var err error
	if j.wal != nil {
		err = j.walCommit(log, snaps, snapped, sums)
	} else {
		err = j.write(log, snaps, sums)
	}
	if err != nil {
		if sums != nil {
			j.opts.Checksums.Untake(sums)
		}
		j.requeue(log, dirty)
		j.failed = err
		return err
	}
	j.failed = nil
	j.commits++
	j.durable = num
	if j.quarantine != nil {
		j.quarantine.Release(gen)
	}
	return nil
}

type snapshot struct {
	ino        uint64
	dyn        Dynamic
	extents    []Extent
	hasExtents bool
}

// flush makes the data device's completed writes durable.
func (j *Journal) flush() error {
	if j.opts.Flush != nil {
		if err := j.opts.Flush(); err != nil {
			return fmt.Errorf("meta: commit: flush data device: %w", err)
		}
	}
	return nil
}

func (j *Journal) write(log []record, snaps []snapshot, sums map[int64]uint32) error {
	img := j.img
	if j.opts.WriteBlock0 != nil && img.SB.Compat&CompatCommitSeq != 0 && img.seqErr == nil {
		if err := j.opts.WriteBlock0(img.SB.block0(img.seq + 1)); err != nil {
			return fmt.Errorf("meta: commit: write the commit record: %w", err)
		}
	}
	if err := j.flush(); err != nil {
		return err
	}
	if j.opts.BeforeCommit != nil {
		j.opts.BeforeCommit()
	}
	if j.opts.AfterCommit != nil {
		defer j.opts.AfterCommit()
	}
	if j.wal != nil {
		if j.opts.BeforeCheckpoint != nil {
			j.opts.BeforeCheckpoint()
		}
		if j.opts.AfterCheckpoint != nil {
			defer j.opts.AfterCheckpoint()
		}
	}
	var seq uint64
	err := img.db.Update(func(tx *bbolt.Tx) error {
		w, err := newWriter(tx)
		if err != nil {
			return err
		}
		for _, r := range log {
			if err := w.apply(r); err != nil {
				return err
			}
		}
		for _, s := range snaps {
			if err := w.update(s); err != nil {
				return err
			}
		}
		if err := w.putChecksums(tx, sums); err != nil {
			return err
		}
		seq = w.st.Seq + 1
		return w.finish()
	})
	if err != nil {
		return fmt.Errorf("meta: commit: %w", ioErr(err))
	}
	img.seq = seq
	img.ckpt(seq)
	return nil
}

// requeue puts a failed commit's work back in front of what was queued
// since, so the log keeps its order.
func (j *Journal) requeue(log []record, dirty []*Entry) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(log, j.log...)
	for _, e := range dirty {
		if !e.queued.Load() {
			e.queued.Store(true)
			j.dirty = append(j.dirty, e)
		}
	}
}

// Close stops the background committer and makes a last commit.
func (j *Journal) Close() error {
	if j == nil || j.closed.Swap(true) {
		return nil
	}
	if j.started.Load() {
		close(j.stop)
		<-j.done
	}
	if err := j.Commit(); err != nil {
		return err
	}
	// A clean close leaves meta.db complete: the next Open replays
	// nothing, and fsck checks everything.
	return j.checkpoint()
}

var errClosed = errors.New("meta: image is closed")
