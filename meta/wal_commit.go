package meta

import (
	"fmt"
	"slices"
	"sync"
)

// walLog is where a journal writes its log: the half in use and the next
// block there, under the journal's commitMu; and the records committed to
// the log but not yet to meta.db, for the checkpoint.
type walLog struct {
	blocks  int64
	half    int       // +checklocks:commitMu (the journal's)
	pos     int64     // +checklocks:commitMu; next record's log block
	halfMax [2]uint64 // +checklocks:commitMu; the newest commit written to each half since it was last entered

	ckptMu  sync.Mutex  // serializes checkpoints; ranks below the journal's commitMu
	mu      sync.Mutex  // leaf
	pending []walRecord // +checklocks:mu; in the log, not yet in meta.db, oldest first
}

func newWALLog(blocks int64) *walLog { return &walLog{blocks: blocks} }

// ckptKick returns the channel that asks the committer for a checkpoint,
// or nil (never ready) without a log.
func (j *Journal) ckptKick() chan struct{} {
	if j.wal == nil {
		return nil
	}
	return j.ckpt
}

// walCommit commits a batch as one log record: the data flush first, if
// the record maps blocks anew (ordered data: a block a record maps must
// hold its data before the record can be durable), then the record, and
// one flush that makes it durable. A
// commit that maps nothing anew and grows no file — an overwrite in
// place, a namespace change, a punch — needs no flush ahead of its record:
// whichever of its data writes and its record a crash keeps, every block
// its durable map points at holds that file's data, old or new, and an
// fsync of it had not returned. Such a commit costs one flush, as an
// fsync of a plain file does. A record too large for half the log is
// committed to meta.db directly, after a checkpoint.
func (j *Journal) walCommit(log []record, snaps []snapshot, snapped []*Entry, sums map[int64]uint32) error {
	img, w := j.img, j.wal
	if j.opts.WriteLog == nil {
		return fmt.Errorf("meta: commit: the image has a log and the journal no WriteLog")
	}
	seq := img.seq + 1
	rec := walRecord{seq: seq, log: log, snaps: snaps, sums: sums}
	frame := encodeWAL(img.SB.UUID, rec)
	nb := int64(len(frame)) / BlockSize
	start, n := walHalf(w.blocks, w.half)
	if nb > n {
		if err := j.checkpoint(); err != nil {
			return err
		}
		if err := j.write(log, snaps, sums); err != nil {
			return err
		}
		// The commit left a gap in the sequence the log's runs hold: a
		// record written after this half's run would not continue it, and
		// Open would take it for the survivor of lost records. The next
		// one opens the other half, whose records meta.db now holds.
		other := 1 - w.half
		w.half, w.halfMax[other] = other, 0
		w.pos, _ = walHalf(w.blocks, other)
		j.remember(snaps, snapped)
		return nil
	}
	if needsOrder(snaps, snapped, sums) {
		if err := j.flush(); err != nil {
			return err
		}
	}
	if w.pos+nb > start+n {
		// The other half is reused only once meta.db holds every record
		// it has: replay never needs them again.
		other := 1 - w.half
		if w.halfMax[other] > img.checkpointed() {
			if err := j.checkpoint(); err != nil {
				return err
			}
		}
		w.half, w.halfMax[other] = other, 0
		w.pos, _ = walHalf(w.blocks, other)
		start = w.pos
	}
	if err := j.opts.WriteLog(frame, img.SB.Blocks+w.pos); err != nil {
		return fmt.Errorf("meta: commit: write the log record: %w", err)
	}
	if j.opts.BeforeCommit != nil {
		j.opts.BeforeCommit()
	}
	if err := j.flush(); err != nil {
		return err
	}
	if j.opts.AfterCommit != nil {
		j.opts.AfterCommit()
	}
	w.pos += nb
	w.halfMax[w.half] = seq
	img.seq = seq
	img.logSums(sums, seq)
	w.mu.Lock()
	w.pending = append(w.pending, rec)
	w.mu.Unlock()
	j.remember(snaps, snapped)
	// The committer checkpoints once a half is half full, so that the
	// other half is free before this one fills, off the fsync path. It is
	// asked once, by the record that crosses the middle: asked by every
	// record past it, it ran a meta.db transaction every few commits
	// there, each with bbolt's own fsyncs beside the commits' flushes.
	// A request that finds one queued is covered by it: a checkpoint
	// takes every record committed when it starts.
	if mid := start + n/2; w.pos-nb <= mid && w.pos > mid && j.opts.Interval > 0 {
		select {
		case j.ckpt <- struct{}{}:
		default:
		}
	}
	return nil
}

// remember notes what a successful commit wrote of each inode.
func (j *Journal) remember(snaps []snapshot, snapped []*Entry) {
	for i, s := range snaps {
		e := snapped[i]
		e.known, e.size = true, s.dyn.Size
		if s.hasExtents {
			e.committed = s.extents
		}
	}
}

// needsOrder reports whether a commit must flush the data device before
// its log record: it maps a block with data that its inode's last commit
// did not map there (or whose last commit this journal did not see), or
// grows a file, or carries data checksums.
func needsOrder(snaps []snapshot, snapped []*Entry, sums map[int64]uint32) bool {
	if len(sums) > 0 {
		return true
	}
	for i, s := range snaps {
		e := snapped[i]
		if !e.known || s.dyn.Size > e.size || s.dyn.IBlock != ([NRoots]uint32{}) {
			return true
		}
		if s.hasExtents && mapsAnew(e.committed, s.extents) {
			return true
		}
	}
	return false
}

// mapsAnew reports whether next maps a written page to a block that old
// did not map it to written.
func mapsAnew(old, next []Extent) bool {
	if !slices.IsSortedFunc(old, func(a, b Extent) int { return int(a.Page - b.Page) }) {
		old = slices.SortedFunc(slices.Values(old), func(a, b Extent) int { return int(a.Page - b.Page) })
	}
	for _, x := range next {
		if x.Unwritten {
			continue
		}
		for p := x.Page; p < x.Page+x.Count; {
			i, _ := slices.BinarySearchFunc(old, p, func(e Extent, p int64) int {
				switch {
				case e.Page+e.Count <= p:
					return -1
				case e.Page > p:
					return 1
				}
				return 0
			})
			if i >= len(old) {
				return true
			}
			o := old[i]
			if o.Page > p || o.Unwritten || o.Block+(p-o.Page) != x.Block+(p-x.Page) {
				return true
			}
			p = min(x.Page+x.Count, o.Page+o.Count)
		}
	}
	return false
}

// checkpoint writes the records committed to the log since the last
// checkpoint to meta.db in one transaction, off the fsync path (the
// committer runs it when a half of the log fills, and after each timed
// commit) or when a commit needs the other half of the log. Until it
// returns, their half is not reused.
func (j *Journal) checkpoint() error {
	w := j.wal
	if w == nil {
		return nil
	}
	w.ckptMu.Lock()
	defer w.ckptMu.Unlock()
	w.mu.Lock()
	recs := w.pending[:len(w.pending):len(w.pending)]
	w.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if j.img.db == nil {
		return errClosed
	}
	if err := j.img.applyWAL(recs, &j.opts); err != nil {
		return fmt.Errorf("meta: checkpoint: %w", err)
	}
	w.mu.Lock()
	w.pending = w.pending[len(recs):]
	w.mu.Unlock()
	// Block 0's commit record names the checkpoint, written after its
	// transaction is durable, with no flush of its own: the next commit's
	// flush carries it. meta.db is thus never older than the record but
	// after a rollback (see detectRollback). A failed write leaves the
	// record older (it detects less, and nothing is lost), but it is the
	// device failing: the error goes to whoever needed the checkpoint.
	if j.opts.WriteBlock0 != nil && j.img.SB.Compat&CompatCommitSeq != 0 {
		if err := j.opts.WriteBlock0(j.img.SB.block0(recs[len(recs)-1].seq)); err != nil {
			return fmt.Errorf("meta: checkpoint: write the commit record: %w", err)
		}
	}
	return nil
}
