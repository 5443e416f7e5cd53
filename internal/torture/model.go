package torture

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The model is a per-block history of the operations that changed (or may
// have changed) each block of each file, with their start and end sequence
// numbers on one global clock. Every operation takes its start number
// before it calls the filesystem and its end number after the call
// returned, so its effect lies somewhere inside [start, end].
//
// A read that took R before its call and E after it may return, for each
// block, the value of
//
//   - every operation that completed before R (end < R) and is not
//     superseded, where an operation X is superseded when another operation
//     Z with a certain effect completed before R and started after X ended
//     (X.end < Z.start, Z.end < R): whatever order the filesystem applied
//     them in, Z came after X, so X's value is gone by R;
//   - every operation that overlaps the read (start < E, and end > R or
//     still running): it may have taken effect before, during or after
//     the read's copy of that block.
//
// That is the semantics of a regular register per block, and it is sound
// for any filesystem whose single-block updates are atomic: it never
// flags a value the filesystem could legitimately return. It does not
// require reads to be atomic across blocks (they are not: pages are copied
// one at a time).
//
// Values are: the signature of a write (this file, the block it was
// written for, its generation), zeros (a remove: punch, zero range, the
// blocks truncate cuts off, the hole insert opens), or, for operations
// that move data (collapse, insert, copy_range within a file), the set of
// values the source block could have held during the move, computed when
// the move ends. While a move is running its value is "any block signed
// for this file". Foreign data (a block signed for another file) is never
// allowed.
//
// Two refinements keep the model sound where the engine is, by design,
// not coherent:
//
//   - An O_DIRECT write supersedes nothing. A direct write writes the
//     device and then drops the clean cached pages of its range, but it
//     skips pages that are pinned (LOCKING.md: direct I/O invalidation
//     evicts only pages nobody else references), so a cached page may keep
//     the older data, readers may see it, and a page_mkwrite on it marks it
//     dirty with that older data, which writeback may then write over the
//     direct write's data on the device before the new bytes are copied
//     in. Linux's invalidate_inode_pages2 removes such pages. A later
//     buffered, mapped or copied write (which goes through the cached
//     page) or a remove (which truncates it) supersedes as usual.
//     Config.StrictDirect makes direct writes supersede like any write,
//     to measure this incoherence. Writes to a file never cached (the
//     neighbour's new files) are always strict.
//   - Operations that fail are void when their error means nothing
//     happened (EFAULT from a view past EOF, EINVAL, EOPNOTSUPP), and
//     uncertain otherwise: an uncertain value is allowed but supersedes
//     nothing.

type entryKind uint8

const (
	entInit   entryKind = iota // the file's creation: zeros
	entWrite                   // a write: its signature
	entRemove                  // zeros
	entMove                    // data moved from another block (collapse, insert, copy)
)

// op is one operation of the model. Its fields after creation are guarded
// by the mutex of the file it belongs to.
type op struct {
	start, end uint64 // sequence numbers; end is 0 while running
	name       string // "write", "punch", ...
	worker     string // "remove#1"
	desc       string // arguments
	weak       bool   // an O_DIRECT write (see the model's doc)
	running    bool
	err        string // the error it ended with, if any
	ents       []*entry
	poss       []int // block of each entry
}

func (o *op) String() string {
	end := "running"
	if !o.running {
		end = fmt.Sprint(o.end)
	}
	s := fmt.Sprintf("[%d,%s] %s %s by %s", o.start, end, o.name, o.desc, o.worker)
	if o.err != "" {
		s += " -> " + o.err
	}
	return s
}

// entry is one block's part of an op.
type entry struct {
	op        *op
	kind      entryKind
	src       int64     // entMove: source block; -1: outside the model (any value of the file)
	val       *valueSet // entMove, once the op ended
	void      bool      // the op did not change this block
	uncertain bool      // the op may or may not have changed this block
}

func (e *entry) done() bool { return !e.op.running }

func (e *entry) String() string {
	s := e.op.String()
	switch {
	case e.void:
		s += " (no effect here)"
	case e.uncertain:
		s += " (effect uncertain)"
	}
	if e.kind == entMove {
		if e.src >= 0 {
			s += fmt.Sprintf(" from block %d", e.src)
		}
		if e.val != nil {
			s += " = " + e.val.String()
		}
	}
	return s
}

type sigKey struct {
	off int64
	gen uint64
}

// valueSet is a set of block values of one file.
type valueSet struct {
	zero bool
	any  bool // any block signed for the file
	sigs []sigKey
}

func (v *valueSet) addSig(s sigKey) {
	if !slices.Contains(v.sigs, s) {
		v.sigs = append(v.sigs, s)
	}
}

func (v *valueSet) union(o *valueSet) {
	v.zero = v.zero || o.zero
	v.any = v.any || o.any
	for _, s := range o.sigs {
		v.addSig(s)
	}
}

func (v *valueSet) String() string {
	var parts []string
	if v.zero {
		parts = append(parts, "zeros")
	}
	if v.any {
		parts = append(parts, "any block of the file")
	}
	for _, s := range v.sigs {
		parts = append(parts, fmt.Sprintf("gen %d for block %d", s.gen, s.off))
	}
	if len(parts) == 0 {
		return "{}"
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

const (
	recentLen = 16 // ops remembered per block for reports
	maxHist   = 64 // history entries per block before the oldest are summarized
)

type span struct{ start, end uint64 }

type blockHist struct {
	hist     []*entry
	recent   [recentLen]*entry // ring, for reports
	nrecent  int
	lastGone span // the latest completed certain remove or move
}

func (b *blockHist) remember(e *entry) {
	b.recent[b.nrecent%recentLen] = e
	b.nrecent++
}

// fileModel is the model of one file.
type fileModel struct {
	m    *model
	id   uint64
	name string

	mu     sync.Mutex
	blocks []blockHist // +checklocks:mu
	active []uint64    // start numbers of running reads and moves; +checklocks:mu
}

// model is the history of every file of a run.
type model struct {
	clock     atomic.Uint64
	summaries atomic.Int64 // history overflows summarized as "any"
	// strictDirect: O_DIRECT writes supersede for cached readers too.
	strictDirect bool
	// torn allows torn blocks (see fileModel.torn): set for targets.
	torn       bool
	tornBlocks atomic.Int64 // torn blocks allowed
}

func newModel(strictDirect bool) *model { return &model{strictDirect: strictDirect} }

// newFile returns the model of a new, empty file of nblocks modelled
// blocks: every block starts as zeros.
func (m *model) newFile(id uint64, name string, nblocks int) *fileModel {
	fm := &fileModel{m: m, id: id, name: name, blocks: make([]blockHist, nblocks)}
	init := &op{name: "create", worker: "setup"}
	for i := range fm.blocks {
		e := &entry{op: init, kind: entInit}
		fm.blocks[i].hist = []*entry{e}
		fm.blocks[i].remember(e)
	}
	return fm
}

// Fates of the blocks an op did not certainly change.
type fate uint8

const (
	fateVoid      fate = iota // it did nothing to them
	fateUncertain             // it may have changed them
)

// begin starts an op: it takes the start number and appends the op's
// entries, made by mk for each block of [pos, pos+n) inside the model.
// Moves also register as running readers of their source blocks.
func (fm *fileModel) begin(o *op, pos, n int64, mk func(p int64) *entry) *op {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	o.start = fm.m.clock.Add(1)
	o.running = true
	isMove := false
	for p := max(pos, 0); p < min(pos+n, int64(len(fm.blocks))); p++ {
		e := mk(p)
		if e == nil {
			continue
		}
		e.op = o
		o.ents = append(o.ents, e)
		o.poss = append(o.poss, int(p))
		isMove = isMove || e.kind == entMove
		b := &fm.blocks[p]
		b.hist = append(b.hist, e)
		b.remember(e)
		fm.prune(b)
	}
	if isMove {
		fm.active = append(fm.active, o.start)
	}
	return o
}

func (fm *fileModel) beginWrite(name, worker string, pos, n int64, weak bool) *op {
	o := &op{name: name, worker: worker, desc: fmt.Sprintf("blocks [%d,%d)", pos, pos+n), weak: weak}
	return fm.begin(o, pos, n, func(int64) *entry { return &entry{kind: entWrite} })
}

func (fm *fileModel) beginRemove(name, worker, desc string, pos, n int64) *op {
	o := &op{name: name, worker: worker, desc: desc}
	return fm.begin(o, pos, n, func(int64) *entry { return &entry{kind: entRemove} })
}

// beginCollapse models FALLOC_FL_COLLAPSE_RANGE of blocks [pos, pos+n):
// block p >= pos gets what block p+n held (zeros past EOF).
func (fm *fileModel) beginCollapse(worker string, pos, n int64) *op {
	o := &op{name: "collapse", worker: worker, desc: fmt.Sprintf("blocks [%d,%d)", pos, pos+n)}
	nb := int64(len(fm.blocks))
	return fm.begin(o, pos, nb-pos, func(p int64) *entry {
		src := p + n
		if src >= nb {
			src = -1
		}
		return &entry{kind: entMove, src: src}
	})
}

// beginInsert models FALLOC_FL_INSERT_RANGE of n blocks at pos: blocks
// [pos, pos+n) become a hole, block p >= pos+n gets what block p-n held.
func (fm *fileModel) beginInsert(worker string, pos, n int64) *op {
	o := &op{name: "insert", worker: worker, desc: fmt.Sprintf("%d blocks at %d", n, pos)}
	return fm.begin(o, pos, int64(len(fm.blocks))-pos, func(p int64) *entry {
		if p < pos+n {
			return &entry{kind: entRemove}
		}
		return &entry{kind: entMove, src: p - n}
	})
}

// beginCopy models copy_file_range of n blocks from src to dst within the
// file.
func (fm *fileModel) beginCopy(worker string, src, dst, n int64) *op {
	o := &op{name: "copy", worker: worker, desc: fmt.Sprintf("blocks [%d,%d) to [%d,%d)", src, src+n, dst, dst+n)}
	return fm.begin(o, dst, n, func(p int64) *entry {
		s := src + (p - dst)
		if s >= int64(len(fm.blocks)) {
			s = -1
		}
		return &entry{kind: entMove, src: s}
	})
}

// end ends an op. The blocks it certainly changed are the first `done`
// of its entries in block order (all of them if done < 0); the rest get
// the fate rest. errStr is the op's error, for reports.
func (fm *fileModel) end(o *op, done int, rest fate, errStr string) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	o.end = fm.m.clock.Add(1)
	o.err = errStr
	ents, poss := o.ents, o.poss
	for i, e := range ents {
		if done >= 0 && i >= done {
			if rest == fateVoid {
				e.void = true
			} else {
				e.uncertain = true
			}
		}
	}
	// Values of moved blocks: everything their source could hold while
	// the op ran, with the op's own entries left out (all blocks of a
	// collapse move at once).
	for _, e := range ents {
		if e.kind != entMove || e.void {
			continue
		}
		if e.src < 0 {
			e.val = &valueSet{zero: true, any: true}
			continue
		}
		v, _ := fm.allowed(int(e.src), o.start, o.end, o)
		e.val = &v
	}
	o.running = false
	if i := slices.Index(fm.active, o.start); i >= 0 {
		fm.active = slices.Delete(fm.active, i, i+1)
	}
	for i, e := range ents {
		b := &fm.blocks[poss[i]]
		if !e.void && !e.uncertain && (e.kind == entRemove || e.kind == entMove) && o.end > b.lastGone.end {
			b.lastGone = span{o.start, o.end}
		}
		fm.prune(b)
	}
}

// value returns an entry's value for the block it is in.
func (e *entry) value(pos int) valueSet {
	switch e.kind {
	case entWrite:
		return valueSet{sigs: []sigKey{{int64(pos), e.op.start}}}
	case entMove:
		if e.op.running || e.val == nil {
			return valueSet{zero: true, any: true}
		}
		return *e.val
	}
	return valueSet{zero: true}
}

// supersedes reports whether a completed entry's value certainly replaced
// older values.
func (fm *fileModel) supersedes(e *entry) bool {
	return e.done() && !e.void && !e.uncertain && (!e.op.weak || fm.m.strictDirect)
}

// allowed returns what block pos may read as for a read that took R
// before and E after its call, and the entries that contributed. exclude
// (may be nil) is left out.
func (fm *fileModel) allowed(pos int, R, E uint64, exclude *op) (valueSet, []*entry) {
	b := &fm.blocks[pos]
	var maxStart uint64
	for _, e := range b.hist {
		if e.op != exclude && fm.supersedes(e) && e.op.end < R && e.op.start > maxStart {
			maxStart = e.op.start
		}
	}
	var vs valueSet
	var contrib []*entry
	for _, e := range b.hist {
		if e.void || e.op == exclude {
			continue
		}
		if e.done() && e.op.end < R {
			if e.op.end < maxStart {
				continue // superseded
			}
		} else if e.op.start > E {
			continue // started after the read
		}
		v := e.value(pos)
		vs.union(&v)
		contrib = append(contrib, e)
	}
	return vs, contrib
}

// prune drops the entries no running or future read can be allowed to
// see, and summarizes the oldest if the history is still too long.
func (fm *fileModel) prune(b *blockHist) {
	minR := fm.m.clock.Load()
	for _, r := range fm.active {
		minR = min(minR, r)
	}
	var maxStart uint64
	for _, e := range b.hist {
		if fm.supersedes(e) && e.op.end < minR && e.op.start > maxStart {
			maxStart = e.op.start
		}
	}
	b.hist = slices.DeleteFunc(b.hist, func(e *entry) bool {
		return e.void || (e.done() && e.op.end < maxStart)
	})
	if len(b.hist) <= maxHist {
		return
	}
	// Too long (long-running reads, or many O_DIRECT writes that
	// supersede nothing for cached readers): fold the oldest completed
	// entries into one uncertain "any value of the file" entry. Sound,
	// only less precise until a later op supersedes it.
	var old []*entry
	var keep []*entry
	for i, e := range b.hist {
		if e.done() && len(old) < maxHist/2 && i < len(b.hist)-maxHist/4 {
			old = append(old, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(old) < 2 {
		return
	}
	s := &op{name: "summary", worker: "model", desc: fmt.Sprintf("of %d older ops", len(old)),
		start: old[0].op.start, end: old[0].op.end}
	for _, e := range old {
		s.start = min(s.start, e.op.start)
		s.end = max(s.end, e.op.end)
	}
	fm.m.summaries.Add(1)
	sum := &entry{op: s, kind: entMove, src: -1, uncertain: true, val: &valueSet{zero: true, any: true}}
	b.hist = append([]*entry{sum}, keep...)
}

// beginRead registers a read of the file and returns its R.
func (fm *fileModel) beginRead() uint64 {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	r := fm.m.clock.Add(1)
	fm.active = append(fm.active, r)
	return r
}

// Violation kinds.
const (
	KindForeign   = "foreign"    // a block signed for another file
	KindStale     = "stale"      // data older than a remove that completed before the read
	KindLostWrite = "lost-write" // a completed write not visible (zeros or older data), no remove after it
	KindCorrupt   = "corrupt"    // torn or garbage block
	KindMisplaced = "misplaced"  // this file's data for another offset, no move explains it
	KindPhantom   = "phantom"    // a generation newer than the read
	KindError     = "error"      // an operation failed unexpectedly
	KindStuck     = "stuck"      // workers did not stop: deadlock or livelock
	KindPanic     = "panic"      // the engine panicked in a worker's operation
)

// Violation is one thing the checker found wrong.
type Violation struct {
	Kind       string
	File       string // file name
	Offset     int64  // byte offset of the block
	Generation uint64 // generation found in the block (0: zeros or corrupt)
	Detail     string
	History    []string // the recent ops on the block, oldest first
	At         uint64   // sequence number of the check
}

func (v Violation) String() string {
	var sb strings.Builder
	sb.WriteString(v.Kind)
	if v.File != "" {
		fmt.Fprintf(&sb, ": %s at offset %d (block %d)", v.File, v.Offset, v.Offset/BlockSize)
	}
	if v.Generation != 0 {
		fmt.Fprintf(&sb, ", generation %d", v.Generation)
	}
	if v.Detail != "" {
		fmt.Fprintf(&sb, ": %s", v.Detail)
	}
	if len(v.History) > 0 && v.File != "" {
		sb.WriteString("\n  history of the block (sequence numbers [start,end]):")
	}
	if len(v.History) > 0 {
		for _, h := range v.History {
			sb.WriteString("\n    " + h)
		}
	}
	return sb.String()
}

// readDesc describes a read for reports.
type readDesc struct {
	name   string // "read", "fault", "direct-read", ...
	worker string
	direct bool
}

// endRead checks the nblocks blocks of data a read returned for blocks
// [pos, pos+nblocks) and unregisters the read. It returns the violations.
func (fm *fileModel) endRead(R uint64, rd readDesc, pos int64, data []byte, nblocks int) []Violation {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	E := fm.m.clock.Add(1)
	if i := slices.Index(fm.active, R); i >= 0 {
		fm.active = slices.Delete(fm.active, i, i+1)
	}
	var out []Violation
	for i := 0; i < nblocks; i++ {
		p := pos + int64(i)
		if p < 0 || p >= int64(len(fm.blocks)) {
			continue
		}
		if v, bad := fm.check(int(p), R, E, rd, data[i*BlockSize:(i+1)*BlockSize]); bad {
			out = append(out, v)
		}
	}
	return out
}

// check verifies one block a read returned.
func (fm *fileModel) check(pos int, R, E uint64, rd readDesc, blk []byte) (Violation, bool) {
	sig, st := ParseBlock(blk)
	if st == BlockSigned && sig.File != fm.id {
		// Foreign data is a violation whatever the history says.
		return fm.violation(KindForeign, pos, R, E, rd, sig, st, nil), true
	}
	vs, _ := fm.allowed(pos, R, E, nil)
	var kind string
	switch st {
	case BlockCorrupt:
		if fm.m.torn && fm.tornOK(blk, &vs) {
			fm.m.tornBlocks.Add(1)
			return Violation{}, false
		}
		kind = KindCorrupt
	case BlockZero:
		if vs.zero {
			return Violation{}, false
		}
		kind = KindLostWrite
	default:
		if vs.any || slices.Contains(vs.sigs, sigKey{sig.Off, sig.Gen}) {
			return Violation{}, false
		}
		b := &fm.blocks[pos]
		switch {
		case sig.Gen > E:
			kind = KindPhantom
		case sig.Off != int64(pos) && !fm.movedFrom(pos, sig.Off):
			kind = KindMisplaced
		case b.lastGone.end != 0 && b.lastGone.end < R && sig.Gen < b.lastGone.start:
			kind = KindStale
		default:
			kind = KindLostWrite
		}
	}
	return fm.violation(kind, pos, R, E, rd, sig, st, &vs), true
}

func (fm *fileModel) violation(kind string, pos int, R, E uint64, rd readDesc, sig Sig, st BlockState, vs *valueSet) Violation {
	v := Violation{Kind: kind, File: fm.name, Offset: int64(pos) * BlockSize, At: E}
	how := "through the page cache"
	if rd.direct {
		how = "with O_DIRECT"
	}
	var found string
	switch st {
	case BlockZero:
		found = "zeros"
	case BlockCorrupt:
		found = "a corrupt block (bad magic or checksum)"
	default:
		v.Generation = sig.Gen
		found = fmt.Sprintf("generation %d written for file id %d block %d", sig.Gen, sig.File, sig.Off)
		if sig.File != fm.id {
			found += fmt.Sprintf(" (this file is id %d)", fm.id)
		}
	}
	v.Detail = fmt.Sprintf("%s by %s %s, running [%d,%d], returned %s", rd.name, rd.worker, how, R, E, found)
	if vs != nil {
		v.Detail += "; allowed: " + vs.String()
	}
	v.History = fm.history(pos)
	if st == BlockSigned && sig.File == fm.id && sig.Off != int64(pos) && sig.Off >= 0 && sig.Off < int64(len(fm.blocks)) {
		v.History = append(v.History, fmt.Sprintf("history of block %d, which the data was written for:", sig.Off))
		for _, h := range fm.history(int(sig.Off)) {
			v.History = append(v.History, "  "+h)
		}
	}
	return v
}

// tornOK reports whether a block that fails its checksum is a byte-wise
// mix of values the read may return. Real filesystems do not make block
// updates atomic: Linux copies a page to a reader (pread, copy_file_range,
// a fault's user) without the page lock while a pwrite, or a store
// through a mapping, changes it, and a store through a mapping that a
// punch or truncation zaps half-way goes on in a new, zeroed page, which
// then keeps the mix. So on a target (model.torn) a torn block is allowed
// when every byte of it is the byte of an allowed value at its offset;
// "any block of the file" allows any mix. Foreign or garbage bytes stay
// violations.
func (fm *fileModel) tornOK(blk []byte, vs *valueSet) bool {
	if vs.any {
		return true
	}
	var cands [][]byte
	if vs.zero {
		cands = append(cands, zeroBlock[:])
	}
	for _, s := range vs.sigs {
		b := make([]byte, BlockSize)
		SignBlock(b, Sig{File: fm.id, Off: s.off, Gen: s.gen})
		cands = append(cands, b)
	}
	if len(cands) < 2 {
		return false
	}
next:
	for i, c := range blk {
		for _, cand := range cands {
			if cand[i] == c {
				continue next
			}
		}
		return false
	}
	return true
}

// movedFrom reports whether a move in block pos's recent history took
// data from block src.
func (fm *fileModel) movedFrom(pos int, src int64) bool {
	b := &fm.blocks[pos]
	for i := max(0, b.nrecent-recentLen); i < b.nrecent; i++ {
		if e := b.recent[i%recentLen]; e.kind == entMove && e.src == src {
			return true
		}
	}
	return false
}

// history formats the recent ops on block pos, oldest first.
func (fm *fileModel) history(pos int) []string {
	b := &fm.blocks[pos]
	var ents []*entry
	for i := max(0, b.nrecent-recentLen); i < b.nrecent; i++ {
		ents = append(ents, b.recent[i%recentLen])
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].op.start < ents[j].op.start })
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.String()
	}
	return out
}
