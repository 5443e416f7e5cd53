package crash

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/holefs/holefs"
	"github.com/holefs/holefs/internal/torture"
)

// BlockSize is the unit the workload writes and the checker verifies: a
// page and a device block.
const BlockSize = torture.BlockSize

// eventKind is what an operation did to one block of a file.
type eventKind uint8

const (
	evWrite  eventKind = iota + 1 // buffered write: reaches the device by writeback
	evDirect                      // O_DIRECT write: on the device when the call returns
	evRemove                      // punch, zero range or truncate: the block reads as zeros
)

// event is one change of one block of a file. A write's data is the block
// signed (file id, block offset, op): the op number is the generation.
type event struct {
	op   int
	kind eventKind
	// failed: a write that returned an error before this block was
	// written, or one an fsync or sync that failed covered; the block may
	// hold its data or not, and it is never durable.
	failed bool
	// synced is the first fsync or sync that covered the file after this
	// event and succeeded (0: none yet): its writeback put the event's
	// data on the device before its commit, and when it returned the
	// event was durable.
	synced int
}

// fileModel is what the workload did to one file. Its id is what the
// signature of its blocks says; the inode number ties it to the image.
type fileModel struct {
	id   uint64
	ino  uint64
	size int64 // bytes, always a multiple of BlockSize
	// hist holds every event of each block offset, in op order.
	hist map[int64][]*event
	// unsynced are the events no fsync or sync has covered yet.
	unsynced []*event
	// alloc are the offsets the file may hold blocks for: the
	// workload's budget against ENOSPC, not a check.
	alloc map[int64]bool
	names int
	// buf and dio are the file's open handles (buffered and O_DIRECT),
	// nil when closed. A file with no name lives while one is open.
	buf, dio *holefs.File
	gone     bool // unlinked and closed: evicted
	// uncertain: a write failed, so which of its blocks the running
	// filesystem holds is unknown.
	uncertain bool
}

func (f *fileModel) open() bool { return f.buf != nil || f.dio != nil }

// current is the block's content the running filesystem must return: the
// latest event's (0 for zeros).
func (f *fileModel) current(off int64) int {
	h := f.hist[off]
	if len(h) == 0 || h[len(h)-1].kind == evRemove {
		return 0
	}
	return h[len(h)-1].op
}

func (f *fileModel) add(off int64, e *event) {
	f.hist[off] = append(f.hist[off], e)
	f.unsynced = append(f.unsynced, e)
}

// nsState is the namespace and the file sizes at one moment: what a
// commit made then writes.
type nsState struct {
	names map[string]uint64 // path -> file id; 0 for a directory
	sizes map[uint64]int64  // file id -> size, for files with a name
}

func (s nsState) clone() nsState {
	return nsState{names: maps.Clone(s.names), sizes: maps.Clone(s.sizes)}
}

// diff describes how got differs from s, for a violation report.
func (s nsState) diff(got map[string]uint64) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(s.names)) {
		if g, ok := got[p]; !ok {
			fmt.Fprintf(&b, " missing %s (%s);", p, idName(s.names[p]))
		} else if g != s.names[p] {
			fmt.Fprintf(&b, " %s is %s, want %s;", p, idName(g), idName(s.names[p]))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := s.names[p]; !ok {
			fmt.Fprintf(&b, " unexpected %s (%s);", p, idName(got[p]))
		}
	}
	return strings.TrimSuffix(strings.TrimPrefix(b.String(), " "), ";")
}

func idName(id uint64) string {
	switch id {
	case 0:
		return "directory"
	case unknownFile:
		return "unknown inode"
	case specialFile:
		return "FIFO"
	}
	return fmt.Sprintf("file #%d", id)
}

// unknownFile is the id the checker gives an inode the workload never
// created.
const unknownFile = ^uint64(0)

// specialFile is the id of every FIFO the workload makes: it has no data
// to tell one from another, only its name and type.
const specialFile = unknownFile - 1

// snapshot is the model's state when a commit ran. A commit runs during
// an operation (an fsync's own, or one an allocation forced mid-write), so
// it may hold that operation's effects or not: before and after bound it.
type snapshot struct {
	op            int
	before, after nsState
}

// sizeOK reports whether a crash state at this commit may give file id
// the size got.
func (s *snapshot) sizeOK(id uint64, got int64) bool {
	a, okA := s.before.sizes[id]
	b, okB := s.after.sizes[id]
	switch {
	case okA && okB:
		return min(a, b) <= got && got <= max(a, b)
	case okA:
		return got == a
	case okB:
		return got == b
	}
	return false
}

// verdict classifies one block read from a crash image.
type verdict uint8

const (
	blockOK      verdict = iota
	blockForeign         // another file's data, or this file's data of another offset
	blockStale           // data a punch, zero range or truncate removed before the commit the state holds
	blockLost            // older than (or zeros instead of) data an fsync or a commit made durable
	blockCorrupt         // neither zeros nor a valid signed block: torn or garbage
	blockUnknown         // this file's block with a generation the workload never wrote there
)

func (v verdict) String() string {
	return [...]string{"ok", "FOREIGN", "STALE", "LOST", "CORRUPT", "UNKNOWN"}[v]
}

// judge decides whether block off of file f may read as data (BlockSize
// bytes) in a crash state whose metadata is the commit made during op
// commitOp, given the last op that had started before the crash and which
// had returned (ended). It returns the verdict and what was allowed.
//
// The rules, from the journal's guarantees: an event is durable if the
// commit holds it and its data was on the device before the commit's
// flush — a removal or an O_DIRECT write that finished before the commit
// started, a buffered write written back by an fsync or sync that ran
// before or during the commit — or if an fsync or sync covering it
// returned before the crash. The block must show the latest durable event
// or any later write (writeback may have put it there, in place); zeros
// only if that durable event is a removal or there is none (holes and
// unwritten extents read as zeros), or if a removal was in flight when the
// commit ran. Nothing older, nothing of another file.
func (f *fileModel) judge(off int64, data []byte, commitOp, lastOp int, ended func(op int) bool) (verdict, string) {
	hist := f.hist[off]
	for len(hist) > 0 && hist[len(hist)-1].op > lastOp {
		hist = hist[:len(hist)-1] // after the crash
	}
	durable := func(e *event) bool {
		if e.failed {
			return false
		}
		if e.synced != 0 && ended(e.synced) {
			return true
		}
		switch e.kind {
		case evWrite:
			return e.synced != 0 && e.synced <= commitOp
		default:
			return e.op < commitOp
		}
	}
	d := -1
	for i, e := range hist {
		if durable(e) {
			d = i
		}
	}
	zeroOK := d < 0 || hist[d].kind == evRemove
	for _, e := range hist[max(d, 0):] {
		// A removal in flight when the commit ran may be in it.
		zeroOK = zeroOK || e.kind == evRemove && e.op == commitOp
	}
	allowed := func() string {
		var s []string
		if zeroOK {
			s = append(s, "zeros")
		}
		for _, e := range hist[max(d, 0):] {
			if e.kind != evRemove {
				s = append(s, fmt.Sprintf("gen %d", e.op))
			}
		}
		return strings.Join(s, " or ")
	}
	sig, st := torture.ParseBlock(data)
	switch st {
	case torture.BlockZero:
		if zeroOK {
			return blockOK, ""
		}
		return blockLost, "zeros, want " + allowed()
	case torture.BlockCorrupt:
		return blockCorrupt, "neither zeros nor a signed block, want " + allowed()
	}
	if sig.File != f.id || sig.Off != off {
		return blockForeign, fmt.Sprintf("holds file #%d's block %d (gen %d), want %s", sig.File, sig.Off, sig.Gen, allowed())
	}
	at := -1
	for i, e := range hist {
		if e.kind != evRemove && uint64(e.op) == sig.Gen {
			at = i
		}
	}
	switch {
	case at < 0:
		return blockUnknown, fmt.Sprintf("gen %d was never written here, want %s", sig.Gen, allowed())
	case at >= d:
		return blockOK, ""
	}
	for _, e := range hist[at+1 : d+1] {
		if e.kind == evRemove {
			return blockStale, fmt.Sprintf("gen %d, removed by op %d, want %s", sig.Gen, e.op, allowed())
		}
	}
	return blockLost, fmt.Sprintf("gen %d, older than durable gen %d, want %s", sig.Gen, hist[d].op, allowed())
}
